"""One look for every figure: a colour per initializer, per activation, readable fonts.

Every figure in initlab takes its colours from here, so "he_normal" is the same green in
the reproduce report, the sweep heat maps, the theory plots and the browser lab.

The look is applied per figure, never globally: a function that makes a figure is decorated
with :func:`styled` (or makes it inside ``with style():``), so importing initlab or drawing
an initlab figure leaves matplotlib's backend and ``rcParams`` as the user set them. Figures
are plain ``matplotlib.figure.Figure`` objects, not pyplot's: they need no backend and no
display, and pyplot never holds them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from .._validation import ValidationError, did_you_mean
from ..initializers import canonical_name

__all__ = [
    "INIT_COLORS", "ACTIVATION_COLORS", "init_color", "activation_color", "CLASS_COLORS", "save", "check_figure_path",
    "STYLE", "style", "styled", "png_bytes",
]

# Families share a hue: Glorot blues, He greens, LeCun purples, constants greys/reds.
INIT_COLORS: dict[str, str] = {
    "zeros": "#d62728",
    "ones": "#8c564b",
    "constant": "#bc8f8f",
    "normal": "#ff7f0e",
    "uniform": "#ffbb78",
    "truncated_normal": "#e377c2",
    "variance_scaling": "#7f7f7f",
    "glorot_normal": "#1f77b4",
    "glorot_uniform": "#6baed6",
    "he_normal": "#2ca02c",
    "he_uniform": "#98df8a",
    "lecun_normal": "#9467bd",
    "lecun_uniform": "#c5b0d5",
    "orthogonal": "#17becf",
    "identity": "#bcbd22",
    "sparse": "#aec7e8",
    "lsuv": "#393b79",
    "critical": "#000000",
    "hadamard_identity": "#f0027f",  # ZerO
}
ACTIVATION_COLORS: dict[str, str] = {
    "relu": "#2ca02c", "leaky_relu": "#98df8a", "elu": "#17becf", "selu": "#9467bd",
    "gelu": "#8c564b", "silu": "#e377c2", "tanh": "#1f77b4", "sigmoid": "#d62728", "linear": "#7f7f7f",
}
CLASS_COLORS = ("#3b6fb6", "#e0802c", "#4aa05a", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
}

_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def style() -> Iterator[None]:
    """initlab's look (:data:`STYLE`) for the figures made inside; matplotlib's own settings come back after."""
    # matplotlib's stub types the keys as a Literal of rc names; STYLE's keys are such names
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield


def styled(make_figure: _F) -> _F:
    """Decorator: the figure-making function runs inside :func:`style`."""

    @functools.wraps(make_figure)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with style():
            return make_figure(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def init_color(name: str) -> str:
    """The colour of an initializer (any alias or spec name); grey for unknown names."""
    try:
        return INIT_COLORS.get(canonical_name(name), "#7f7f7f")
    except Exception:  # a name the registry does not know still gets a colour
        return INIT_COLORS.get(str(name), "#7f7f7f")


def activation_color(name: str) -> str:
    """The colour of an activation."""
    return ACTIVATION_COLORS.get(str(name).lower(), "#7f7f7f")


def check_figure_path(path: str | Path, field: str = "figure path") -> Path:
    """Return ``path`` if a figure can be written there: not a folder, a format matplotlib writes."""
    path = Path(path)
    if path.is_dir():
        raise ValidationError(f"{field} {str(path)!r} is a folder; give a file name such as {str(path / 'figure.png')!r}")
    formats = list(FigureCanvasBase.get_supported_filetypes())
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ValidationError(
            f"{field} {str(path)!r} needs a figure extension such as .png{did_you_mean(suffix, formats)} "
            f"(allowed: {', '.join('.' + f for f in formats)})"
        )
    return path


def _close(fig: Figure) -> None:
    """Let pyplot forget ``fig`` if pyplot made it (initlab's own figures are not pyplot's)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def png_bytes(fig: Figure, dpi: float | None = None) -> bytes:
    """``fig`` as PNG bytes (tight bounding box, initlab's dpi unless ``dpi``), then closed: for inline images."""
    buffer = io.BytesIO()
    try:
        with style():
            fig.savefig(buffer, format="png", bbox_inches="tight", dpi=dpi)  # None: savefig.dpi of STYLE
    finally:
        _close(fig)
    return buffer.getvalue()


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` (a format from the suffix, tight bounding box, initlab's dpi) and close it; returns the path."""
    try:
        path = check_figure_path(path)
    except ValidationError:
        _close(fig)
        raise
    path.parent.mkdir(parents=True, exist_ok=True)
    with style():
        fig.savefig(path, bbox_inches="tight")
    _close(fig)
    return path
