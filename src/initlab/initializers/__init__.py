"""The initializer catalog.

>>> from initlab import initializers
>>> init = initializers.get("kaiming_normal")       # PyTorch spelling
>>> init.name
'he_normal'
>>> w = init(torch.empty(64, 32), torch.Generator().manual_seed(0))
"""

from ._fans import calculate_gain, compute_fans
from .account import Account, ParamEntry
from .apply import apply_init, init_layers
from .critical import critical
from .fixup import fixup_init
from .lsuv import lsuv
from .registry import Catalog, Initializer, Scheme, canonical_name, catalog, get, names, register, table
from .schemes import *  # noqa: F403  (the scheme functions)
from .schemes import __all__ as _schemes
from .zero_init import hadamard_identity

register("lsuv", lsuv, kind="data-dependent")
register("critical", critical, ("edge_of_chaos",), kind="random")
register("hadamard_identity", hadamard_identity, ("ZerO",), kind="constant")  # Zhao et al. 2022

__all__ = [
    "Initializer", "Scheme", "get", "names", "catalog", "Catalog", "table", "register", "canonical_name",
    "apply_init", "init_layers", "Account", "ParamEntry", "compute_fans", "calculate_gain", "lsuv",
    "hadamard_identity", "fixup_init", *_schemes,
]
