"""Layer-sequential unit-variance (LSUV) initialization, the one data-dependent scheme."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import ValidationError, check_float, check_int
from . import schemes

__all__ = ["lsuv", "lsuv_rescale"]


def lsuv(tensor, tol: float = 0.1, max_iter: int = 10, *, generator=None, fans=None, batch_dims=0):
    """LSUV: orthonormal pre-init, then each layer rescaled in turn to unit output variance on data.

    On a bare tensor only the orthonormal step runs; ``apply_init(model, "lsuv", data=X)``
    runs the data-driven rescaling (until |Var - 1| < tol or max_iter passes per layer).
    Reference: Mishkin & Matas, 2016, "All you need is a good init".
    """
    check_float("tol", tol, 0.0, strict_minimum=True)
    check_int("max_iter", max_iter, 1)
    return schemes.orthogonal(tensor, 1.0, generator=generator, batch_dims=batch_dims)


@torch.no_grad()
def lsuv_rescale(
    model: nn.Module, layers: list[nn.Module], data: torch.Tensor, tol: float = 0.1, max_iter: int = 10
) -> list[dict[str, float]]:
    """Rescale each of ``layers`` (in forward order) so its output variance on ``data`` is 1.

    Returns per layer the final output variance and the passes it took.
    """
    if data is None:
        raise ValidationError("initializer 'lsuv' is data-dependent: pass data= (a batch of inputs)")
    if not isinstance(data, torch.Tensor):
        data = torch.as_tensor(data, dtype=torch.float32)
    report = []
    for layer in layers:
        captured: dict[str, torch.Tensor] = {}
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.__setitem__("out", out))
        try:
            var, passes = float("nan"), 0
            for passes in range(1, max_iter + 1):
                model(data)
                var = float(captured["out"].var())
                if var == 0.0 or abs(var - 1.0) < tol:
                    break
                layer.weight.div_(var**0.5)
            report.append({"variance": var, "passes": passes})
        finally:
            handle.remove()
    return report
