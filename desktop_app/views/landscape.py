"""Landscape view: the loss around the weights as a heatmap (and a 3-D surface), with paths.

Pure display: the worker computes the slices (engine.landscape) and the window hands them
to `show_slice`, `show_interpolation` and `show_gradient_line`; the optimizer's path and
current point, projected by the worker, arrive through `set_path` and `set_current`. The
"Compute" button and the "every K steps" box only emit signals. The 3-D tab is built when
it is first opened, and only where OpenGL works (not offscreen), else it shows a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext, QVector3D
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo
from desktop_app.views.training import (
    LABEL_SIZE,
    LEFT_AXIS_WIDTH,
    TITLE_SIZE,
    export_plots,
    finite_or_nan,
    make_plot,
    set_points,
    tick_font,
)
from engine.landscape import DIRECTION_KINDS, MAX_GRID, GradientLine, Slice2D

KIND_LABELS = {"random": "Random directions (filter-normalized)",
               "pca": "Trajectory PCA directions"}
N_CONTOURS = 8  # contour levels, evenly spaced between the shown minimum and maximum
COLORMAP = "viridis"
LR_LABEL = "a step of the current rate lands here"
GL_NOTE = "3-D view needs OpenGL (not available on this display); the 2-D tab shows the slice."
SURFACE_HEIGHT = 0.6  # the 3-D surface's height as a share of its width
PATH_COLOR = "#ffffff"  # light on viridis' dark valleys, where paths run

_gl_available: bool | None = None


def opengl_available() -> bool:
    """Whether an OpenGL context can be made on this display (cached; False offscreen).

    Asked before any QOpenGLWidget exists, so that offscreen platforms never print the
    warnings a failed context would."""
    global _gl_available
    if _gl_available is None:
        _gl_available = _probe_opengl()
    return _gl_available


def _probe_opengl() -> bool:
    if QGuiApplication.platformName() in ("offscreen", "minimal", "vnc", ""):
        return False
    try:
        context = QOpenGLContext()
        if not context.create():
            return False
        surface = QOffscreenSurface()
        surface.setFormat(context.format())
        surface.create()
        ok = surface.isValid() and context.makeCurrent(surface)
        if ok:
            context.doneCurrent()
        surface.destroy()
        return bool(ok)
    except (RuntimeError, OSError):
        return False


def shown_values(loss: np.ndarray, log: bool) -> np.ndarray:
    """The loss as drawn: float64, log10 when asked; NaN where not finite (or <= 0 in log)."""
    values = finite_or_nan(loss)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
    return values


def _levels(values: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(values).any():
        return 0.0, 1.0
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _axis_labels(sl: Slice2D) -> tuple[str, str]:
    if sl.kind == "pca" and sl.explained_variance is not None:
        share = [f"{100 * float(v):.0f}% of path variance" for v in sl.explained_variance]
        return f"α (direction 1, {share[0]})", f"β (direction 2, {share[1]})"
    return "α (direction 1)", "β (direction 2)"


class LandscapeView(QWidget):
    """Heatmap with contours, colour bar and paths; a lazy 3-D tab; two 1-D slices."""

    recompute_requested = Signal(str, int, float)  # kind, grid points per axis, span
    auto_changed = Signal(int)  # recompute every K steps; 0 = off

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._slice: Slice2D | None = None
        self._has_1d = {"interpolation": False, "gradient_line": False}
        self._build_controls()
        self._build_heatmap()
        self._build_1d_plots()
        self.gl_view: Any = None  # a GLViewWidget once the 3-D tab was opened where GL works
        self.surface: Any = None  # its GLSurfacePlotItem
        self.gl_center: Any = None  # the current weights on the surface
        self.gl_note: QLabel | None = None
        self.tabs = QTabWidget()
        self.tabs.addTab(self.graphics, "2-D")
        self.tab_3d = QWidget()
        self._layout_3d = QVBoxLayout(self.tab_3d)
        self._layout_3d.setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.tab_3d, "3-D")
        self.tabs.currentChanged.connect(self._tab_changed)

        lower = QHBoxLayout()
        lower.addWidget(self.interp_plot)
        lower.addWidget(self.line_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.controls)
        layout.addWidget(self.tabs, 3)
        layout.addLayout(lower, 2)

    # -- construction ------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.kind_combo = QComboBox()
        for key, description in DIRECTION_KINDS.items():
            self.kind_combo.addItem(KIND_LABELS.get(key, key), key)
            self.kind_combo.setItemData(self.kind_combo.count() - 1, description,
                                        Qt.ItemDataRole.ToolTipRole)
        self.grid_spin = QSpinBox()
        self.grid_spin.setRange(11, MAX_GRID)
        self.grid_spin.setValue(41)
        self.grid_spin.setToolTip("Grid points per axis (the slice costs n² loss evaluations)")
        self.span_spin = QDoubleSpinBox()
        self.span_spin.setRange(0.05, 20.0)
        self.span_spin.setSingleStep(0.25)
        self.span_spin.setValue(1.0)
        self.span_spin.setToolTip("Random: α, β in ±span (1 = a step as large as the "
                                  "weights). PCA: span × the path's extent")
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self._compute_clicked)
        self.auto_check = QCheckBox("every")
        self.auto_spin = QSpinBox()
        self.auto_spin.setRange(1, 1_000_000)
        self.auto_spin.setValue(200)
        self.auto_spin.setSuffix(" steps")
        self.auto_check.toggled.connect(self._emit_auto)
        self.auto_spin.valueChanged.connect(self._emit_auto)
        self.log_check = QCheckBox("log loss")
        self.log_check.toggled.connect(self._redraw_slice)
        self.status_label = QLabel("")
        self.controls = QHBoxLayout()
        for widget in (self.kind_combo, QLabel("grid"), self.grid_spin, QLabel("span"),
                       self.span_spin, self.compute_button, self.auto_check, self.auto_spin,
                       self.log_check, self.status_label):
            self.controls.addWidget(widget)
        self.controls.addStretch(1)

    def _build_heatmap(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.plot = self.graphics.ci.addPlot(row=0, col=0)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setStyle(tickFont=tick_font())
            axis.enableAutoSIPrefix(False)
        self.plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        self.plot.setAspectLocked(True, ratio=1.0)
        self.plot.setTitle("Loss around the current weights (press Compute)", size=TITLE_SIZE)
        self._set_axis_labels("α (direction 1)", "β (direction 2)")

        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        contour_pen = pg.mkPen(255, 255, 255, 150, width=1)
        self.isocurves = [pg.IsocurveItem(pen=contour_pen, axisOrder="row-major")
                          for _ in range(N_CONTOURS)]
        for iso in self.isocurves:  # children of the image: share its placement
            iso.setParentItem(self.image)
        self.path_curve = pg.PlotDataItem(pen=theme.pen(PATH_COLOR), symbol="o",
                                          symbolSize=5, symbolBrush=PATH_COLOR,
                                          symbolPen=pg.mkPen("#000000", width=1))
        self.start_marker = pg.ScatterPlotItem(symbol="s", size=12, brush=theme.HEALTHY,
                                               pen=pg.mkPen("#000000", width=1))
        self.center_marker = pg.ScatterPlotItem(symbol="star", size=20, brush=theme.ACCENT,
                                                pen=pg.mkPen("#ffffff", width=1))
        self.current_marker = pg.ScatterPlotItem(symbol="x", size=16, brush=theme.ACCENT,
                                                 pen=pg.mkPen(theme.ACCENT, width=1))
        for z, item in enumerate((self.path_curve, self.start_marker, self.center_marker,
                                  self.current_marker), start=10):
            item.setZValue(z)
            self.plot.addItem(item)

        self.color_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(COLORMAP),
                                         interactive=False, colorMapMenu=False, width=18)
        self.color_bar.axis.setStyle(tickFont=tick_font())
        self.color_bar.setImageItem(self.image)
        self.graphics.ci.addItem(self.color_bar, row=0, col=1)

    def _build_1d_plots(self) -> None:
        self.interp_plot = make_plot("Initial → current weights", "loss",
                                     "t (0 = initial, 1 = current)")
        self.interp_curve = self.interp_plot.plot(pen=theme.pen(theme.TRAIN))
        self.line_plot = make_plot("Loss along the negative gradient", "loss", "step size η")
        self.line_curve = self.line_plot.plot(pen=theme.pen(theme.TRAIN))
        self.center_line = pg.InfiniteLine(angle=0, pen=theme.pen(theme.MUTED, 1,
                                                                 Qt.PenStyle.DashLine))
        self.lr_line = pg.InfiniteLine(angle=90, pen=theme.pen(theme.ACCENT),
                                       label=LR_LABEL,
                                       labelOpts={"position": 0.85, "color": theme.ACCENT,
                                                  "anchors": [(0, 0.5), (0, 0.5)]})
        self.lr_point = pg.ScatterPlotItem(size=10, brush=theme.ACCENT, pen=None)
        for item in (self.center_line, self.lr_line, self.lr_point):
            item.setVisible(False)
            self.line_plot.addItem(item, ignoreBounds=item is not self.lr_point)
        for widget in (self.interp_plot, self.line_plot):
            widget.setMinimumHeight(160)

    # -- public ------------------------------------------------------------------------------
    def set_run(self, info: RunInfo | None) -> None:
        """A new (or reset) run: forget every slice, path and 1-D curve."""
        self._slice = None
        self.image.clear()
        for iso in self.isocurves:
            iso.setData(None)
        for item in (self.path_curve, self.start_marker, self.center_marker,
                     self.current_marker, self.interp_curve, self.line_curve):
            item.setData([], [])
        for item in (self.center_line, self.lr_line, self.lr_point):
            item.setVisible(False)
        self._has_1d = {"interpolation": False, "gradient_line": False}
        self.plot.setTitle("Loss around the current weights (press Compute)", size=TITLE_SIZE)
        self._set_axis_labels("α (direction 1)", "β (direction 2)")
        if self.surface is not None:
            self.surface.setVisible(False)
            self.gl_center.setData(pos=np.zeros((0, 3)))
        self.set_status("")

    def show_frame(self, frame: Frame) -> None:
        """Slices arrive through `show_slice`; frames carry the optimizer's path projected
        onto the last slice's plane, the current weights last."""
        path = frame.landscape_path
        if path is not None and len(path) and self._slice is not None:
            self.set_path(path)
            self.set_current(path[-1])

    def set_status(self, text: str) -> None:
        """E.g. "Computing…", "cancelled"; `show_slice` sets "Slice at step N"."""
        self.status_label.setText(text)

    def show_slice(self, sl: Slice2D) -> None:
        """Draw a 2-D slice: heatmap, contours, colour bar, centre and (pca) the path."""
        self._slice = sl
        a, b = np.asarray(sl.alphas, dtype=np.float64), np.asarray(sl.betas, dtype=np.float64)
        self._set_axis_labels(*_axis_labels(sl))
        self.plot.setTitle(f"Loss around the weights at step {sl.step}", size=TITLE_SIZE)
        self.plot.setRange(xRange=(a[0], a[-1]), yRange=(b[0], b[-1]), padding=0.02)
        self.center_marker.setData([0.0], [0.0])
        self.current_marker.setData([], [])
        self.set_path(sl.path)
        self._redraw_slice()
        self.set_status(f"Slice at step {sl.step}")

    def set_path(self, points) -> None:
        """The optimizer's path (T, 2) in the slice's (α, β) coordinates; None clears it."""
        p = None if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if p is None or not len(p) or not np.isfinite(p).all(axis=1).any():
            self.path_curve.setData([], [])
            self.start_marker.setData([], [])
            return
        p = p[np.isfinite(p).all(axis=1)]
        self.path_curve.setData(p[:, 0], p[:, 1])
        self.start_marker.setData([p[0, 0]], [p[0, 1]])

    def set_current(self, point) -> None:
        """The current weights' (α, β) in the slice (they move off (0, 0) as training runs)."""
        p = None if point is None else np.asarray(point, dtype=np.float64).ravel()
        if p is None or p.size != 2 or not np.isfinite(p).all():
            self.current_marker.setData([], [])
        else:
            self.current_marker.setData([p[0]], [p[1]])

    def show_interpolation(self, ts, loss) -> None:
        """Loss (n,) along the straight line from the initial (t = 0) to the current weights."""
        set_points(self.interp_curve, finite_or_nan(ts), finite_or_nan(loss))
        self._has_1d["interpolation"] = True

    def show_gradient_line(self, gl: GradientLine) -> None:
        """Loss against the step size along −g, the current learning rate marked."""
        set_points(self.line_curve, finite_or_nan(gl.etas), finite_or_nan(gl.loss))
        self.center_line.setValue(gl.center_loss)
        self.center_line.setVisible(bool(np.isfinite(gl.center_loss)))
        has_lr = bool(np.isfinite(gl.learning_rate))
        self.lr_line.setVisible(has_lr)
        if has_lr:
            self.lr_line.setValue(gl.learning_rate)
        if has_lr and np.isfinite(gl.loss_at_lr):
            self.lr_point.setData([gl.learning_rate], [gl.loss_at_lr])
            self.lr_point.setVisible(True)
        else:
            self.lr_point.setVisible(False)
        self._has_1d["gradient_line"] = True

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        """PNG + SVG of the slice (with its colour bar) and of the 1-D plots that hold data."""
        plots = {}
        if self._slice is not None:
            plots["landscape"] = self.graphics.ci
        if self._has_1d["interpolation"]:
            plots["landscape_interpolation"] = self.interp_plot.getPlotItem()
        if self._has_1d["gradient_line"]:
            plots["landscape_gradient_line"] = self.line_plot.getPlotItem()
        return export_plots(plots, Path(folder), prefix)

    # -- drawing -----------------------------------------------------------------------------
    def _set_axis_labels(self, bottom: str, left: str) -> None:
        self.plot.setLabel("bottom", bottom, **{"font-size": LABEL_SIZE})
        self.plot.setLabel("left", left, **{"font-size": LABEL_SIZE})

    def _redraw_slice(self) -> None:
        sl = self._slice
        if sl is None:
            return
        log = self.log_check.isChecked()
        values = shown_values(sl.loss, log)  # (n_betas, n_alphas)
        lo, hi = _levels(values)
        filled = np.where(np.isnan(values), hi, values)  # overflow: the top of the scale
        a, b = np.asarray(sl.alphas, dtype=np.float64), np.asarray(sl.betas, dtype=np.float64)
        self.image.setImage(filled, autoLevels=False, levels=(lo, hi))
        # pixel centres on the grid points: the image reaches half a cell past the extent
        da = (a[-1] - a[0]) / max(a.size - 1, 1)
        db = (b[-1] - b[0]) / max(b.size - 1, 1)
        self.image.setRect(QRectF(a[0] - da / 2, b[0] - db / 2, a[-1] - a[0] + da,
                                  b[-1] - b[0] + db))
        self.color_bar.setLevels((lo, hi))
        self.color_bar.getAxis("left").setLabel("log₁₀ loss" if log else "loss",
                                               **{"font-size": LABEL_SIZE})
        for iso, level in zip(self.isocurves, np.linspace(lo, hi, N_CONTOURS + 2)[1:-1],
                              strict=True):  # pyqtgraph puts value i at pixel centre i + ½
            iso.setData(filled, level=float(level))
        self._draw_surface()

    def _emit_auto(self, *_) -> None:
        self.auto_changed.emit(self.auto_spin.value() if self.auto_check.isChecked() else 0)

    def _compute_clicked(self) -> None:
        self.set_status("Computing…")
        self.recompute_requested.emit(self.kind_combo.currentData(), self.grid_spin.value(),
                                      float(self.span_spin.value()))

    # -- 3-D ---------------------------------------------------------------------------------
    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.tab_3d and self.gl_view is None \
                and self.gl_note is None:
            self._build_3d()

    def _build_3d(self) -> None:
        layout = self._layout_3d
        if opengl_available():
            try:
                import pyqtgraph.opengl as gl

                self.gl_view = gl.GLViewWidget()
                self.surface = gl.GLSurfacePlotItem(computeNormals=False, smooth=False)
                self.surface.setGLOptions("opaque")
                self.gl_center = gl.GLScatterPlotItem(color=(0.84, 0.15, 0.16, 1.0), size=14)
                self.gl_center.setGLOptions("translucent")  # drawn over the surface
                self.gl_view.addItem(self.surface)
                self.gl_view.addItem(self.gl_center)
            except (ImportError, RuntimeError):
                self.gl_view = self.surface = self.gl_center = None
        if self.gl_view is None:
            self.gl_note = QLabel(GL_NOTE)
            self.gl_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.gl_note.setWordWrap(True)
            layout.addWidget(self.gl_note)
            return
        self.gl_view.setBackgroundColor(theme.BACKGROUND)
        layout.addWidget(self.gl_view, 1)
        caption = QLabel("Height and colour: the loss (log10 with “log loss”), over the "
                         "same α, β grid as the 2-D tab. Drag to turn, wheel to zoom.")
        caption.setWordWrap(True)
        layout.addWidget(caption)
        self._draw_surface()

    def _draw_surface(self) -> None:
        sl = self._slice
        if self.surface is None or sl is None:
            return
        values = shown_values(sl.loss, self.log_check.isChecked())
        lo, hi = _levels(values)
        norm = (np.where(np.isnan(values), hi, values) - lo) / (hi - lo)  # (n_betas, n_alphas)
        a, b = np.asarray(sl.alphas, dtype=np.float64), np.asarray(sl.betas, dtype=np.float64)
        width = max(a[-1] - a[0], b[-1] - b[0])
        colors = pg.colormap.get(COLORMAP).map(norm.T.ravel(), mode="float")
        # GLSurfacePlotItem wants z (len(x), len(y)), alpha first, hence the transposes, and
        # one colour per vertex in that order, flat: (len(x) * len(y), 4)
        self.surface.setData(x=a, y=b, z=norm.T * SURFACE_HEIGHT * width, colors=colors)
        self.surface.setVisible(True)
        i, j = int(np.argmin(np.abs(b))), int(np.argmin(np.abs(a)))  # the grid point (0, 0)
        lift = 0.02 * width  # just above the surface, so that it is not hidden in it
        self.gl_center.setData(pos=np.array([[a[j], b[i], norm[i, j] * SURFACE_HEIGHT * width
                                              + lift]]))
        self.gl_view.setCameraPosition(pos=QVector3D(0.0, 0.0, SURFACE_HEIGHT * width / 3),
                                       distance=2.2 * width, elevation=32, azimuth=-60)
