"""The fast distinct-unit count equals the all-pairs reference on random, duplicated and
near-duplicated units (the speed itself is measured in bench/symmetry_bench.py)."""

from __future__ import annotations

import pytest
import torch

from initlab.diagnostics import symmetry
from initlab.diagnostics.symmetry import SYMMETRY_TOL, distinct_units, distinct_units_all_pairs, outgoing_rows

TOL = SYMMETRY_TOL


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _both(weight, bias=None, outgoing=None, tol=TOL) -> int:
    fast = distinct_units(weight, bias, outgoing, tol)
    assert fast == distinct_units_all_pairs(weight, bias, outgoing, tol)
    return fast


@pytest.mark.parametrize("shape", [(1, 5), (7, 1), (64, 30), (200, 3), (40, 3, 3, 3)])
def test_random_units_are_all_distinct(shape):
    w = torch.randn(shape, generator=_gen())
    assert _both(w, torch.randn(shape[0], generator=_gen(1))) == shape[0]
    assert _both(w, None, [torch.randn(shape[0], 4, generator=_gen(2))]) == shape[0]


def test_duplicated_units_in_shuffled_order_count_once_per_original():
    g = _gen(3)
    base = torch.randn(13, 50, generator=g)
    pick = torch.randint(0, 13, (300,), generator=g)
    pick[:13] = torch.arange(13)  # every original present at least once
    pick = pick[torch.randperm(300, generator=g)]
    w, b = base[pick], torch.randn(13, generator=g)[pick]
    assert _both(w, b) == 13
    assert _both(w * 1e-30, b * 1e-30) == 13  # relative tolerance: the scale does not matter
    reader = torch.randn(6, 300, generator=g)
    assert _both(w, b, [outgoing_rows(reader)]) == 300  # different outgoing weights: all distinct
    same_out = torch.randn(6, 13, generator=g)[:, pick]
    assert _both(w, b, [outgoing_rows(same_out)]) == 13


@pytest.mark.parametrize("factor, together", [(0.5, True), (0.999, True), (1.001, False), (2.0, False), (1e3, False)])
def test_near_duplicates_within_the_tolerance_join_and_beyond_it_split(factor, together):
    g = _gen(4)
    base = torch.randn(20, 40, dtype=torch.float64, generator=g)
    scale = base.abs().amax(dim=1, keepdim=True)
    # move one non-largest entry of each copy by factor x tol x the row's largest |weight|
    nudged = base.clone()
    column = (base.abs().argmax(dim=1) + 1) % 40
    sign = torch.where(torch.rand(20, generator=g) < 0.5, -1.0, 1.0).double()
    nudged[torch.arange(20), column] += sign * factor * TOL * scale[:, 0]
    w = torch.cat([base, nudged])[torch.randperm(40, generator=g)]
    assert _both(w) == (20 if together else 40)


def test_a_chain_of_near_duplicates_is_grouped_in_unit_order():
    """0 ~ 1 and 1 ~ 2 but not 0 ~ 2: the first unit takes its neighbours, the count follows the order."""
    row = torch.tensor([1.0, 0.5, -0.25], dtype=torch.float64)
    step = torch.tensor([0.0, 0.6 * TOL, 0.0], dtype=torch.float64)
    assert _both(torch.stack([row, row + step, row + 2 * step])) == 2  # {0, 1}, {2}
    assert _both(torch.stack([row + step, row, row + 2 * step])) == 1  # the middle one first takes both


def test_zero_rows_sparse_rows_and_tiny_rows():
    g = _gen(5)
    w = torch.zeros(30, 64)
    w[10:20] = torch.randn(10, 64, generator=g) * (torch.rand(10, 64, generator=g) < 0.05)  # sparse: many equal keys
    w[20] = 1e-38  # all equal tiny values: not equal to the zero rows
    w[21] = 1e-38
    assert _both(w) == 1 + 10 + 1  # rows 0-9 and 22-29 are zero, 10-19 sparse, 20-21 tiny
    assert _both(torch.zeros(50, 7), torch.zeros(50), [torch.zeros(50, 3)]) == 1


def test_one_hot_rows_whose_keys_crowd_together():
    """One weight per unit, all of one size: the projections of different units differ by ~1/fan_in."""
    g = _gen(11)
    w = torch.zeros(400, 3000)
    k = torch.randint(0, 3000, (400,), generator=g)
    w[torch.arange(400), k] = 0.5
    assert _both(w) == len(torch.unique(k))


def test_conv_and_outgoing_parts_of_any_width():
    g = _gen(6)
    w = torch.randn(4, 3, 3, 3, generator=g)[torch.tensor([0, 1, 1, 2, 3, 3, 3, 0])]  # (8, 3, 3, 3)
    assert _both(w) == 4
    reader = torch.randn(5, 8 * 9, generator=g)  # each channel owns 9 flattened features
    assert _both(w, None, [outgoing_rows(reader, per_unit=9)]) == 8
    tied = torch.randn(5, 4, 9, generator=g)[:, torch.tensor([0, 1, 1, 2, 3, 3, 3, 0])].reshape(5, 72)
    assert _both(w, None, [outgoing_rows(tied, per_unit=9)]) == 4


def test_chunked_passes_give_the_same_count(monkeypatch):
    """Chunks of two rows (as a 4096 x 25088 layer is read) instead of the whole layer at once."""
    g = _gen(7)
    pick = torch.randint(0, 9, (150,), generator=g)
    w, out = torch.randn(9, 120, generator=g)[pick], torch.randn(9, 5, generator=g)[pick]
    monkeypatch.setattr(symmetry, "_CHUNK", 250)
    originals = len(torch.unique(pick))
    assert _both(w) == _both(w, None, [out]) == originals
    out[0] += 1.0  # unit 0 now differs from its copies by its outgoing weights
    assert _both(w, None, [out]) == originals + 1


@pytest.mark.parametrize("tol", [0.0, 1e-3, 0.3, 1.0])
def test_other_tolerances_match_the_reference(tol):
    g = _gen(8)
    w = torch.randn(6, 10, dtype=torch.float64, generator=g).repeat(5, 1)
    w += 1e-4 * torch.randn(w.shape, dtype=torch.float64, generator=g)
    _both(w, tol=tol)
    assert _both(w, tol=0.0) == 30 and _both(w, tol=0.3) == 6


def test_float32_float16_and_float64_weights():
    g = _gen(9)
    base = torch.randn(5, 33, generator=g)[torch.tensor([0, 1, 2, 3, 4, 4, 3, 2])]
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert distinct_units(base.to(dtype)) == distinct_units_all_pairs(base.to(dtype)) == 5


@pytest.mark.parametrize("scale", [1.0, 1e-25, 1e25, 0.0])
def test_norms_of_big_layers_match_float64(scale):
    """diagnose's fast norm (float32 blocks, combined in float64) against the float64 norm."""
    from initlab.diagnostics.rows import tensor_norm as _norm

    x = torch.randn(300, 1000, generator=_gen(10)) * scale
    assert _norm(x) == pytest.approx(float(torch.linalg.vector_norm(x, dtype=torch.float64)), rel=1e-7, abs=0.0)


def test_a_nan_unit_of_a_diverged_layer_counts_as_its_own_unit():
    """NaN is not close to anything, itself included (the all-pairs loop would never end on it)."""
    w = torch.randn(5, 10, generator=_gen(12))[torch.tensor([0, 1, 1, 2, 3, 4, 4, 0])]
    w[3, 2] = float("nan")
    assert distinct_units(w) == 5  # {0, 7}, {1, 2}, {3}, {4}, {5, 6}
    w[1, 0] = float("nan")
    assert distinct_units(w) == 6  # 1 and 2 are no longer equal
