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
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QVBoxLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo

TITLE_SIZE = "13pt"
LABEL_SIZE = "12pt"
TICK_POINT_SIZE = 11
LEFT_AXIS_WIDTH = 80  # fixed, so that stacked plots with a linked x axis line up
EXPORT_WIDTH = 1600  # pixels of an exported PNG (sharp on a slide)
RISE_WINDOW = 20  # steps over which the share of loss increases is taken


# -- shared plot helpers ---------------------------------------------------------------------
def make_plot(title: str | None, left: str, bottom: str | None = "step",
              left_units: str | None = None) -> pg.PlotWidget:
    """A PlotWidget with projector-sized title, axis labels and tick labels."""
    widget = pg.PlotWidget()
    plot = widget.getPlotItem()
    if title:
        plot.setTitle(title, size=TITLE_SIZE)
    font = QFont()
    font.setPointSize(TICK_POINT_SIZE)
    for name in ("left", "bottom"):
        plot.getAxis(name).setStyle(tickFont=font)
    plot.setLabel("left", left, units=left_units, **{"font-size": LABEL_SIZE})
    if bottom:
        plot.setLabel("bottom", bottom, **{"font-size": LABEL_SIZE})
    plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
    plot.showGrid(x=True, y=True, alpha=0.25)
    return widget


def add_legend(plot: pg.PlotItem) -> pg.LegendItem:
    return plot.addLegend(offset=(-10, 10), labelTextSize="11pt",
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
        pg.exporters.SVGExporter(plot).export(str(svg))
        written += [png, svg]
    return written


def finite_or_nan(values) -> np.ndarray:
    """float64 copy with every non-finite value replaced by NaN (pyqtgraph skips NaN)."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def faded(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


class GrowingColumns:
    """Named 1-D float columns that grow by doubling (amortized O(1) per appended row)."""

    def __init__(self, names: tuple[str, ...], capacity: int = 1024):
        self._names = names
        self._n = 0
        self._data = {name: np.zeros(capacity) for name in names}

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
        self._steps = GrowingColumns(("step", "loss", "rose", "rise_share"))
        self._evals = GrowingColumns(("step", "train_loss", "val_loss", "train_acc", "val_acc"))
        self._task = "classification"

        self.log_checkbox = QCheckBox("Log scale (loss)")
        self.log_checkbox.setChecked(True)
        self.log_checkbox.toggled.connect(self._set_log)

        self.loss_plot = make_plot("Loss", "loss", bottom=None)
        plot = self.loss_plot.getPlotItem()
        add_legend(plot)
        self.step_curve = plot.plot(
            pen=pg.mkPen(faded(theme.TRAIN, 110), width=1), name="minibatch loss (each step)")
        self.train_curve = plot.plot(
            pen=theme.pen(theme.TRAIN), symbol="o", symbolSize=7, symbolPen=None,
            symbolBrush=theme.TRAIN, name="training loss (whole set)")
        self.val_curve = plot.plot(
            pen=theme.pen(theme.VALIDATION), symbol="o", symbolSize=7, symbolPen=None,
            symbolBrush=theme.VALIDATION, name="validation loss")

        self.accuracy_plot = make_plot(None, "accuracy", bottom=None, left_units="%")
        acc = self.accuracy_plot.getPlotItem()
        add_legend(acc)
        acc.setYRange(0, 100, padding=0.02)
        acc.setMouseEnabled(y=False)
        self.train_acc_curve = acc.plot(
            pen=theme.pen(theme.TRAIN), symbol="o", symbolSize=6, symbolPen=None,
            symbolBrush=theme.TRAIN, name="training")
        self.val_acc_curve = acc.plot(
            pen=theme.pen(theme.VALIDATION), symbol="o", symbolSize=6, symbolPen=None,
            symbolBrush=theme.VALIDATION, name="validation")

        self.rise_plot = make_plot(None, "rose", bottom="step")
        rise = self.rise_plot.getPlotItem()
        rise.setYRange(0, 1, padding=0.05)
        rise.setMouseEnabled(y=False)
        rise.getAxis("left").setTicks([[(0, "0"), (0.5, "½"), (1, "1")]])
        rise.addItem(pg.InfiniteLine(
            pos=0.5, angle=0, pen=theme.pen(theme.MUTED, 1, Qt.PenStyle.DashLine)))
        self.rise_title = pg.TextItem(
            f"share of steps where loss rose (last {RISE_WINDOW})", color=theme.FOREGROUND,
            anchor=(0, 0))
        self.rise_title.setFont(_font(TICK_POINT_SIZE))
        self.rise_title.setParentItem(rise.getViewBox())
        self.rise_title.setPos(6, 0)
        self.rise_curve = rise.plot(pen=theme.pen(theme.ACCENT, 1.5))

        for curve in (self.step_curve, self.rise_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        acc.setXLink(plot)
        rise.setXLink(plot)
        plot.setLogMode(y=True)

        top = QHBoxLayout()
        top.addWidget(self.log_checkbox)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.loss_plot, 5)
        layout.addWidget(self.accuracy_plot, 2)
        layout.addWidget(self.rise_plot, 2)
        self.rise_plot.setMinimumHeight(110)
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
        np.divide(csum[hi] - csum[lo], count, out=share, where=count > 0)
        self._steps.append(step=steps, loss=loss, rose=rose, rise_share=share)

    def _redraw_steps(self) -> None:
        s = self._steps
        self.step_curve.setData(s["step"], s["loss"], connect="finite")
        self.rise_curve.setData(s["step"], s["rise_share"], connect="finite")

    def _redraw_evals(self) -> None:
        e = self._evals
        self.train_curve.setData(e["step"], e["train_loss"], connect="finite")
        self.val_curve.setData(e["step"], e["val_loss"], connect="finite")
        self.train_acc_curve.setData(e["step"], e["train_acc"], connect="finite")
        self.val_acc_curve.setData(e["step"], e["val_acc"], connect="finite")

    def _set_log(self, on: bool) -> None:
        self.loss_plot.getPlotItem().setLogMode(y=on)


def _font(point_size: int) -> QFont:
    font = QFont()
    font.setPointSize(point_size)
    return font


# -- learning rate ---------------------------------------------------------------------------
class LearningRateView(QWidget):
    """The schedule's whole planned curve, the rate actually used so far, and the current
    step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._used = GrowingColumns(("step", "lr"))
        self.log_checkbox = QCheckBox("Log scale")
        self.log_checkbox.setChecked(False)
        self.log_checkbox.toggled.connect(self._set_log)

        self.plot_widget = make_plot("Learning rate", "learning rate", bottom="step")
        plot = self.plot_widget.getPlotItem()
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
            labelOpts={"position": 0.92, "color": theme.ACCENT, "fill": (255, 255, 255, 200),
                       "anchors": [(0, 0.5), (0, 0.5)]})
        self.step_marker.label.setFont(_font(TICK_POINT_SIZE))
        plot.addItem(self.step_marker, ignoreBounds=True)

        top = QHBoxLayout()
        top.addWidget(self.log_checkbox)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.plot_widget, 1)

    def set_run(self, info: RunInfo) -> None:
        self._used.clear()
        planned = finite_or_nan(info.lr_curve)
        steps = np.arange(1, planned.size + 1, dtype=np.float64)
        self.planned_curve.setData(steps, planned, connect="finite")
        self.used_curve.setData(np.zeros(0), np.zeros(0))
        self.step_marker.setValue(0)
        self.plot_widget.getPlotItem().enableAutoRange()

    def show_frame(self, frame: Frame) -> None:
        d = frame.delta
        if len(d):
            steps = np.asarray(d.steps, dtype=np.float64)
            _rewind(self._used, steps[0])
            self._used.append(step=steps, lr=finite_or_nan(d.lr))
            self.used_curve.setData(self._used["step"], self._used["lr"], connect="finite")
        step = frame.snapshot.step
        if step != self.step_marker.value():
            self.step_marker.setValue(step)

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        return export_plots({"learning_rate": self.plot_widget.getPlotItem()}, folder, prefix)

    def _set_log(self, on: bool) -> None:
        self.plot_widget.getPlotItem().setLogMode(y=on)
