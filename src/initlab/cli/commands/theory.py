"""``initlab theory``: mean-field predictions (point, phase diagram, trainable depth, check, accuracy map)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..main import app, console

theory_app = typer.Typer(
    help="Mean-field signal propagation: predict before you train (Poole et al. 2016; Schoenholz et al. 2017).",
    no_args_is_help=True,
)
app.add_typer(theory_app, name="theory")


# The phase diagram's axes end at most here: the transition lies at sigma_w2 of order 1, and
# beyond ~1e300 matplotlib's tick and mesh arithmetic overflows (checked: 1e4 draws cleanly
# for tanh, relu and sigmoid with warnings as errors).
AXIS_MAX = 1e4


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.6g}"
    return str(v)


@theory_app.command("point")
def point_command(
    activation: str = typer.Option("tanh", "--activation", "-a", help="Activation name (initlab.models)."),
    sigma_w2: float = typer.Option(..., "--sigma-w2", help="Weight variance: Var W_ij = sigma_w2 / fan_in."),
    sigma_b2: float = typer.Option(0.0, "--sigma-b2", help="Bias variance."),
    as_json: bool = typer.Option(False, "--json", help="Print the quantities as JSON (inf as \"inf\")."),
) -> None:
    """q*, chi_1, c*, depth scales and phase at one (sigma_w2, sigma_b2).

    Example: initlab theory point --activation tanh --sigma-w2 1.5 --sigma-b2 0.05 --json
    """
    from ...theory import MeanField, critical_sigma_w2

    mf = MeanField(activation, sigma_w2, sigma_b2)
    data = mf.to_dict()
    crit = critical_sigma_w2(activation, sigma_b2)
    data["critical_sigma_w2"] = crit
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"mean field: {mf.activation}, sigma_w2={mf.sigma_w2:g}, sigma_b2={mf.sigma_b2:g}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    rows = [
        ("q*", mf.q_star, "fixed point of the pre-activation variance"),
        ("chi_1", mf.chi_1, "sigma_w2 E[phi'(h)^2]: <1 ordered, >1 chaotic"),
        ("c*", mf.c_star, "fixed point of the correlation between two inputs"),
        ("xi_q", mf.xi_q, "depth scale of the variance (layers)"),
        ("xi_c", mf.xi_c, "depth scale of the correlation (layers)"),
        ("6 xi_c", mf.trainable_depth, "predicted trainable depth (Schoenholz et al.)"),
        ("phase", mf.phase, ""),
        ("critical sigma_w2", crit, f"chi_1 = 1 at sigma_b2={mf.sigma_b2:g}"),
    ]
    for name, value, meaning in rows:
        table.add_row(name, _fmt(value), escape(meaning))
    console.print(table)


@theory_app.command("phase-diagram")
def phase_diagram_command(
    activation: str = typer.Option("tanh", "--activation", "-a", help="Activation name."),
    out: Path = typer.Option(Path("phase-diagram.png"), "--out", "-o", help="PNG to write."),
    depth_out: Path = typer.Option(None, "--depth-out", help="Also write the 6 xi_c trainable-depth plot here."),
    sigma_w2_max: float = typer.Option(4.0, "--sigma-w2-max", help="Right edge of the sigma_w2 axis."),
    sigma_b2_max: float = typer.Option(0.3, "--sigma-b2-max", help="Top edge of the sigma_b2 axis."),
) -> None:
    """The sigma_w2 x sigma_b2 phase diagram coloured by xi_c, critical line and named inits marked.

    Example: initlab theory phase-diagram --activation tanh --out phase.png --depth-out depth.png
    """
    from ..._validation import check_float
    from ...initializers._critical_point import variance_arg
    from ...plots import check_figure_path, save
    from ...theory import phase_diagram, trainable_depth_plot

    w_max, b_max = variance_arg("sigma_w2_max", sigma_w2_max), variance_arg("sigma_b2_max", sigma_b2_max)
    check_float("sigma_w2_max", w_max, 0.0, AXIS_MAX, strict_minimum=True)  # the axis needs a width
    check_float("sigma_b2_max", b_max, 0.0, AXIS_MAX)
    check_figure_path(out, "--out")
    if depth_out is not None:
        check_figure_path(depth_out, "--depth-out")
    path = save(phase_diagram(activation, sigma_w2=(min(0.5, w_max / 2), w_max), sigma_b2=(0.0, b_max)), out)
    console.print(f"wrote {path}")
    if depth_out is not None:
        console.print(f"wrote {save(trainable_depth_plot(activation, sigma_w2=(min(0.5, w_max / 2), w_max)), depth_out)}")


@theory_app.command("check")
def check_command(
    init: str = typer.Option(..., "--init", "-i", help="Initializer name or JSON spec."),
    activation: str = typer.Option("tanh", "--activation", "-a", help="Activation name."),
    depth: int = typer.Option(20, "--depth", help="Number of layers."),
    width: int = typer.Option(512, "--width", help="Units per layer (and input dimension)."),
    sigma_b2: float = typer.Option(0.0, "--sigma-b2", help="Bias variance (biases N(0, sigma_b2))."),
    seeds: int = typer.Option(5, "--seeds", help="Networks to average over."),
    batch: int = typer.Option(500, "--batch", help="Inputs x ~ N(0, I) per network."),
    seed: int = typer.Option(0, "--seed", help="Base seed."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the predicted-vs-measured plot (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Predicted vs measured per-layer pre-activation variance q^l on real networks.

    Example: initlab theory check --init xavier_normal --activation tanh --depth 50 --width 512
    """
    from ...plots import check_figure_path, save
    from ...runspec import parse_init
    from ...theory import check_variance, variance_check_plot

    if out is not None:
        check_figure_path(out, "--out")
    spec = parse_init(init)  # a name or a JSON spec; bad JSON is a one-line error
    result = check_variance(spec, activation, depth, width, sigma_b2, seeds=seeds, batch=batch, seed=seed)
    path = save(variance_check_plot(result), out) if out is not None else None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"pre-activation variance q^l (h^l = W phi(h^(l-1)) + b): {result.init} + {result.activation}, "
                        f"width {width}, {seeds} networks, q^0={result.q0:.4g}")
    for col in ("layer", "sigma_w2", "predicted q^l", "measured q^l", "std over nets", "error"):
        table.add_column(col, justify="right")
    for i in range(depth):
        table.add_row(str(i + 1), f"{result.sigma_w2[i]:.4g}", f"{result.predicted[i]:.5g}",
                      f"{result.measured[i]:.5g}", f"{result.measured_std[i]:.3g}", f"{100 * result.relative_error[i]:+.2f}%")
    console.print(table)
    console.print(f"max |error| {100 * result.max_relative_error:.2f}%")
    if path is not None:
        console.print(f"wrote {path}")


@theory_app.command("accuracy-map")
def accuracy_map_command(
    store: Path = typer.Option(None, "--store", "-s", help="A sweep store (initlab sweep --store FILE)."),
    results: Path = typer.Option(None, "--results", "-r", help="Or a CSV, one row per run: depth, sigma_w2 (or init), val_accuracy."),
    activation: str = typer.Option(None, "--activation", "-a", help="Activation (default: the runs' single activation)."),
    sigma_b2: float = typer.Option(None, "--sigma-b2", help="Bias variance (default: the runs' column, else 0)."),
    metric: str = typer.Option(None, "--metric", help="Column to colour by (default: val_accuracy for a store, val_accuracy for a CSV)."),
    out: Path = typer.Option(Path("accuracy-map.png"), "--out", "-o", help="PNG to write."),
) -> None:
    """Measured accuracy over depth x sigma_w2 with the predicted 6 xi_c curve overlaid.

    Example: initlab sweep examples/critical.toml --store critical.db && initlab theory accuracy-map --store critical.db --out map.png
    """
    from ... import results as results_store
    from ..._validation import ValidationError
    from ...plots import check_figure_path, save
    from ...theory import accuracy_heatmap
    from ...theory.plots import load_runs_csv

    if (store is None) == (results is None):
        raise ValidationError("give exactly one of --store (a sweep store) or --results (a CSV of runs)")
    check_figure_path(out, "--out")
    if store is not None:
        frame = results_store.load(store)
        frame["init"] = frame["init_spec"]
        frame["bias_init"] = frame["bias_spec"]
        metric = metric or "val_accuracy"
    else:
        frame = load_runs_csv(results)
        metric = metric or "val_accuracy"
    console.print(f"wrote {save(accuracy_heatmap(frame, activation, sigma_b2, metric), out)}")
