"""Decision boundary (2-D classification) or fitted surface (2-D regression) with the
training points on top, in the model's input coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Boundary, Frame, RunInfo
from desktop_app.views.inside import add_plot, export_plot, plot_font, set_title, style_plot

POINT_SIZE = 8
IMAGE_ALPHA = (0.08, 0.5)  # alpha of a region at the least and at full confidence (k classes)
BOUNDARY_PEN = pg.mkPen("#222222", width=2, style=Qt.PenStyle.DashLine)
SURFACE_COLORMAP = "viridis"


def lighter(color: str, amount: float) -> tuple[int, int, int]:
    """`color` mixed with white: amount 0 keeps it, 1 gives white."""
    c = pg.mkColor(color)
    rgb = np.array([c.red(), c.green(), c.blue()], dtype=float)
    return tuple(int(round(v)) for v in rgb + (255.0 - rgb) * amount)


def class_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB of theme.CLASS_COLORS, repeated when there are more classes."""
    colors = [pg.mkColor(theme.CLASS_COLORS[k % len(theme.CLASS_COLORS)]) for k in range(n)]
    return np.array([[c.red(), c.green(), c.blue()] for c in colors], dtype=np.uint8)


def probability_colormap() -> pg.ColorMap:
    """P(class 1): class 0's colour through white (undecided) to class 1's, lightened so the
    training points (full colour) stand out."""
    colors = [lighter(theme.CLASS_COLORS[0], 0.45), (255, 255, 255),
              lighter(theme.CLASS_COLORS[1], 0.45)]
    return pg.ColorMap(pos=[0.0, 0.5, 1.0], color=colors)


def class_image(boundary: Boundary, n_classes: int) -> np.ndarray:
    """(GRID, GRID, 4) uint8: the predicted class's colour, more opaque where the network
    is surer (confidence runs from 1/k, a guess, to 1)."""
    classes = np.asarray(boundary.classes)
    rgba = np.empty((*classes.shape, 4), dtype=np.uint8)
    rgba[..., :3] = class_palette(n_classes)[classes]
    chance = 1.0 / n_classes
    sure = np.clip((np.nan_to_num(boundary.confidence) - chance) / (1.0 - chance), 0.0, 1.0)
    lo, hi = IMAGE_ALPHA
    rgba[..., 3] = np.round(255.0 * (lo + (hi - lo) * sure)).astype(np.uint8)
    return rgba


class DecisionView(QWidget):
    """The network's output over the input plane with the training points on top."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._info: RunInfo | None = None
        self._mode = "none"  # "binary", "classes", "regression" or "none" (not 2-D)
        self._rect = QRectF()  # where the grid goes, in model-space coordinates

        self.graphics = pg.GraphicsLayoutWidget()
        self.plot = add_plot(self.graphics.ci, row=0, col=0)
        style_plot(self.plot, "x1", "x2")
        self.plot.showGrid(x=False, y=False)
        self.plot.setAspectLocked(True, ratio=1.0)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.disableAutoRange()

        self.probability_image = pg.ImageItem(axisOrder="row-major")
        self.class_image = pg.ImageItem(axisOrder="row-major")
        self.isocurve = pg.IsocurveItem(level=0.5, pen=BOUNDARY_PEN, axisOrder="row-major")
        self.isocurve.setParentItem(self.probability_image)  # shares the image's placement
        self.scatter = pg.ScatterPlotItem(size=POINT_SIZE, pen=pg.mkPen("#202020", width=1))
        self.scatter.setZValue(10)
        for item in (self.probability_image, self.class_image, self.scatter):
            self.plot.addItem(item)

        self.color_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=probability_colormap(),
                                         interactive=False, colorMapMenu=False, width=18)
        self.color_bar.axis.setTickFont(plot_font(1))
        self.color_bar.setImageItem(self.probability_image)
        self._color_bar_shown = False

        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setFont(plot_font(5))
        self.message.setStyleSheet(f"color: {theme.FOREGROUND}; background: white;")

        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message)

    # -- public ------------------------------------------------------------------------
    def set_run(self, info: RunInfo) -> None:
        """A new (or reset) run: place the grid, draw the training points."""
        self._info = info
        self.probability_image.clear()
        self.class_image.clear()
        self.isocurve.setData(None)
        if info.extent is None:
            self._mode = "none"
            n = info.x_train.shape[1] if info.x_train.ndim == 2 else len(info.feature_names)
            self.message.setText(
                f"Decision boundary needs 2 input features (this data has {n}).")
            self.stack.setCurrentWidget(self.message)
            return
        self.stack.setCurrentWidget(self.graphics)
        if info.task == "regression":
            self._mode = "regression"
        else:
            self._mode = "binary" if info.n_classes <= 2 else "classes"
        x0, x1, y0, y1 = info.extent
        self._rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        names = [*info.feature_names, "x1", "x2"]
        scaled = " (standardized)" if info.config.data.standardize else ""
        self.plot.getAxis("bottom").setLabel(names[0] + scaled)
        self.plot.getAxis("left").setLabel(names[1] + scaled)
        self._set_color_bar()
        self._draw_points()
        self._draw_title(None)

    def show_frame(self, frame: Frame) -> None:
        boundary = frame.boundary
        # The boundary is recomputed a few times a second: keep the last image in between.
        if boundary is None or self._mode == "none" or self._info is None:
            return
        if tuple(boundary.extent) != tuple(self._info.extent):
            return  # computed for the previous run
        if self._mode == "classes" and boundary.classes is not None:
            image = self.class_image
            image.setImage(class_image(boundary, self._info.n_classes),
                           autoLevels=False, levels=(0, 255))
        else:
            image = self.probability_image
            values = np.asarray(boundary.values, dtype=np.float64)
            image.setImage(values, autoLevels=False, levels=self.color_bar.levels())
            if self._mode == "binary":
                self.isocurve.setData(np.nan_to_num(values, nan=0.5))
        image.setRect(self._rect)  # the scale depends on the image's size: set it after
        self._draw_title(frame.snapshot.step)

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        """The plot (with its colour bar) as `{prefix}_decision_boundary.png` and `.svg`;
        nothing when the data is not 2-D."""
        if self._mode == "none":
            return []
        return export_plot(self.graphics.ci, Path(folder), f"{prefix}_decision_boundary")

    # -- drawing -----------------------------------------------------------------------
    def _set_color_bar(self) -> None:
        """A colour bar for probabilities and surfaces; none for k classes (the colours are
        the classes of the points)."""
        want = self._mode in ("binary", "regression")
        if want and not self._color_bar_shown:
            self.graphics.ci.addItem(self.color_bar, row=0, col=1)
        elif not want and self._color_bar_shown:
            self.graphics.ci.removeItem(self.color_bar)
        self._color_bar_shown = want
        label_style = {"font-size": f"{theme.FONT_POINT_SIZE + 2}pt"}
        if self._mode == "binary":
            self.color_bar.setColorMap(probability_colormap())
            self.color_bar.setLevels((0.0, 1.0))
            self.color_bar.getAxis("left").setLabel("P(class 1)", **label_style)
        elif self._mode == "regression":
            y = np.asarray(self._info.y_train, dtype=np.float64)
            lo, hi = (float(np.min(y)), float(np.max(y))) if y.size else (0.0, 1.0)
            if not hi > lo:
                lo, hi = lo - 0.5, hi + 0.5
            self.color_bar.setColorMap(pg.colormap.get(SURFACE_COLORMAP))
            self.color_bar.setLevels((lo, hi))
            self.color_bar.getAxis("left").setLabel("output / target", **label_style)

    def _draw_points(self) -> None:
        info = self._info
        x = np.asarray(info.x_train, dtype=np.float64)
        y = np.asarray(info.y_train)
        if self._mode == "regression":
            lo, hi = self.color_bar.levels()
            colors = self.color_bar.colorMap().map((y - lo) / (hi - lo), mode="qcolor")
            brushes = [pg.mkBrush(c) for c in colors]
        else:
            by_class = [pg.mkBrush(theme.CLASS_COLORS[k % len(theme.CLASS_COLORS)])
                        for k in range(max(info.n_classes, 1))]
            brushes = [by_class[int(k)] for k in y]
        self.scatter.setData(x=x[:, 0], y=x[:, 1], brush=brushes)

    def _draw_title(self, step: int | None) -> None:
        what, why = {
            "binary": ("Decision boundary",
                       "Colour: the network's P(class 1); dashed line: P = 0.5. Points: the "
                       "training data in its true class colour."),
            "classes": ("Predicted class",
                        f"Colour: the predicted class of {self._info.n_classes}; paler where "
                        "the network is less sure. Points: the training data."),
            "regression": ("Fitted surface",
                           "Colour: the network's output; points: the training targets on "
                           "the same colour scale."),
        }[self._mode]
        when = f" · step {step}" if step is not None else " · not trained yet"
        set_title(self.plot, what + when)
        self.graphics.setToolTip(why)
