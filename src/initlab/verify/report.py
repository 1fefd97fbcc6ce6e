"""The verify report: one row per parameter, the tied pairs, and the family-wise verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .. import _html
from .._json import json_safe
from .law import Law
from .stats import Measured

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ParamCheck", "TieCheck", "VerifyReport", "STATUSES"]

STATUSES = ("pass", "fail", "untested", "unmatched", "skipped")


@dataclass
class ParamCheck:
    """One parameter: its declared law, what was measured and the verdict.

    ``status``: pass; fail (``failed`` names the statistics: ks, std, kurtosis, max_z, exact);
    untested (drawn, but too few values for the tests; exact checks still ran); unmatched (the
    recipe declares nothing for it: ``reason`` says why); skipped (the recipe says so).
    """

    name: str
    shape: tuple[int, ...]
    status: str
    declared: str = "-"                  # the law as text, or "exact values of <scheme>"
    source: str = ""                     # which rule of the recipe declared it
    law: Law | None = None
    measured: Measured | None = None
    failed: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # other names of the same (tied) tensor
    reason: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "status": self.status, "failed": self.failed,
                "declared": self.declared, "law": self.law.to_dict() if self.law else None, "source": self.source,
                "aliases": self.aliases, "reason": self.reason, "note": self.note,
                "measured": self.measured.to_dict() if self.measured else None}


@dataclass
class TieCheck:
    """A pair the model ties (``tied`` is read from ``source``): still one tensor?"""

    name: str          # the tied name, e.g. "lm_head.weight"
    target: str        # the tensor it should be, e.g. "transformer.wte.weight"
    ok: bool
    source: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class VerifyReport:
    """The result of :func:`initlab.verify`.

    Multiple testing: every p-value of every parameter (``tests`` of them) is compared with
    ``alpha / tests`` (Bonferroni), so a model drawn from its recipe fails with probability at
    most ``alpha`` (the family-wise error rate), whatever the dependence between the tests.
    """

    recipe: str
    alpha: float
    tests: int
    threshold: float                      # alpha / tests: a p-value below fails
    params: list[ParamCheck]
    ties: list[TieCheck] = field(default_factory=list)
    correction: str = "bonferroni"

    @property
    def ok(self) -> bool:
        """No parameter fails and every tied pair is one tensor (unmatched ones are listed, not passed)."""
        return not self.failures

    @property
    def failures(self) -> list[str]:
        """Names of the parameters that fail, and of the tied names that are no longer tied."""
        names = [p.name for p in self.params if p.status == "fail"]
        return names + [t.name for t in self.ties if not t.ok and t.name not in names]

    def by_status(self, status: str) -> list[str]:
        """Names of the parameters with ``status`` (one of STATUSES)."""
        return [p.name for p in self.params if p.status == status]

    @property
    def unmatched(self) -> list[str]:
        return self.by_status("unmatched")

    @property
    def untested(self) -> list[str]:
        return self.by_status("untested")

    def __getitem__(self, name: str) -> ParamCheck:
        for p in self.params:
            if p.name == name or name in p.aliases:
                return p
        raise KeyError(name)

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        counts = ", ".join(f"{len(self.by_status(s))} {s}" for s in STATUSES if self.by_status(s))
        ties = f"; {sum(t.ok for t in self.ties)}/{len(self.ties)} tied pairs intact" if self.ties else ""
        verdict = "conforms" if self.ok else f"does not conform ({len(self.failures)} failing)"
        return (f"recipe {self.recipe}: {verdict}: {counts}{ties}; {self.tests} tests, Bonferroni at "
                f"family-wise alpha={self.alpha:g} (each p < {self.threshold:.3g} fails)")

    def __repr__(self) -> str:
        return f"VerifyReport({self.summary()})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: verdict, correction, every parameter and tie."""
        return cast(dict[str, Any], json_safe({"recipe": self.recipe, "ok": self.ok, "failures": self.failures,
                          "unmatched": self.unmatched, "untested": self.untested,
                          "alpha": self.alpha, "correction": self.correction, "tests": self.tests,
                          "threshold": self.threshold, "parameters": [p.to_dict() for p in self.params],
                          "ties": [t.to_dict() for t in self.ties]}))

    def _rows(self) -> list[tuple[str, ...]]:
        z = _z_crit(self.threshold)
        rows: list[tuple[str, ...]] = []
        for p in self.params:
            m = p.measured
            ratio = "-" if m is None or m.std_ratio is None else _html.number(m.std_ratio, 4) + (
                f" ±{_html.number(z * m.std_se, 2)}" if m.std_se else "")
            kurt = "-" if m is None or m.kurtosis is None else (
                f"{_html.number(m.kurtosis)} ({_html.number(m.kurtosis_declared)})")
            verdict = p.status + (f": {', '.join(p.failed)}" if p.failed else "")
            extra = p.reason or p.note
            rows.append((p.name + (f" (= {', '.join(p.aliases)})" if p.aliases else ""), p.declared,
                         str(m.n) if m else "-", ratio,
                         "-" if m is None or "ks" not in m.p else _html.number(m.p["ks"], 2),
                         kurt, "-" if m is None or m.max_z is None else _html.number(m.max_z),
                         verdict + (f" ({extra})" if extra else "")))
        return rows

    _HEADER = ("parameter", "declared", "n", "std ratio ± tol", "KS p", "kurtosis (law)", "max|z|", "verdict")

    def table(self, title: str | None = None) -> Table:
        """A ``rich`` table (the CLI prints it)."""
        from rich.table import Table

        table = Table(title=title or f"initlab verify: recipe {self.recipe}")
        for i, head in enumerate(self._HEADER):
            table.add_column(head, justify="right" if 2 <= i <= 6 else "left", overflow="fold")
        colours = {"pass": "green", "fail": "bold red", "unmatched": "yellow", "untested": "dim", "skipped": "dim"}
        for p, row in zip(self.params, self._rows(), strict=True):
            table.add_row(*row[:-1], f"[{colours[p.status]}]{_escape(row[-1])}[/]")
        for t in self.ties:
            table.add_row(t.name, f"tied to {t.target}", "", "", "", "", "",
                          "[green]tie intact[/]" if t.ok else f"[bold red]fail: tie ({_escape(t.reason)})[/]")
        return table

    def _repr_html_(self) -> str:
        tones = {"pass": "ok", "fail": "bad", "unmatched": "warn"}
        rows = [(*row[:-1], _html.badge(row[-1], tones.get(p.status, "")))
                for p, row in zip(self.params, self._rows(), strict=True)]
        rows += [(t.name, f"tied to {t.target}", "", "", "", "", "",
                  _html.badge("tie intact" if t.ok else f"fail: tie ({t.reason})", "ok" if t.ok else "bad"))
                 for t in self.ties]
        table = _html.table(self._HEADER, rows, right=(2, 3, 4, 5, 6))
        return _html.box(f"initlab verify: recipe {self.recipe}", table, subtitle=self.summary())


def _z_crit(threshold: float) -> float:
    """The two-sided normal critical value at ``threshold``."""
    from scipy.stats import norm

    return float(norm.isf(threshold / 2.0)) if 0 < threshold < 1 else math.inf


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
