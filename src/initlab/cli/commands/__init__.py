"""Each module registers one command (or command group) on ``initlab.cli.main.app``."""

from . import inits  # noqa: F401
from . import reproduce, train  # noqa: F401
from . import doctor  # noqa: F401
from . import sweep  # noqa: F401
from . import theory  # noqa: F401
from . import serve  # noqa: F401
from . import coord_check  # noqa: F401
from . import paper  # noqa: F401
from . import verify  # noqa: F401
from . import transfer  # noqa: F401
