"""Read a sweep store into pandas: one row per run, and aggregates over seeds.

>>> import initlab.results
>>> df = initlab.results.load("initlab.db")                 # doctest: +SKIP
>>> initlab.results.aggregate(df)                           # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._validation import ValidationError, did_you_mean

__all__ = ["load", "run", "aggregate", "GROUP_COLUMNS", "METRICS"]

# The run parameters that tell runs apart, except the seeds (what aggregates average over).
GROUP_COLUMNS = ("dataset", "activation", "init", "bias_init", "depth", "width", "optimizer",
                 "learning_rate", "momentum", "epochs", "batch_size", "n_samples", "noise", "data_seed",
                 "validation_split")
METRICS = ("val_accuracy", "best_val_accuracy", "train_accuracy", "train_loss", "val_loss")


def load(store: str | Path, spec_hash: str | None = None, history: bool = False) -> pd.DataFrame:
    """A DataFrame of the runs in ``store`` (of one spec with ``spec_hash``), one row per run.

    Columns: the store's (``RunRecord.to_dict()``: the spec with ``init`` as a label and
    ``hidden`` as JSON, ``status``, ``diverged_epoch``, final and best metrics, ``wall_time``)
    plus ``init_spec`` and ``bias_spec``, the weight and bias initializers as JSON specs; with ``history=True`` also
    ``history`` (a dict of per-epoch lists), ``diagnostics_init`` and ``diagnostics`` (dicts)
    and ``spec`` (the run spec, a dict).
    """
    from .experiments.store import JSON_COLUMNS, Store

    path = Path(store)
    with Store(path, readonly=True) as db:  # reading writes nothing, not even to an initlab store
        if spec_hash is not None:
            known = [s["spec_hash"] for s in db.sweeps()]
            if spec_hash not in known:
                raise ValidationError(f"unknown sweep {spec_hash!r}{did_you_mean(spec_hash, known)} (in store: {', '.join(known)})")
        columns, rows = db.rows(spec_hash)
    df = pd.DataFrame(rows, columns=columns)
    # the weight initializer as a JSON spec (name and parameters): what theory needs to place a run
    specs = [json.loads(p) if p else None for p in df["spec"]]
    df["init_spec"] = [json.dumps(p["init"]) if p else None for p in specs]  # what theory needs to place a run
    df["bias_spec"] = [json.dumps(p["bias_init"]) if p else None for p in specs]
    decoded = ("history", "diagnostics", "diagnostics_init", "spec")
    if history:
        for col in decoded:
            df[col] = [json.loads(v) if v else None for v in df[col]]
    return df if history else df.drop(columns=[c for c in JSON_COLUMNS if c in decoded])


def run(store: str | Path, run_id: str) -> dict[str, Any]:
    """One run's stored record (``RunRecord.to_dict()``, JSON columns decoded) by run id or a unique prefix.

    Its ``spec`` re-runs it: ``initlab train --spec`` on the JSON, or ``RunSpec(**record["spec"])``.
    """
    from .experiments.store import Store

    path = Path(store)
    with Store(path, readonly=True) as db:  # reading writes nothing, not even to an initlab store
        found = db.run_ids(run_id)
        if len(found) != 1:
            if found:
                raise ValidationError(f"run id prefix {run_id!r} matches {len(found)} runs ({', '.join(found[:5])}, ...); give more digits")
            raise ValidationError(f"no run {run_id!r} in {str(path)!r} (see `initlab results --store {path} --format csv`)")
        record = db.record(found[0])
        assert record is not None  # run_ids just found it, and runs are never deleted
        return record


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
