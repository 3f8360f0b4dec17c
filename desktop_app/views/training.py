"""Training views: loss and accuracy curves with an oscillation strip, and the learning rate.

Both only draw what the frames carry (no training maths). The plot helpers at the top
(`make_plot`, `export_plots`, `finite_or_nan`, `GrowingColumns`) are shared with the other
views of this package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QVBoxLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo

TITLE_SIZE = "13pt"
LABEL_SIZE = "12pt"
TICK_POINT_SIZE = 11
LEFT_AXIS_WIDTH = 80  # fixed, so that stacked plots with a linked x axis line up
EXPORT_WIDTH = 1600  # pixels of an exported PNG (sharp on a slide)
RISE_WINDOW = 20  # steps over which the share of loss increases is taken
MAX_CURVE_POINTS = 2**16  # per-step rows kept per curve (older ones thinned beyond this)
MAX_SYMBOLS = 400  # evaluation curves drop their markers beyond this many points


# -- shared plot helpers ---------------------------------------------------------------------
def make_plot(title: str | None, left: str, bottom: str | None = "step",
              left_units: str | None = None, log_axis: bool = False) -> pg.PlotWidget:
    """A PlotWidget with projector-sized title, axis labels and tick labels."""
    axes = {"left": LogAxis("left")} if log_axis else None
    widget = pg.PlotWidget(axisItems=axes)
    plot = widget.getPlotItem()
    if title:
        plot.setTitle(title, size=TITLE_SIZE)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setStyle(tickFont=_font(TICK_POINT_SIZE))
        axis.enableAutoSIPrefix(False)  # "loss (x0.001)" confuses more than it helps
    plot.setLabel("left", left, units=left_units, **{"font-size": LABEL_SIZE})
    if bottom:
        plot.setLabel("bottom", bottom, **{"font-size": LABEL_SIZE})
    plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
    plot.showGrid(x=True, y=True, alpha=0.2)
    return widget


def _font(point_size: int) -> QFont:
    font = QFont()
    font.setPointSize(point_size)
    return font


def tick_font() -> QFont:
    return _font(TICK_POINT_SIZE)


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MANTISSAS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
              tuple(float(m) for m in range(1, 10)))


class LogAxis(pg.AxisItem):
    """A vertical axis whose log-mode ticks are readable: 1-2-5 steps as space allows, plain
    numbers (0.65, not 7·10⁻¹) when the range is less than a decade, and never crowded."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        if not (np.isfinite(minVal) and np.isfinite(maxVal)) or maxVal <= minVal:
            return []
        limit = max(2, int(size / 30))  # labels at least ~30 px apart
        lo_dec, hi_dec = int(np.floor(minVal)), int(np.ceil(maxVal))
        best: list[float] = []
        for mantissas in _MANTISSAS:
            values = [k + np.log10(m) for k in range(lo_dec, hi_dec + 1) for m in mantissas]
            values = [v for v in values if minVal <= v <= maxVal]
            if len(values) > limit:
                if not best:  # even whole decades are too many: take every k-th
                    every = int(np.ceil(len(values) / limit))
                    best = [v for v in values if round(v) % every == 0]
                break
            best = values
        if len(best) < 2:  # less than a decade: nice linear steps inside the range
            lo, hi = 10.0**minVal, 10.0**maxVal
            step = _nice_step((hi - lo) / max(limit - 1, 1))
            ticks = np.arange(np.ceil(lo / step) * step, hi, step)
            best = [float(np.log10(t)) for t in ticks if t > 0]
        return [(None, best)]

    def logTickStrings(self, values, scale, spacing):
        return [_number(10.0**v * scale) for v in values]


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 x 10^k that is >= raw."""
    base = 10.0 ** np.floor(np.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw * (1 - 1e-9))


def _number(x: float) -> str:
    """0.003, 0.5, 20 as plain numbers; 3·10⁻⁵ and 10⁶ outside [0.001, 10⁴)."""
    if x <= 0 or not np.isfinite(x):
        return ""
    if 1e-3 * (1 - 1e-9) <= x < 1e4:
        return f"{x:.3g}"
    e = int(np.floor(np.log10(x) + 1e-9))
    mantissa = f"{x / 10.0**e:.2g}"
    power = "10" + str(e).translate(SUPERSCRIPT)
    return power if mantissa == "1" else f"{mantissa}·{power}"


def stack_under_checkbox(widget: QWidget, checkbox: QCheckBox, plots: list) -> None:
    """Lay out a view: a check box on top, then (plot widget, stretch) pairs stacked."""
    top = QHBoxLayout()
    top.addWidget(checkbox)
    top.addStretch(1)
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.setSpacing(2)
    layout.addLayout(top)
    for plot, stretch in plots:
        layout.addWidget(plot, stretch)


def add_legend(plot: pg.PlotItem, offset=(-10, 10), columns: int = 1) -> pg.LegendItem:
    return plot.addLegend(offset=offset, labelTextSize="11pt", colCount=columns,
                          brush=pg.mkBrush(255, 255, 255, 210))


def freeze_mouse(plot: pg.PlotItem) -> None:
    """No pan, zoom or context menu (bar charts, strips)."""
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()


def export_plots(plots: dict[str, pg.PlotItem], folder: Path, prefix: str) -> list[Path]:
    """Write every plot as `{prefix}_{name}.png` and `.svg`; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in plots.items():
        png = folder / f"{prefix}_{name}.png"
        exporter = pg.exporters.ImageExporter(plot)
        exporter.parameters()["width"] = EXPORT_WIDTH
        exporter.export(str(png))
        svg = folder / f"{prefix}_{name}.svg"
        try:
            pg.exporters.SVGExporter(plot).export(str(svg))
        except ValueError:  # pyqtgraph 0.14 cannot parse Qt >= 6.10's closed paths (#3495)
            _render_svg(plot, svg)
        written += [png, svg]
    return written


def _render_svg(item: pg.GraphicsWidget, path: Path) -> None:
    """The item's part of its scene drawn by Qt's own SVG generator (vector paths, text)."""
    source = item.sceneBoundingRect()
    target = QRectF(0, 0, source.width(), source.height())
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(source.size().toSize())
    generator.setViewBox(target)
    generator.setTitle("Gradient Lab")
    generator.setResolution(96)  # the logical dpi pyqtgraph lays text out for
    painter = QPainter(generator)
    try:
        painter.fillRect(target, pg.mkColor(pg.getConfigOption("background")))
        item.scene().render(painter, target, source)
    finally:
        painter.end()


def finite_or_nan(values) -> np.ndarray:
    """float64 copy with every non-finite value replaced by NaN (pyqtgraph skips NaN)."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def set_points(curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """setData that shows nothing for all-NaN data (pyqtgraph's symbols warn about it)."""
    if np.isfinite(y).any():
        curve.setData(x, y, connect="finite")
    else:
        curve.setData(np.zeros(0), np.zeros(0))


def lighter(color: str, amount: float) -> QColor:
    """The colour mixed with white. Noisy curves need opaque 1-px pens: Qt strokes a
    translucent or wider zigzag of thousands of points for seconds."""
    c = QColor(color)
    return QColor(*(round(v + (255 - v) * amount) for v in (c.red(), c.green(), c.blue())))


class GrowingColumns:
    """Named 1-D float columns that grow by doubling (amortized O(1) per appended row).

    Past `max_rows` the older half is thinned to half as many rows (like the engine's
    history), keeping of every four rows the ones with the lowest and highest `guide` value,
    so that spikes and dips survive. The recent half stays whole and the cost of a redraw
    stays bounded.
    """

    def __init__(self, names: tuple[str, ...], capacity: int = 1024,
                 max_rows: int = MAX_CURVE_POINTS, guide: str | None = None):
        self._names = names
        self._n = 0
        self._data = {name: np.zeros(capacity) for name in names}
        self.max_rows = max(int(max_rows), 16)
        self._guide = guide

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        """The filled rows (a view: valid until the next append)."""
        return self._data[name][: self._n]

    def clear(self) -> None:
        self._n = 0

    def truncate(self, n: int) -> None:
        self._n = min(self._n, max(int(n), 0))

    def append(self, **columns) -> None:
        k = len(next(iter(columns.values())))
        need = self._n + k
        cap = next(iter(self._data.values())).size
        if need > cap:
            while cap < need:
                cap *= 2
            for name, old in self._data.items():
                new = np.zeros(cap)
                new[: self._n] = old[: self._n]
                self._data[name] = new
        for name in self._names:
            self._data[name][self._n : need] = columns[name]
        self._n = need
        while self._n > self.max_rows:
            self._thin()

    def _thin(self) -> None:
        groups = np.arange(4 * (self._n // 8)).reshape(-1, 4)  # the older half, in fours
        first, second = np.zeros(len(groups), np.int64), np.full(len(groups), 2)
        if self._guide is not None:  # keep each group's lowest and highest point, in order
            g = self._data[self._guide][groups]
            nan = np.isnan(g)
            lo = np.argmin(np.where(nan, np.inf, g), axis=1)
            hi = np.argmax(np.where(nan, -np.inf, g), axis=1)
            differ = lo != hi
            first = np.where(differ, np.minimum(lo, hi), first)
            second = np.where(differ, np.maximum(lo, hi), second)
        picked = np.column_stack([groups[np.arange(len(groups)), first],
                                  groups[np.arange(len(groups)), second]]).ravel()
        rows = np.concatenate([picked, np.arange(groups.size, self._n)])
        for column in self._data.values():
            column[: rows.size] = column[rows]
        self._n = rows.size


def _rewind(buffer: GrowingColumns, first_new_step: float) -> None:
    """Drop rows at or after `first_new_step` (a run that was rolled back or restarted)."""
    if len(buffer) and buffer["step"][-1] >= first_new_step:
        buffer.truncate(int(np.searchsorted(buffer["step"], first_new_step, side="left")))


# -- loss ------------------------------------------------------------------------------------
class LossView(QWidget):
    """Training loss per step, train/validation loss and accuracy at evaluations, and a
    strip that makes oscillation visible (the share of recent steps where the loss rose)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._steps = GrowingColumns(("step", "loss", "rose", "rise_share"), guide="loss")
        self._evals = GrowingColumns(("step", "train_loss", "val_loss", "train_acc", "val_acc"))
        self._task = "classification"

        self.log_checkbox = QCheckBox("Log scale (loss)")
        self.log_checkbox.setChecked(True)
        self.log_checkbox.toggled.connect(self._set_log)

        self.loss_plot = make_plot("Loss", "loss", bottom=None, log_axis=True)
        plot = self.loss_plot.getPlotItem()
        add_legend(plot)
        self.step_curve = plot.plot(
            pen=pg.mkPen(lighter(theme.TRAIN, 0.5), width=1), name="minibatch loss (each step)")
        self.train_curve = plot.plot(
            pen=theme.pen(theme.TRAIN), symbol="o", symbolSize=7, symbolPen=None,
            symbolBrush=theme.TRAIN, name="training loss (whole set)")
        self.val_curve = plot.plot(
            pen=theme.pen(theme.VALIDATION), symbol="o", symbolSize=7, symbolPen=None,
            symbolBrush=theme.VALIDATION, name="validation loss")

        self.accuracy_plot = make_plot(None, "accuracy", bottom=None, left_units="%")
        acc = self.accuracy_plot.getPlotItem()
        add_legend(acc, offset=(-10, -6), columns=2)
        acc.setYRange(0, 100, padding=0.04)
        acc.showGrid(x=True, y=False)  # a y grid hides the 0 and 100 labels at the edges
        acc.getAxis("left").setTicks([[(v, str(v)) for v in (0, 25, 50, 75, 100)]])
        acc.setMouseEnabled(y=False)
        self.train_acc_curve = acc.plot(
            pen=theme.pen(theme.TRAIN), symbol="o", symbolSize=6, symbolPen=None,
            symbolBrush=theme.TRAIN, name="training")
        self.val_acc_curve = acc.plot(
            pen=theme.pen(theme.VALIDATION), symbol="o", symbolSize=6, symbolPen=None,
            symbolBrush=theme.VALIDATION, name="validation")

        self.rise_plot = make_plot(None, "share", bottom="step")
        rise = self.rise_plot.getPlotItem()
        rise.setYRange(0, 1, padding=0.05)
        rise.showGrid(x=True, y=False)
        rise.setMouseEnabled(y=False)
        rise.getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        rise.addItem(pg.InfiniteLine(
            pos=0.5, angle=0, pen=theme.pen(theme.MUTED, 1, Qt.PenStyle.DashLine)))
        self.rise_title = pg.TextItem(
            f"share of steps where loss rose (last {RISE_WINDOW})", color=theme.FOREGROUND,
            anchor=(0, 0))
        self.rise_title.setFont(_font(TICK_POINT_SIZE))
        self.rise_title.setParentItem(rise.getViewBox())
        self.rise_title.setPos(6, 0)
        self.rise_curve = rise.plot(pen=theme.pen(theme.ACCENT, 1))

        for curve in (self.step_curve, self.rise_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        acc.setXLink(plot)
        rise.setXLink(plot)
        plot.setLogMode(y=True)

        stack_under_checkbox(self, self.log_checkbox,
                             [(self.loss_plot, 5), (self.accuracy_plot, 2), (self.rise_plot, 2)])
        self.rise_plot.setMinimumHeight(130)
        self.accuracy_plot.setMinimumHeight(120)

    # -- public ------------------------------------------------------------------------------
    def set_run(self, info: RunInfo) -> None:
        self._steps.clear()
        self._evals.clear()
        self._task = info.task
        self.accuracy_plot.setVisible(info.task == "classification")
        self._redraw_steps()
        self._redraw_evals()

    def show_frame(self, frame: Frame) -> None:
        d = frame.delta
        if len(d):
            steps = np.asarray(d.steps, dtype=np.float64)
            _rewind(self._steps, steps[0])
            self._append_steps(steps, finite_or_nan(d.loss))
            self._redraw_steps()
        if d.eval_steps.size:
            steps = np.asarray(d.eval_steps, dtype=np.float64)
            _rewind(self._evals, steps[0])
            self._evals.append(step=steps, train_loss=finite_or_nan(d.train_loss),
                               val_loss=finite_or_nan(d.val_loss),
                               train_acc=100 * finite_or_nan(d.train_accuracy),
                               val_acc=100 * finite_or_nan(d.val_accuracy))
            self._redraw_evals()

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        plots = {"loss": self.loss_plot.getPlotItem(),
                 "loss_rise_share": self.rise_plot.getPlotItem()}
        if self._task == "classification":
            plots["accuracy"] = self.accuracy_plot.getPlotItem()
        return export_plots(plots, folder, prefix)

    # -- internals ---------------------------------------------------------------------------
    def _append_steps(self, steps: np.ndarray, loss: np.ndarray) -> None:
        n0 = len(self._steps)
        prev = self._steps["loss"][-1:] if n0 else np.array([np.nan])
        both = np.concatenate([prev, loss])
        with np.errstate(invalid="ignore"):
            rose = np.where(np.isfinite(both[1:]) & np.isfinite(both[:-1]),
                            (both[1:] > both[:-1]).astype(np.float64), np.nan)
        # share over the last RISE_WINDOW steps, counting only finite comparisons
        start = max(0, n0 - (RISE_WINDOW - 1))
        window = np.concatenate([self._steps["rose"][start:], rose])
        ok = np.isfinite(window)
        csum = np.concatenate([[0.0], np.cumsum(np.where(ok, window, 0.0))])
        ccnt = np.concatenate([[0.0], np.cumsum(ok)])
        hi = np.arange(n0 - start, window.size) + 1
        lo = np.maximum(hi - RISE_WINDOW, 0)
        count = ccnt[hi] - ccnt[lo]
        share = np.full(hi.size, np.nan)
        np.divide(csum[hi] - csum[lo], count, out=share, where=count >= RISE_WINDOW // 2)
        self._steps.append(step=steps, loss=loss, rose=rose, rise_share=share)

    def _redraw_steps(self) -> None:
        s = self._steps
        self.step_curve.setData(s["step"], s["loss"], connect="finite")
        self.rise_curve.setData(s["step"], s["rise_share"], connect="finite")

    def _redraw_evals(self) -> None:
        e = self._evals
        for curve, column in ((self.train_curve, "train_loss"), (self.val_curve, "val_loss"),
                              (self.train_acc_curve, "train_acc"),
                              (self.val_acc_curve, "val_acc")):
            symbol = "o" if len(e) <= MAX_SYMBOLS else None  # thousands of markers: a smear
            if curve.opts["symbol"] != symbol:
                curve.setSymbol(symbol)
            set_points(curve, e["step"], e[column])

    def _set_log(self, on: bool) -> None:
        self.loss_plot.getPlotItem().setLogMode(y=on)


# -- learning rate ---------------------------------------------------------------------------
class LearningRateView(QWidget):
    """The schedule's whole planned curve, the rate actually used so far, and the current
    step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._used = GrowingColumns(("step", "lr"))
        self._top = 0.0  # largest rate planned or used: the top of the linear y axis
        self.log_checkbox = QCheckBox("Log scale")
        self.log_checkbox.setChecked(False)
        self.log_checkbox.toggled.connect(self._set_log)

        self.plot_widget = make_plot("Learning rate", "learning rate", bottom="step",
                                     log_axis=True)
        plot = self.plot_widget.getPlotItem()
        plot.showGrid(x=True, y=False)  # keeps the 0 label at the bottom edge
        add_legend(plot)
        self.planned_curve = plot.plot(
            pen=theme.pen(theme.MUTED, 2, Qt.PenStyle.DashLine), name="planned schedule")
        self.used_curve = plot.plot(pen=theme.pen(theme.TRAIN, 2.5), name="rate used")
        for curve in (self.planned_curve, self.used_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.step_marker = pg.InfiniteLine(
            pos=0, angle=90, pen=theme.pen(theme.ACCENT, 1.5),
            label="step {value:.0f}",
            labelOpts={"position": 0.1, "color": theme.ACCENT, "fill": (255, 255, 255, 200),
                       "anchors": [(0, 0.5), (0, 0.5)]})
        self.step_marker.label.setFont(_font(TICK_POINT_SIZE))
        plot.addItem(self.step_marker, ignoreBounds=True)

        stack_under_checkbox(self, self.log_checkbox, [(self.plot_widget, 1)])

    def set_run(self, info: RunInfo) -> None:
        self._used.clear()
        self.used_curve.setData(np.zeros(0), np.zeros(0))
        self.step_marker.setValue(0)
        self._top = 0.0
        self.set_planned(info.lr_curve)

    def set_planned(self, lr_curve: np.ndarray) -> None:
        """Redraw the planned schedule (changed during the run); the rates used stay."""
        planned = finite_or_nan(lr_curve)
        steps = np.arange(1, planned.size + 1, dtype=np.float64)
        self.planned_curve.setData(steps, planned, connect="finite")
        self._top = max(_finite_max(planned), _finite_max(self._used["lr"]))
        self.plot_widget.getPlotItem().enableAutoRange(axis="x")
        self._fit_y()

    def show_frame(self, frame: Frame) -> None:
        d = frame.delta
        if len(d):
            steps = np.asarray(d.steps, dtype=np.float64)
            _rewind(self._used, steps[0])
            self._used.append(step=steps, lr=finite_or_nan(d.lr))
            self.used_curve.setData(self._used["step"], self._used["lr"], connect="finite")
            top = _finite_max(self._used["lr"][-len(d):])
            if top > self._top:
                self._top = top
                self._fit_y()
        step = frame.snapshot.step
        if step != self.step_marker.value():
            self.step_marker.setValue(step)

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        return export_plots({"learning_rate": self.plot_widget.getPlotItem()}, folder, prefix)

    def _set_log(self, on: bool) -> None:
        self.plot_widget.getPlotItem().setLogMode(y=on)
        self._fit_y()

    def _fit_y(self) -> None:
        """From 0 to above the largest rate, leaving room for the legend (linear), else
        automatic (log)."""
        plot = self.plot_widget.getPlotItem()
        if self.log_checkbox.isChecked():
            plot.enableAutoRange(axis="y")
        else:
            plot.setYRange(0, 1.35 * self._top if self._top > 0 else 1.0, padding=0)


def _finite_max(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else 0.0
