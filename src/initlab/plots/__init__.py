"""Figures. Every function returns a matplotlib Figure; ``save`` writes it."""

from .style import ACTIVATION_COLORS, INIT_COLORS, activation_color, check_figure_path, init_color, save

__all__ = ["INIT_COLORS", "ACTIVATION_COLORS", "init_color", "activation_color", "save", "check_figure_path"]
