"""The one op tracer: observe a forward pass of any ``nn.Module`` and emit events in one op vocabulary.

``trace`` knows no verdicts and no initializers. :class:`Tracer` (module hooks plus a function
mode) fills :class:`Record` rows (a weighted op and its activation), :class:`NormRecord`,
:class:`Attention` and :class:`BlockRecord` events; :mod:`.ops` is the op vocabulary;
:func:`repeated_blocks` and :func:`role` name a model's repeated blocks and a layer's role in them.
"""

from .attention import Attention, measure_attention
from .blocks import block_groups, block_signature, repeated_blocks, role
from .dispatch import FunctionalMode, InterceptMode, composite_bypass, module_stack
from .events import BlockRecord, NormRecord, Record
from .lineage import Lineage
from .ops import ACTIVATION_MODULES, FUNCTIONAL, PASS_THROUGH, WEIGHTED, op_kind
from .tracer import Tracer

__all__ = [
    "Tracer", "Lineage", "Record", "NormRecord", "BlockRecord", "Attention", "measure_attention", "repeated_blocks",
    "block_signature", "block_groups", "role", "composite_bypass", "FunctionalMode", "InterceptMode", "module_stack",
    "ACTIVATION_MODULES",
    "FUNCTIONAL", "PASS_THROUGH", "WEIGHTED", "op_kind",
]
