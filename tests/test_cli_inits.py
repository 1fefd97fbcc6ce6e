"""`initlab inits` and the CLI's error contract."""

from __future__ import annotations

import json

from initlab import initializers
from initlab.cli import main


def test_inits_json_lists_the_whole_catalog(capsys):
    assert main(["inits", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == initializers.names()
    he = next(r for r in rows if r["name"] == "he_normal")
    assert "kaiming_normal" in he["aliases"] and "He et al., 2015" in he["reference"]
    assert "2 / ((1 + a^2) n)" in he["formula"] and he["params"] == {"negative_slope": 0.0, "mode": "fan_in"}


def test_inits_table(capsys):
    assert main(["inits"]) == 0
    out = capsys.readouterr().out
    assert "glorot_uniform" in out and "Saxe" in out


def test_unknown_command_exits_2(capsys):
    assert main(["nope"]) == 2
    assert "No such command 'nope'" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "inits" in capsys.readouterr().out


def test_inits_plot_draws_every_scheme_with_its_signal_gain(tmp_path, capsys):
    from initlab.plots.catalog import DEFAULT_SCHEMES, catalog_figure

    out = tmp_path / "catalog.png"
    assert main(["inits", "--plot", str(out), "--fan-in", "128", "--fan-out", "64"]) == 0
    assert out.stat().st_size > 20_000 and "wrote" in capsys.readouterr().out
    fig = catalog_figure(fan_in=512, fan_out=512)
    bars = fig.axes[1]
    gains = {t.get_text(): p.get_width() for t, p in zip(bars.get_yticklabels(), bars.patches, strict=False)}
    assert set(gains) == set(DEFAULT_SCHEMES)
    assert abs(gains["he_normal"] - 2.0) < 0.05 and abs(gains["glorot_uniform"] - 1.0) < 0.05
    assert abs(gains["orthogonal"] - 1.0) < 1e-3  # exactly orthonormal rows


def test_design_contract_names_resolve_from_the_top_level():
    import initlab

    assert initlab.theory.critical_sigma_w2("relu", 0.0) == 2.0
    assert callable(initlab.results.load) and callable(initlab.apply_init) and callable(initlab.diagnose)
    assert initlab.initializers.get("xavier_uniform").name == "glorot_uniform"
    assert initlab.Monitor.__name__ == "Monitor" and initlab.ExperimentSpec().epochs == 100


def test_version(capsys):
    import initlab

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"initlab {initlab.__version__}"


def test_unwritable_output_path_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["inits", "--plot", str(blocker / "catalog.png")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_threads_default_leaves_a_core_free_and_can_be_set(monkeypatch, capsys):
    import os

    import torch

    from initlab.cli.main import default_threads

    monkeypatch.delenv("INITLAB_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert default_threads() == max(1, cores - 1)
    monkeypatch.setenv("INITLAB_THREADS", "3")
    assert default_threads() == 3
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "2", "inits", "--json"]) == 0
        assert torch.get_num_threads() == 2
        assert main(["inits", "--json"]) == 0
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("INITLAB_THREADS", "zero")
        assert main(["inits", "--json"]) == 2
        assert "INITLAB_THREADS must be an integer >= 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
