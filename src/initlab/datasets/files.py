"""Tabular data from a CSV file, with errors that name the line and the column."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .._validation import DataError, did_you_mean

__all__ = ["load_csv", "parse_csv", "MIN_ROWS"]

MIN_ROWS = 5  # fewer cannot be split into training and validation data
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4028e38: larger values become inf in a float32 array


def load_csv(
    path: str | Path, features: list[str] | None = None, target: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read ``(X, y, class_names)`` from a CSV file with a header row.

    ``target`` defaults to the last column, ``features`` to every other column. Class labels
    may be numbers or strings; they are mapped to 0..K-1 in sorted order (``class_names``).
    Files like the classic notebook's ``ushape.csv`` (columns ``X, Y, class``) load as they are.
    Raises :class:`DataError` naming the line and column of the first bad cell.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (cannot decode as UTF-8)") from None
    return parse_csv(text, str(path), features, target)


def parse_csv(
    text: str, source: str = "data.csv", features: list[str] | None = None, target: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, class_names)`` from CSV text held in memory (an upload); as :func:`load_csv`.

    ``source`` names the data in error messages.
    """
    path = source
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if len(header) < 2:
        raise DataError(f"{path}: needs at least two columns (features and a target), got {header}")
    target = target if target is not None else header[-1]
    features = list(features) if features is not None else [h for h in header if h != target]
    for column in [target, *features]:
        if column not in header:
            raise DataError(
                f"{path}: no column {column!r}{did_you_mean(column, header)} (columns: {', '.join(header)})"
            )
    if len(body) < MIN_ROWS:
        raise DataError(f"{path}: too few rows: {len(body)} data rows, need at least {MIN_ROWS}")
    f_idx = [header.index(c) for c in features]
    t_idx = header.index(target)
    X = np.empty((len(body), len(features)), dtype=np.float32)
    labels = []
    for i, row in enumerate(body):
        line = i + 2  # 1-based, after the header
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")
        for j, k in enumerate(f_idx):
            X[i, j] = _number(path, row[k], line, header[k])
        label = row[t_idx].strip()
        if label == "":
            raise DataError(f"{path}: line {line}, column {target!r}: empty class label")
        labels.append(label)
    class_names, y = _encode(labels)
    if len(class_names) < 2:
        raise DataError(f"{path}: column {target!r} has one class only ({class_names[0]!r}); need at least two")
    return X, y, class_names


def _number(path: str, cell: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path}: line {line}, column {column!r}: not a number: {cell!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise DataError(f"{path}: line {line}, column {column!r}: missing or infinite value ({cell!r})")
    if abs(value) > _FLOAT32_MAX:  # finite as a Python float, infinite once cast to the float32 the nets train in
        raise DataError(f"{path}: line {line}, column {column!r}: {cell.strip()!r} is beyond float32's range "
                        f"(|x| <= {_FLOAT32_MAX:.4g}); rescale the column")
    return value


def _encode(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Map labels to 0..K-1: numerically sorted when all are numbers, else lexically."""
    try:
        keys = {lab: float(lab) for lab in labels}
        ordered = sorted(set(labels), key=lambda lab: keys[lab])
        ordered = [_tidy(lab) for lab in ordered]
        labels = [_tidy(lab) for lab in labels]
    except ValueError:
        ordered = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(dict.fromkeys(ordered))}
    return list(index), np.array([index[lab] for lab in labels], dtype=np.int64)


def _tidy(label: str) -> str:
    """'1.0' and '1' are the same class."""
    value = float(label)
    return str(int(value)) if value.is_integer() else label
