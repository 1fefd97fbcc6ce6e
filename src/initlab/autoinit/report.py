"""The account ``initlab.autoinit`` returns: what it did to each parameter, and whether it worked.

One :class:`ParamEntry` per parameter of the model (touched or left, and why), the scale chosen,
the predicted and the measured output std of its module on the example; plus a stability
analysis across depth (mean-field chi_1 per activation, Poole et al. 2016; Schoenholz et al.
2017), the std of the stream between repeated blocks (:mod:`initlab.autoinit.stream`), and
warnings. :meth:`AutoInitReport.assert_healthy` raises for use in tests and CI.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _html
from .._validation import InitlabError
from ..diagnostics.thresholds import STD_BAND, STREAM_SPREAD, UNHEALTHY_VERDICTS, in_band
from ..initializers.account import KINDS, ParamEntry  # one row type for apply_init and autoinit

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ParamEntry", "AutoInitReport", "UnhealthyInitError", "KINDS", "Problem", "PROBLEM_CODES",
           "STABILITY_UNAVAILABLE"]

# The start of the warning autoinit gives when the tracer cannot follow the model for the stability analysis.
STABILITY_UNAVAILABLE = "stability analysis unavailable"

PROBLEM_CODES = (
    "output_std_off",         # a module's measured output std outside STD_BAND x what it was scaled to
    "tied_output_off",        # a weight tied to another use (GPT-2's lm_head): its module's output misses the target
    "unstable_depth",         # the gradient norm's change over the depth leaves GRADIENT_BAND, or no scale keeps it
    "stability_unavailable",  # the stability across depth could not be analysed
    "stream_not_flat",        # the std between repeated blocks spreads more than the band allows
    "signal_drift",           # empirical mode: the signal entering repeated layers drifts more than the band allows
    *UNHEALTHY_VERDICTS,      # diagnose's verdict on the initialized model and the example (the same judgement)
)


@dataclass(frozen=True)
class Problem:
    """One reason :meth:`AutoInitReport.assert_healthy` raises: a code of :data:`PROBLEM_CODES`, where
    (a module, an activation or a group of blocks; "" for the whole model), the numbers, the sentence."""

    code: str
    where: str
    message: str
    numbers: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message



class UnhealthyInitError(InitlabError, AssertionError):
    """Raised by :meth:`AutoInitReport.assert_healthy` when a measured scale is out of bounds."""


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


@dataclass
class AutoInitReport:
    """What ``initlab.autoinit`` did, per parameter, and the depth-stability analysis.

    ``stability``: one dict per activation kind met in the model, with at least ``activation``,
    ``chi_1`` (mean-field slope at the chosen scale), ``stable`` (bool) and ``message``.
    ``stream``: one dict per group of repeated blocks (``blocks``, ``names``, ``where``, ``std``, ``entry``,
    ``entry_std``, ``max_over_min``; see :func:`initlab.autoinit.stream.stream_rows`), measured on
    the example after the init.
    """

    mode: str                                    # "analytic" | "empirical"
    target_std: float                            # the output std each layer was scaled to
    entries: list[ParamEntry] = field(default_factory=list)
    stability: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # extras: iterations (empirical), graph method, ...
    stream: list[dict[str, Any]] = field(default_factory=list)     # the std between repeated blocks, measured

    # ---- views -------------------------------------------------------------------------
    def touched(self) -> list[ParamEntry]:
        """Entries of the parameters autoinit set."""
        return [e for e in self.entries if e.action == "touched"]

    def left(self) -> list[ParamEntry]:
        """Entries of the parameters autoinit left as they were (with the reason)."""
        return [e for e in self.entries if e.action == "left"]

    def measured(self) -> dict[str, float]:
        """Module name -> measured output std on the example (one value per module)."""
        out: dict[str, float] = {}
        for e in self.entries:
            if e.measured_std is not None and e.module not in out:
                out[e.module] = e.measured_std
        return out

    def unstable(self) -> list[dict[str, Any]]:
        """Stability rows where no scalar init keeps the signal stable across depth."""
        return [s for s in self.stability if not s.get("stable", True)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: mode, target_std, entries, stability, stream, warnings, info."""
        return {
            "mode": self.mode, "target_std": self.target_std,
            "entries": [e.to_dict() for e in self.entries],
            "stability": [{k: _clean(v) for k, v in s.items()} for s in self.stability],
            "stream": [{k: ([_clean(x) for x in v] if isinstance(v, list) else _clean(v)) for k, v in s.items()}
                       for s in self.stream],
            "warnings": list(self.warnings), "info": {k: _clean(v) for k, v in self.info.items()},
        }

    def table(self) -> pd.DataFrame:
        """The entries as a pandas DataFrame, one row per parameter."""
        import pandas as pd

        cols = ["name", "module", "kind", "action", "reason", "std", "predicted_std", "measured_std"]
        return pd.DataFrame([asdict(e) for e in self.entries], columns=cols)

    # ---- checks ------------------------------------------------------------------------
    def judge(self, model: Any, example: Any) -> None:
        """Diagnose the initialized ``model`` on ``example`` (``initlab.diagnose``: one forward and one
        backward pass, the surrogate loss) and keep its verdicts in ``info["verdicts"]``: each verdict of
        ``thresholds.UNHEALTHY_VERDICTS`` is a problem, so ``assert_healthy`` and ``diagnose`` give one
        judgement. A model diagnose cannot read is said in a warning."""
        from ..diagnostics.diagnose import diagnose

        try:
            diag = diagnose(model, example)
        except Exception as err:  # diagnose cannot read every model: the init stands, and the report says so
            line = (str(err).splitlines() or [""])[0][:200]
            self.warnings.append(f"diagnose could not judge the initialized model: {type(err).__name__}: {line}")
            return
        self.info["verdicts"] = [{"code": v.code, "layers": list(v.layers), "message": v.message}
                                 for v in diag.verdicts]

    def stream_problems(self, limit: float = STREAM_SPREAD) -> list[str]:
        """One line per group of repeated blocks whose stream std spreads more than ``limit``
        (max/min over the blocks), with the numbers and what to change."""
        return [self._stream_line(row, limit) for row in self.stream
                if not (row["max_over_min"] <= limit)]

    def _stream_line(self, row: dict[str, Any], limit: float) -> str:
        std, names, ratio = row["std"], row["names"], row["max_over_min"]
        residual = int(self.info.get("residual_additions", 1) or 1) > 1
        what = "the residual stream" if residual else "the signal"
        where = f"{row['where'].replace('before', 'entering')} blocks {names[0]} .. {names[-1]}"
        i_lo, i_hi = std.index(min(std)), std.index(max(std))
        verb = ("grows" if i_lo < i_hi else "shrinks") if {i_lo, i_hi} == {0, len(std) - 1} else "varies"
        line = (f"{what} {where} {verb} {ratio:.3g}x over {len(std)} blocks ({std[0]:.3g} -> {std[-1]:.3g}"
                + (f", min {std[i_lo]:.3g} at {names[i_lo]}, max {std[i_hi]:.3g} at {names[i_hi]}" if verb == "varies" else "")
                + f"; max/min allowed {limit:g})")
        if not residual:
            return line + ("; what lies between the blocks' weight layers moves it (a fixed scale, pooling, "
                           "a norm's gain): change that, or the blocks' last layers")
        ends = [n for n in self._branch_ends() if any(n.startswith(b + ".") for b in [row["entry"], *names])]
        example = f" (e.g. {ends[0]})" if ends else ""
        if verb == "grows":
            added = math.sqrt(max(0.0, std[-1] ** 2 - std[0] ** 2) / (len(std) - 1))
            line += (f"; it enters block {row['entry']} at std "
                     f"{row['entry_std']:.3g} and each block adds about {added:.3g} (in quadrature)")
            if row.get("normalized"):  # the branches read a normalized stream: what they add does not scale with it
                return line + (": scale the embedding or input layer up, or the "
                               f"weights that end each branch{example} down, until the stream's start outweighs "
                               "what the blocks add")
            # no norm in the blocks: what a branch adds is computed from the raw stream and scales with it,
            # so a larger input scales the whole stream (a ReLU branch without bias: exactly) and not the ratio
            return line + (": the blocks hold no normalization layer, so what each branch adds scales with the "
                           "stream it reads and scaling the input up scales it too; scale the weights that end "
                           f"each branch{example} down (e.g. by 1/sqrt(number of blocks)), or normalize each "
                           "branch's input (pre-LayerNorm)")
        return line + (f"; the blocks scale the stream they carry: look at what multiplies the skip path and at the "
                       f"weights that end each branch{example}")

    def _branch_ends(self) -> list[str]:
        names = list(self.info.get("residual_branches", []))
        names += [e.name for e in self.entries if e.reason.startswith("ends a residual branch")]
        return list(dict.fromkeys(names))

    def problems(self, tol: tuple[float, float] = STD_BAND) -> list[str]:
        """One line per problem (see :meth:`problem_records`): the sentences ``assert_healthy`` raises with."""
        return [p.message for p in self.problem_records(tol)]

    def problem_records(self, tol: tuple[float, float] = STD_BAND) -> list[Problem]:
        """Every problem, as a :class:`Problem` (code, where, numbers, sentence).

        - ``output_std_off``: a module is checked against its predicted output std (residual branches
          are scaled to target/sqrt(R) on purpose), or against ``target_std`` where nothing was
          predicted (empirical mode): the ratio measured/expected must lie in ``tol``;
        - ``tied_output_off``: a weight tied to another use (drawn for that one) whose module's output
          std misses ``target_std`` by more than ``tol`` (GPT-2's ``lm_head``, tied to the embedding);
        - ``unstable_depth``: an activation whose gradient norm change over its layers leaves the
          gradient band (``diagnostics.thresholds.GRADIENT_BAND``), or that no scale keeps stable;
        - ``stability_unavailable``: the analysis could not be made (the tracer failed, or an
          activation has no autograd derivative);
        - ``stream_not_flat``, ``signal_drift``: the std between repeated blocks (or entering repeated
          layers, LSUV's reading) spreads by more than the band's wider side, max(hi, 1/lo) (2 by default).
        """
        lo, hi = float(tol[0]), float(tol[1])
        spread = max(hi, 1.0 / lo)
        out: list[Problem] = []
        seen: set[str] = set()
        for e in self.touched():
            if e.measured_std is None or e.module in seen or e.kind in ("bias", "norm"):
                continue
            ref = e.predicted_std if e.predicted_std is not None else (self.target_std if self.mode != "analytic" else None)
            if ref is None or ref <= 0:
                continue
            seen.add(e.module)
            m = e.measured_std
            if not (math.isfinite(m) and lo * ref <= m <= hi * ref):
                out.append(Problem("output_std_off", e.module,
                                   f"{e.module}: measured output std {m:.3g}, expected {ref:.3g} "
                                   f"(allowed x{lo:g}..x{hi:g})",
                                   {"measured_std": m, "expected_std": ref}))
        for e in self.left():
            if (e.reason.startswith("tied to") and e.measured_std is not None and e.module not in seen
                    and e.kind not in ("bias", "norm") and not in_band(e.measured_std / self.target_std, (lo, hi))):
                seen.add(e.module)
                out.append(Problem("tied_output_off", e.module,
                                   f"{e.module}: measured output std {e.measured_std:.3g}, target {self.target_std:g} "
                                   f"(allowed x{lo:g}..x{hi:g}): {e.name} is {e.reason}, drawn for that use; untie it, "
                                   "or scale this layer's output (a multiplier on it)",
                                   {"measured_std": e.measured_std, "expected_std": self.target_std}))
        for s in self.stability:
            label = str(s.get("activation"))
            if s.get("chi_1") is None:
                text = str(s.get("message", f"{label}: chi_1 not computed"))
                out.append(Problem("stability_unavailable", label, text))
            elif not s.get("stable", True):
                out.append(Problem("unstable_depth", label,
                                   str(s.get("message", f"{label}: unstable across depth")),
                                   {"chi_1": s["chi_1"], "gradient_gain": s.get("gradient_gain", float("nan")),
                                    "layers": s.get("layers", 0)}))
        for w in self.warnings:
            if w.startswith(STABILITY_UNAVAILABLE):
                out.append(Problem("stability_unavailable", "", w))
        for row in self.stream:
            if not (row["max_over_min"] <= spread):
                out.append(Problem("stream_not_flat", f"{row['where']} {row['blocks']}", self._stream_line(row, spread),
                                   {"max_over_min": row["max_over_min"]}))
        for v in self.info.get("verdicts", []):
            if v["code"] in UNHEALTHY_VERDICTS:
                where = ", ".join(v["layers"][:3]) + (", ..." if len(v["layers"]) > 3 else "")
                out.append(Problem(v["code"], where, f"diagnose on the example: {v['code']}: {v['message']}"))
        drift = self.info.get("signal_drift")
        if isinstance(drift, dict) and math.isfinite(drift.get("ratio", 1.0)) and not in_band(
                drift["ratio"], (1.0 / spread, spread)):
            out.append(Problem("signal_drift", f"{drift['first']} .. {drift['last']}",
                               f"the signal entering the repeated layers changes {drift['ratio']:.3g}x from "
                               f"{drift['first']} to {drift['last']} (max/min allowed {spread:g}): each layer's output "
                               "is rescaled, but what lies between them (the activation, a residual addition) moves it",
                               {"ratio": drift["ratio"]}))
        return out

    def assert_healthy(self, tol: tuple[float, float] = STD_BAND) -> None:
        """Raise :class:`UnhealthyInitError` listing every problem (see :meth:`problems`); None if healthy."""
        probs = self.problems(tol)
        if probs:
            shown = "; ".join(probs[:5]) + (f"; ... ({len(probs) - 5} more)" if len(probs) > 5 else "")
            raise UnhealthyInitError(f"autoinit ({self.mode}) not healthy: {shown}")

    # ---- display -----------------------------------------------------------------------
    def __repr__(self) -> str:
        n_t, n_l = len(self.touched()), len(self.left())
        flag = "healthy" if not self.problems() else f"{len(self.problems())} problem(s)"
        return (f"AutoInitReport(mode={self.mode!r}, target_std={self.target_std:g}, "
                f"touched={n_t}, left={n_l}, {flag})")

    def summary(self) -> str:
        """Plain-text account: one line per parameter, then stability and warnings."""
        lines = [repr(self)]
        for e in self.entries:
            what = "touched" if e.action == "touched" else f"left ({e.reason})"
            lines.append(f"  {e.name:<40} {e.kind:<10} {what:<28} std={_html.number(e.std)} "
                         f"pred={_html.number(e.predicted_std)} meas={_html.number(e.measured_std)}")
        for s in self.stability:
            lines.append(f"  stability: {s.get('message', '')}")
        for s in self.stream:
            lines.append(f"  stream {s['where']} {s['blocks']}: " + " ".join(f"{v:.3g}" for v in s["std"])
                         + f" (max/min {s['max_over_min']:.3g})")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        probs = self.problems()
        badge = _html.badge("healthy" if not probs else f"{len(probs)} problem(s)", "ok" if not probs else "bad")
        rows = [(e.name, e.kind, e.action, e.reason, _html.number(e.std), _html.number(e.predicted_std),
                 _html.number(e.measured_std)) for e in self.entries]
        parts: list[Any] = [badge, _html.table(("parameter", "kind", "action", "reason", "std", "predicted", "measured"),
                                               rows, right=(4, 5, 6))]
        if self.stability:
            parts.append(_html.table(("activation", "chi_1", "stable", "message"),
                                     [(s.get("activation"), _html.number(s.get("chi_1")), s.get("stable"),
                                       s.get("message", "")) for s in self.stability], right=(1,)))
        if self.stream:
            parts.append(_html.table(("blocks", "stream std (first .. last)", "max/min"),
                                     [(f"{s['where']} {s['blocks']}", " ".join(f"{v:.3g}" for v in s["std"]),
                                       _html.number(s["max_over_min"])) for s in self.stream], right=(2,)))
        for w in self.warnings:
            parts.append(_html.badge(w, "warn"))
        return _html.box(f"autoinit ({self.mode}), target std {self.target_std:g}", *parts)
