"""Colours and plot defaults shared by every view (readable on a classroom projector)."""

from __future__ import annotations

import pyqtgraph as pg

BACKGROUND = "w"
FOREGROUND = "#222222"
TRAIN = "#1f77b4"  # blue: training curves
VALIDATION = "#ff7f0e"  # orange: validation curves
ACCENT = "#d62728"  # red: markers, current step, exploding
VANISHING = "#1f5fbf"  # blue: layers whose gradients vanish
HEALTHY = "#2ca02c"  # green
EXPLODING = "#d62728"  # red
MUTED = "#9a9a9a"  # planned / not yet reached
CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
LINE_WIDTH = 2
FONT_POINT_SIZE = 10


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options; call once before creating plots."""
    pg.setConfigOptions(background=BACKGROUND, foreground=FOREGROUND, antialias=False,
                        imageAxisOrder="row-major")


def pen(color: str, width: float = LINE_WIDTH, style=None):
    kwargs = {"color": color, "width": width}
    if style is not None:
        kwargs["style"] = style
    return pg.mkPen(**kwargs)
