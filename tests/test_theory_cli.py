"""``initlab theory``: JSON output, tables, figures, exit code 2 with one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from initlab.cli.main import main


def test_point_json(capsys):
    assert main(["theory", "point", "--activation", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["phase"] == "ordered" and data["c_star"] == 1.0
    assert data["q_star"] == pytest.approx(0.418037, abs=1e-5)
    assert data["critical_sigma_w2"] == pytest.approx(1.76095, abs=1e-4)


def test_point_relu_critical_table(capsys):
    assert main(["theory", "point", "--activation", "relu", "--sigma-w2", "2"]) == 0
    out = capsys.readouterr().out
    assert "critical" in out and "chi_1" in out


@pytest.mark.parametrize(
    "argv, text",
    [
        (["theory", "point", "--activation", "tanhh", "--sigma-w2", "1"], "did you mean 'tanh'"),
        (["theory", "point", "--activation", "tanh", "--sigma-w2", "-1"], "sigma_w2 is a variance"),
        (["theory", "point", "--activation", "tanh", "--sigma-w2", "1", "--sigma-b2", "-0.5"], "sigma_b2 is a variance"),
        (["theory", "check", "--init", "he_norml", "--activation", "relu", "--depth", "2", "--width", "8"], "did you mean 'he_normal'"),
        (["theory", "check", "--init", "ones", "--activation", "relu", "--depth", "2", "--width", "8"], "zero-mean"),
        (["theory", "accuracy-map", "--results", "/nonexistent.csv"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, text, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err


def test_check_json_and_figure(tmp_path, capsys):
    png = tmp_path / "check.png"
    argv = ["theory", "check", "--init", "xavier_normal", "--activation", "tanh", "--depth", "4", "--width", "64",
            "--seeds", "2", "--batch", "64", "--out", str(png), "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["layers"]) == 4 and data["sigma_w2"] == [1.0] * 4
    assert png.stat().st_size > 10_000


def test_check_table(capsys):
    assert main(["theory", "check", "--init", "he_normal", "--activation", "relu", "--depth", "3", "--width", "32",
                 "--seeds", "2", "--batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "predicted q^l" in out and "measured q^l" in out


def test_phase_diagram_and_accuracy_map_write_pngs(tmp_path, capsys):
    out, depth = tmp_path / "phase.png", tmp_path / "depth.png"
    assert main(["theory", "phase-diagram", "--activation", "relu", "--out", str(out), "--depth-out", str(depth)]) == 0
    assert out.stat().st_size > 10_000 and depth.stat().st_size > 10_000
    csv = tmp_path / "runs.csv"
    pd.DataFrame({"depth": [5, 5, 10, 10], "sigma_w2": [1.0, 2.0, 1.0, 2.0], "activation": "tanh",
                  "val_accuracy": [0.9, 0.8, 0.7, 0.6]}).to_csv(csv, index=False)
    fig = tmp_path / "map.png"
    assert main(["theory", "accuracy-map", "--results", str(csv), "--out", str(fig)]) == 0
    assert fig.stat().st_size > 10_000


def test_accuracy_map_from_a_real_sweep_store(tmp_path, capsys):
    """A variance_scaling x depth sweep lands on the sigma_w2 axis at Var(W) * fan_in = scale."""
    import initlab.results
    from initlab.experiments import parse_spec, run_sweep
    from initlab.theory.plots import accuracy_heatmap

    scales = [0.5, 1.0, 4.0]
    spec = parse_spec({
        "data": {"n_samples": 60},
        "grid": {"init": [{"name": "variance_scaling", "scale": s, "distribution": "normal"} for s in scales],
                 "activation": ["tanh"], "depth": [1, 3], "width": [8], "seed": [0]},
        "train": {"epochs": 2, "diagnostics": False},
    })
    store = tmp_path / "crit.db"
    run_sweep(spec, store=store)
    frame = initlab.results.load(store)
    assert sorted(json.loads(s)["scale"] for s in frame["init_spec"].unique()) == scales
    out = tmp_path / "map.png"
    assert main(["theory", "accuracy-map", "--store", str(store), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    frame["init"] = frame["init_spec"]
    ax = accuracy_heatmap(frame, metric="val_accuracy").axes[0]
    assert [float(t.get_text()) for t in ax.get_xticklabels()] == scales  # log axis, one tick per column
    assert main(["theory", "accuracy-map", "--out", str(out)]) == 2
    assert "exactly one of --store" in capsys.readouterr().err
