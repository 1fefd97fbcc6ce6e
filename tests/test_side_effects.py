"""Importing initlab, building a model, initializing it and drawing a figure change no global state:
not torch's global RNG, not matplotlib's backend, not its rcParams."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from initlab import apply_init, initializers
from initlab.models import MLP

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("MPLBACKEND", None)  # matplotlib picks its backend itself, as in a user's session
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_mlp_draws_from_its_own_generator():
    state = torch.random.get_rng_state()
    a, b = MLP([2, 10, 1]), MLP([3, 5, 5, 2], "tanh", generator=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = MLP([3, 5, 5, 2], "tanh", generator=7)
    assert all(torch.equal(p, q) for p, q in zip(b.parameters(), again.parameters(), strict=False))
    bound = 1 / 10**0.5  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), here fan_in 10
    w = a.output.weight
    assert w.abs().max() <= bound and w.abs().max() > bound / 2 and torch.isfinite(a[0].weight).all()


@pytest.mark.parametrize("name", initializers.names())
def test_apply_init_leaves_the_global_rng_alone(name):
    model = MLP([4, 8, 8, 2], "tanh", generator=0)
    data = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    apply_init(model, name, generator=1, data=data if name == "lsuv" else None)
    apply_init(model, name, generator=None, data=data if name == "lsuv" else None)  # a fresh OS seed
    assert torch.equal(torch.random.get_rng_state(), state)


def test_importing_and_drawing_change_no_global_state():
    """In a fresh interpreter: import every initlab package, build and initialize a model, draw figures."""
    out = _run(
        "import matplotlib, torch\n"
        "matplotlib.use('svg')\n"  # the user's choice, which initlab must keep
        "rc = dict(matplotlib.rcParams); rng = torch.random.get_rng_state()\n"
        "import initlab, initlab.experiments, initlab.plots, initlab.plots.sweep, initlab.plots.boundary\n"
        "import initlab.plots.history, initlab.plots.catalog, initlab.diagnostics.figures, initlab.theory, initlab.results\n"
        "from initlab.models import MLP\n"
        "initlab.apply_init(MLP([2, 10, 1]), 'critical')\n"
        "assert torch.equal(torch.random.get_rng_state(), rng), 'torch global RNG'\n"
        "from initlab.plots.catalog import catalog_figure\n"
        "fig = catalog_figure(fan_in=16, fan_out=16)\n"
        "assert fig.dpi == 110, fig.dpi  # initlab's look, applied to its own figure only\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "changed = sorted(k for k in rc if matplotlib.rcParams[k] != rc[k])\n"
        "assert not changed, changed\n"
        "print('ok')\n"
    )
    assert out.strip() == "ok"


def test_importing_initlab_does_not_pick_a_backend():
    """The backend stays undecided (matplotlib resolves it when a figure is first shown) and Agg is never forced."""
    out = _run(
        "import matplotlib\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "import initlab, initlab.plots, initlab.diagnostics.figures, initlab.theory, initlab.experiments\n"
        "after = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "print(before is after or before == after)\n"
    )
    assert out.strip() == "True"


def test_saved_figures_keep_the_look(tmp_path):
    import matplotlib

    from initlab.plots import save
    from initlab.plots.history import Curves, history_figure

    dpi = matplotlib.rcParams["figure.dpi"]
    fig = history_figure(Curves("run", {"loss": [0.7, 0.5], "accuracy": [0.5, 0.8]}, "#2ca02c"))
    assert fig.dpi == 110 and not fig.axes[0].spines["top"].get_visible()
    assert matplotlib.rcParams["figure.dpi"] == dpi  # restored after the figure was made
    path = save(fig, tmp_path / "h.png")
    from PIL import Image

    assert Image.open(path).info["dpi"][0] == pytest.approx(110, abs=1)
