"""``soundseek data check|synth`` (implemented in :mod:`soundseek.data.cli`)."""
from soundseek.data.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
