"""The typed recipe lives in :mod:`soundseek.models.config` (the library reads it too); this
module keeps the trainer's historical import path."""
from soundseek.models.config import *  # noqa: F401,F403
from soundseek.models.config import __all__  # noqa: F401
