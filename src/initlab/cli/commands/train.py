"""``initlab train``: one experiment, any data set, initializer, activation and network."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..defaults import TRAIN_OUT
from ..main import app
from ._runs import epoch_progress, print_results


@app.command("train")
def train_command(
    dataset: str = typer.Option("moons", "--dataset", help="moons, circles, xor, spirals, gaussians, digits, breast_cancer, or a .csv path."),
    init: str = typer.Option("glorot_uniform", "--init", help='Weight initializer: a name from `initlab inits` or a JSON spec like \'{"name": "normal", "std": 0.5}\'.'),
    bias_init: str = typer.Option("zeros", "--bias-init", help="Bias initializer (same forms as --init)."),
    activation: str = typer.Option("relu", "--activation", help="Hidden activation: relu, tanh, sigmoid, leaky_relu, elu, selu, gelu, silu, linear."),
    hidden: str = typer.Option("10", "--hidden", help="Hidden layer sizes, comma-separated: 10 or 32,32."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam, sgd or rmsprop (Keras defaults)."),
    learning_rate: float | None = typer.Option(None, "--lr", "--learning-rate", help="Learning rate (default: Keras' for the optimizer)."),
    momentum: float = typer.Option(0.0, "--momentum", help="SGD/RMSprop momentum."),
    epochs: int = typer.Option(100, "--epochs", help="Training epochs."),
    batch_size: int = typer.Option(32, "--batch-size", help="Minibatch size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weight draw and the minibatch order (sets both)."),
    init_seed: int | None = typer.Option(None, "--init-seed", help="Seed of the weight draw alone (overrides --seed)."),
    order_seed: int | None = typer.Option(None, "--order-seed", help="Seed of the minibatch order alone (overrides --seed)."),
    n_samples: int = typer.Option(100, "--n-samples", help="Points of a generated data set."),
    noise: float = typer.Option(0.1, "--noise", help="Noise of a generated data set."),
    data_seed: int = typer.Option(0, "--data-seed", help="Seed of a generated data set."),
    validation_split: float = typer.Option(0.2, "--validation-split", help="Last fraction of the rows held out, as Keras."),
    name: str | None = typer.Option(None, "--name", help="Experiment name (default: INIT_ACTIVATION)."),
    spec_file: Path | None = typer.Option(None, "--spec", help="Re-run the runs of a results.json (from train, reproduce or the lab's download) or of `initlab results --run ID --format json`; the other options are ignored."),
    run: str | None = typer.Option(None, "--run", help="With --spec: only the run with this name or run id."),
    out: Path = typer.Option(Path(TRAIN_OUT), "--out", help="Folder for report.html, report.md, results.json and the PNGs."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Train one network and measure its initialization before and after; same outputs as reproduce.

    Examples:

      initlab train --dataset moons --init he_normal --activation relu --hidden 10

      initlab train --dataset circles --init zeros --activation tanh --hidden 16,16 --epochs 200 --out /tmp/t

      initlab train --spec initlab-out/reproduce/results.json --run zeros_relu
    """
    from ...experiments.spec import RunSpec, parse_init
    from ...experiments.train import load_specs, train_many

    if spec_file is not None:
        specs = load_specs(spec_file, run)
    else:
        init_spec, bias_spec = parse_init(init), parse_init(bias_init)
        specs = [RunSpec(
            name=name or f"{init if isinstance(init_spec, str) else init_spec['name']}_{activation}",
            dataset=dataset, n_samples=n_samples, noise=noise, data_seed=data_seed,
            validation_split=validation_split, activation=activation, hidden=hidden,
            init=init_spec, bias_init=bias_spec, optimizer=optimizer, learning_rate=learning_rate,
            momentum=momentum, epochs=epochs, batch_size=batch_size,
            init_seed=seed if init_seed is None else init_seed, order_seed=seed if order_seed is None else order_seed,
        )]
    with epoch_progress(quiet=as_json) as progress:
        _, outputs = train_many(specs, out, progress=progress)
    entries = json.loads(outputs.results_json.read_text())["experiments"]
    print_results(entries, outputs.folder, outputs.figures, as_json)
