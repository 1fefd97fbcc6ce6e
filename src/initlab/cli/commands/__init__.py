"""Each module registers one command (or command group) on ``initlab.cli.main.app``."""

from . import inits  # noqa: F401
from . import sweep  # noqa: F401
