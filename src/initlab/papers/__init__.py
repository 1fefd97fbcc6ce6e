"""The classic initialization papers, re-run: ``initlab.papers.run(NAME, quick=False)``.

One module per paper; each defines ``PAPER`` (see :mod:`initlab.papers._base`). Modules load on
first use, so listing the papers imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import cast

from .._validation import ValidationError, check_choice, check_int
from ._base import Claim, Paper, PaperResult

__all__ = ["Claim", "Paper", "PaperResult", "names", "get", "run"]

# name -> module; the order is the order of ``initlab paper --list``
_MODULES: dict[str, str] = {
    "glorot2010": "glorot2010",
    "he2015": "he2015",
    "saxe2014": "saxe2014",
    "mishkin2016": "mishkin2016",
    "schoenholz2017": "schoenholz2017",
    "hanin2018": "hanin2018",
    "zhao2022": "zhao2022",
    "zhang2019": "zhang2019",
}


def names() -> list[str]:
    """The papers initlab can re-run, in listing order."""
    return list(_MODULES)


def get(name: str) -> Paper:
    """The :class:`Paper` called ``name``; an unknown name raises with a did-you-mean."""
    name = check_choice("paper", name, names())
    module = f"{__name__}.{_MODULES[name]}"
    try:
        return cast(Paper, importlib.import_module(module).PAPER)  # every paper module defines PAPER
    except ModuleNotFoundError as err:
        if err.name != module:  # a missing dependency inside the module: a real error
            raise
        raise ValidationError(f"paper {name!r} is not in this build of initlab (no module {module})") from None


def run(name: str, quick: bool = False, seed: int = 0) -> PaperResult:
    """Re-run paper ``name`` and return its measured claims (no files written; see ``save``)."""
    import time

    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    paper = get(name)
    start = time.perf_counter()
    result = paper.run(bool(quick), seed)
    result.elapsed_s = time.perf_counter() - start
    return result
