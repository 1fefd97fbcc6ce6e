"""One helper that turns a seed into a ``torch.Generator`` (no global RNG state)."""

from __future__ import annotations

import torch

__all__ = ["make_generator"]


def make_generator(seed: int | torch.Generator | None = None, device: str | torch.device = "cpu") -> torch.Generator:
    """Return ``seed`` if it is a Generator, else a new Generator seeded with it.

    ``None`` draws a fresh seed from the OS, so runs are reproducible only with a seed.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen
