"""``initlab.autoinit``: one call that initializes every layer of any model (issue 10).

Populated by the analytic and empirical modes; the report lives in :mod:`.report`.
"""

from __future__ import annotations

from .report import AutoInitReport, ParamEntry, UnhealthyInitError

__all__ = ["AutoInitReport", "ParamEntry", "UnhealthyInitError"]
