"""``initlab verify``: does a model hold the initialization its recipe declares? Exit 0 conforms, 3 does not."""

from __future__ import annotations

import json

import typer

from ..main import app, console

CONFORMS, DOES_NOT_CONFORM = 0, 3


@app.command("verify")
def verify_command(
    target: str = typer.Argument(..., metavar="FILE.py:FACTORY",
                                 help="A Python file (or module) and the function in it that returns the model."),
    recipe: str = typer.Option(..., "--recipe",
                               help="hf (the model's own _init_weights), torch (each module's reset_parameters), "
                                    "a catalog name (see `initlab inits`), or a recipe.toml of \"glob\" = spec lines."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise false-alarm rate (Bonferroni over every test)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of the table."),
) -> None:
    """Check every parameter against the declared recipe: KS test, std ratio, kurtosis, max |z|,
    exact constants, tied weights. Exit 0 when the model conforms, 3 when it does not (2 bad input,
    1 internal failure).

    Examples:
      initlab verify mymodel.py:make --recipe hf
      initlab verify mymodel.py:make --recipe torch --json
      initlab verify mymodel.py:make --recipe recipe.toml
    """
    from ...diagnostics.doctor import build_model, load_factory
    from ...verify import verify

    model = build_model(load_factory(target), target.rpartition(":")[2])
    report = verify(model, recipe.strip(), alpha=alpha)
    if as_json:
        print(json.dumps({"model": target, **report.to_dict()}, indent=2))
    else:
        console.print(report.table(title=f"initlab verify {target} --recipe {recipe}"))
        for p in report.params:
            if p.status == "unmatched":
                console.print(f"[yellow]unmatched[/]: {p.name}: {p.reason}", highlight=False)
        console.print(report.summary(), highlight=False)
    raise typer.Exit(CONFORMS if report.ok else DOES_NOT_CONFORM)
