"""Read a sweep store into pandas: one row per run, and aggregates over seeds.

>>> import initlab.results
>>> df = initlab.results.load("initlab.db")                 # doctest: +SKIP
>>> initlab.results.aggregate(df)                           # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ._validation import DataError, ValidationError, did_you_mean

__all__ = ["load", "aggregate", "GROUP_COLUMNS", "METRICS"]

# The run parameters that tell runs apart, except the init seed (what aggregates average over).
GROUP_COLUMNS = ("dataset", "activation", "init", "bias_init", "depth", "width", "optimizer", "learning_rate",
                 "momentum", "epochs", "batch_size", "n_samples", "noise", "data_seed", "validation_split")
METRICS = ("final_val_accuracy", "best_val_accuracy", "final_accuracy", "final_loss", "final_val_loss")
_JSON_COLUMNS = ("history_json", "diag_init_json", "diag_final_json", "params_json")


def load(store: str | Path, spec_hash: str | None = None, history: bool = False) -> pd.DataFrame:
    """A DataFrame of the runs in ``store`` (of one spec with ``spec_hash``), one row per run.

    Columns: the run parameters (``init`` as a label, ``init_spec`` as a JSON spec), ``status``, ``diverged_epoch``, final and best metrics,
    ``wall_time``; with ``history=True`` also ``history`` (a dict of per-epoch lists) and the
    diagnostics summaries ``diag_init`` and ``diag_final`` (dicts).
    """
    from .experiments.store import Store

    path = Path(store)
    if not path.is_file():
        raise DataError(f"store {str(path)!r} does not exist (run `initlab sweep SPEC.toml --store {path}` first)")
    with Store(path) as db:
        if spec_hash is not None:
            known = [s["spec_hash"] for s in db.sweeps()]
            if spec_hash not in known:
                raise ValidationError(f"unknown sweep {spec_hash!r}{did_you_mean(spec_hash, known)} (in store: {', '.join(known)})")
        columns, rows = db.rows(spec_hash)
    df = pd.DataFrame(rows, columns=columns)
    # the weight initializer as a JSON spec (name and parameters): what theory needs to place a run
    df["init_spec"] = [json.dumps(json.loads(p)["init"]) if p else None for p in df["params_json"]]
    if history:
        for col in _JSON_COLUMNS[:3]:
            df[col.removesuffix("_json")] = [json.loads(v) if v else None for v in df[col]]
    return df.drop(columns=list(_JSON_COLUMNS))


def aggregate(df: pd.DataFrame, by: Sequence[str] | None = None, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean, std and n of ``metrics`` over the runs that differ only in their init seed (or group ``by``).

    Columns are flat: ``<metric>_mean``, ``<metric>_std``, and ``n`` (runs), ``diverged`` (count).
    """
    if df.empty:
        return pd.DataFrame()
    if by is None:  # every parameter that varies in this store, except the seed
        by = [c for c in GROUP_COLUMNS if c in df and df[c].nunique(dropna=False) > 1] or ["init"]
    for col in [*by, *metrics]:
        if col not in df:
            raise ValidationError(f"unknown column {col!r}{did_you_mean(col, df.columns)} (columns: {', '.join(df.columns)})")
    grouped = df.groupby(list(by), dropna=False, sort=True)
    out = grouped[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["n"] = grouped.size()
    out["diverged"] = grouped["status"].apply(lambda s: int((s == "diverged").sum()))
    return out.reset_index()
