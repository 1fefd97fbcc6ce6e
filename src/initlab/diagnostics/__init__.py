"""Diagnostics for any ``nn.Module``: per-layer statistics and verdicts with causes and fixes."""

from . import thresholds
from .diagnose import Diagnosis, LayerStats, Verdict, diagnose, record_forward
from .symmetry import distinct_units

__all__ = ["diagnose", "Diagnosis", "LayerStats", "Verdict", "distinct_units", "record_forward", "thresholds"]
