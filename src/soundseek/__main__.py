import sys

from soundseek.cli.main import main

sys.exit(main())
