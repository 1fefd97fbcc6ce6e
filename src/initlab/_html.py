"""Small pieces of self-contained HTML for notebooks' ``_repr_html_``: inline styles, base64 images.

Every text goes through :func:`html.escape`; a :class:`Raw` string is HTML already built here
and is passed through. The styles are inline (``style="..."``), not a ``<style>`` block, so a
notebook front end that strips style sheets still shows the colours, and nothing leaks into
the page around the output. The colours are the browser lab's (``server/static/lab.css``).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Raw", "escape", "number", "badge", "table", "fields", "image", "box", "TONES"]

# badge colours of the lab: ok (green), bad (red), warn (orange); anything else grey
TONES = {"ok": "#2ca02c", "bad": "#d62728", "warn": "#e08a00"}
INK, MUTED, LINE, BG = "#1d2430", "#6b7585", "#e2e6ec", "#f6f7f9"
_CELL = f"padding:2px 8px;border-bottom:1px solid {LINE};vertical-align:top;text-align:"  # + left or right
_HEAD = f"color:{MUTED};font-weight:600;" + _CELL


class Raw(str):
    """HTML built by this module: not escaped again."""


def escape(value: Any) -> str:
    """``value`` as HTML text: a :class:`Raw` as it is, anything else through ``str`` and :func:`html.escape`."""
    return value if isinstance(value, Raw) else html.escape(str(value))


def number(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits; '-' for None, 'nan', 'inf' as such."""
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}" if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def badge(text: Any, tone: str = "", title: str = "") -> Raw:
    """A rounded label in the lab's colours (``tone``: ok, bad, warn; else grey), ``title`` on hover."""
    colour = TONES.get(tone, "#7f7f7f")
    hover = f' title="{escape(title)}"' if title else ""
    return Raw(f'<span style="display:inline-block;border-radius:10px;padding:1px 8px;font-size:11px;'
               f'font-weight:600;color:#fff;background:{colour};white-space:nowrap"{hover}>{escape(text)}</span>')


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> Raw:
    """A compact table; cells are escaped (or :class:`Raw`); columns in ``right`` are right-aligned."""
    def cell(tag: str, style: str, i: int, value: Any) -> str:
        return f'<{tag} style="{style}{"right" if i in right else "left"}">{escape(value)}</{tag}>'

    head = "".join(cell("th", _HEAD, i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", _CELL, i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return Raw(f'<table style="border-collapse:collapse;font-size:12px;margin:4px 0">'
               f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def fields(pairs: Iterable[tuple[Any, Any]]) -> Raw:
    """A two-column table of ``(label, value)`` pairs, labels muted."""
    rows = "".join(f'<tr><th style="{_HEAD}left;font-weight:normal">{escape(k)}</th><td style="{_CELL}left">{escape(v)}</td></tr>'
                   for k, v in pairs)
    return Raw(f'<table style="border-collapse:collapse;font-size:12px;margin:4px 0"><tbody>{rows}</tbody></table>')


def image(png: bytes, alt: str) -> Raw:
    """A PNG inlined as a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    return Raw(f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" style="max-width:100%;height:auto">')


def box(title: Any, *parts: Any, subtitle: Any = "") -> Raw:
    """The frame of one object: a bold title, a muted subtitle, then ``parts`` (escaped unless Raw)."""
    sub = f' <span style="color:{MUTED};font-weight:normal">{escape(subtitle)}</span>' if subtitle else ""
    body = "".join(escape(p) for p in parts)
    return Raw(f'<div style="font-family:system-ui,-apple-system,\'Segoe UI\',sans-serif;font-size:13px;color:{INK};'
               f'line-height:1.4;max-width:1000px"><div style="font-weight:600;margin-bottom:4px">{escape(title)}{sub}</div>'
               f"{body}</div>")
