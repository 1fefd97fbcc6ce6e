"""The contract every paper module keeps: a :class:`Paper` that runs to a :class:`PaperResult`.

A paper module (``initlab/papers/<name>.py``) defines ``PAPER = Paper(...)``. ``Paper.run(quick,
seed)`` measures and returns a picklable :class:`PaperResult` (numbers only, no figures);
``Paper.figures(result)`` draws the paper's figures from those numbers. Keeping the two apart lets
a result travel (Ray, pickle, JSON) and be redrawn without re-running anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Claim", "PaperResult", "Paper"]


@dataclass
class Claim:
    """One claim of a paper, decided by a measured criterion that the report states.

    ``criterion`` is the test in words (e.g. ``"epochs_to_threshold[he][30] < epochs[xavier][30]"``);
    it is fixed before the run and never tuned to make the claim pass.
    """

    id: str
    statement: str  # what the paper says, in one sentence
    measured: dict[str, Any]  # the numbers the criterion reads (JSON-clean)
    holds: bool
    criterion: str = ""
    note: str = ""  # why it does or does not reproduce at this scale, when that needs saying
    # the criterion holds by the init's definition (nothing the run could have found otherwise): shown, not counted
    by_construction: bool = False
    # the run could not test the claim (e.g. a claim about training on a run that did not learn): not counted
    inconclusive: bool = False

    @property
    def status(self) -> str:
        """``reproduced``, ``not reproduced``, ``inconclusive`` or ``by construction``."""
        if self.by_construction:
            return "by construction"
        if self.inconclusive:
            return "inconclusive"
        return "reproduced" if self.holds else "not reproduced"

    @property
    def counted(self) -> bool:
        """Whether the claim counts among the reproduced-or-not (a real test of the paper)."""
        return not (self.by_construction or self.inconclusive)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"status": self.status}


@dataclass
class PaperResult:
    """The outcome of re-running one paper: claims, the measured keys, and how the setup differs."""

    name: str
    title: str
    citation: str
    quick: bool
    seed: int
    claims: list[Claim]
    measured: dict[str, Any]  # the named keys (e.g. ``final_loss``), JSON-clean
    setup: str  # what was run, in a few sentences
    differences: str  # how this differs from the paper's setup, and why
    elapsed_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)  # arrays/curves the figures need (JSON-clean)

    @property
    def reproduced(self) -> int:
        """Claims whose measured criterion held (inconclusive and by-construction ones excluded)."""
        return sum(c.holds and c.counted for c in self.claims)

    @property
    def tested(self) -> int:
        """Claims the run tested: neither inconclusive nor true by construction."""
        return sum(c.counted for c in self.claims)

    def to_dict(self) -> dict[str, Any]:
        """What ``initlab paper NAME --json`` prints and ``results.json`` holds."""
        return {
            "paper": self.name, "title": self.title, "citation": self.citation,
            "quick": self.quick, "seed": self.seed, "elapsed_s": round(self.elapsed_s, 3),
            "claims": [c.to_dict() for c in self.claims],
            "measured": self.measured, "setup": self.setup, "differences": self.differences,
        }

    def _repr_html_(self) -> str:
        """Notebook display: the claims with yes/no badges, setup, differences and the figures."""
        from .report import result_html

        return result_html(self)


@dataclass(frozen=True)
class Paper:
    """A re-runnable paper: ``run(quick, seed) -> PaperResult`` and ``figures(result) -> {stem: Figure}``."""

    name: str
    title: str
    citation: str
    summary: str  # one line for ``initlab paper --list``
    run: Callable[[bool, int], PaperResult]
    figures: Callable[[PaperResult], dict[str, Any]]
