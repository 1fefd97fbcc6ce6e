"""Diagnostics for any ``nn.Module``: per-layer statistics and verdicts with causes and fixes."""

from . import thresholds
from .diagnose import Coverage, Diagnosis, LayerStats, Verdict, diagnose, layer_stats, record_forward
from .monitor import Monitor
from .recorder import Recorder
from .symmetry import distinct_units
from .verdicts import suggest_init, verdicts

__all__ = [
    "diagnose", "Diagnosis", "LayerStats", "Verdict", "Coverage", "distinct_units", "record_forward", "thresholds",
    "layer_stats", "Recorder", "Monitor", "verdicts", "suggest_init",
]
