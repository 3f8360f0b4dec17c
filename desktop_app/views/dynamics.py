"""Learning-rate dynamics: sharpness against 2/η, and the learning-rate range test.

Sharpness (λmax of the loss's Hessian) is measured on the worker every K steps when asked;
for a quadratic, gradient descent oscillates once η·λmax > 1 and diverges once η·λmax > 2,
so the plot shows λmax against the threshold 2/η (2(1+μ)/η with momentum). The range test
(Smith 2017) raises the rate exponentially from a fresh start over several seeds and
suggests a rate that one click applies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo
from desktop_app.views.training import add_legend, export_plots, make_plot


class DynamicsView(QWidget):
    """λmax vs 2/η over training, and the range test's band and suggestions."""

    sharpness_requested = Signal(int)  # measure every K steps (0: stop)
    range_test_requested = Signal(int)  # steps per seed
    apply_learning_rate = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.track_box = QCheckBox("Measure sharpness λmax every")
        self.every_box = QSpinBox()
        self.every_box.setRange(1, 100000)
        self.every_box.setValue(100)
        self.every_box.setSuffix(" steps")
        self.track_box.toggled.connect(self._tracking_changed)
        self.every_box.valueChanged.connect(lambda _v: self._tracking_changed())
        self.verdict = QLabel("Tick the box to measure the loss surface's sharpest curvature "
                              "while training (a power iteration on Hessian-vector products).")
        self.verdict.setWordWrap(True)

        self.sharp_plot = make_plot("Sharpness λmax against the stability threshold",
                                    "curvature", log_axis=False)
        plot = self.sharp_plot.getPlotItem()
        plot.setLogMode(y=True)
        add_legend(plot)
        self.lam_curve = plot.plot(pen=theme.pen(theme.TRAIN), symbol="o", symbolSize=6,
                                   symbolBrush=theme.TRAIN, symbolPen=None, name="λmax")
        self.threshold_curve = plot.plot(
            pen=theme.pen(theme.ACCENT, 2, Qt.PenStyle.DashLine),
            name="2/η (diverges above; oscillates above 1/η)")

        self.test_steps = QSpinBox()
        self.test_steps.setRange(20, 5000)
        self.test_steps.setValue(200)
        self.test_steps.setSuffix(" steps × 3 seeds")
        self.test_button = QPushButton("Run range test")
        self.test_button.clicked.connect(
            lambda: self.range_test_requested.emit(self.test_steps.value()))
        self.apply_steepest = QPushButton("Apply steepest")
        self.apply_min = QPushButton("Apply minimum ÷ 10")
        for b in (self.apply_steepest, self.apply_min):
            b.setEnabled(False)
        self.apply_steepest.clicked.connect(lambda: self._apply("steepest"))
        self.apply_min.clicked.connect(lambda: self._apply("min_div_10"))
        self.range_plot = make_plot("Learning-rate range test", "smoothed loss",
                                    bottom="learning rate")
        rp = self.range_plot.getPlotItem()
        rp.setLogMode(x=True, y=True)
        add_legend(rp)
        self.band_low = pg.PlotDataItem(pen=None)
        self.band_high = pg.PlotDataItem(pen=None)
        self.band = pg.FillBetweenItem(self.band_low, self.band_high,
                                       brush=pg.mkBrush(31, 119, 180, 60))
        rp.addItem(self.band_low)
        rp.addItem(self.band_high)
        rp.addItem(self.band)
        self.median_curve = rp.plot(pen=theme.pen(theme.TRAIN), name="median of seeds")
        self.steepest_line = pg.InfiniteLine(angle=90, pen=theme.pen(theme.HEALTHY, 2),
                                             label="steepest", labelOpts={"position": 0.9})
        self.min_line = pg.InfiniteLine(angle=90, pen=theme.pen(theme.VALIDATION, 2),
                                        label="min ÷ 10", labelOpts={"position": 0.8})
        self.current_line = pg.InfiniteLine(angle=90, pen=theme.pen(theme.MUTED, 1.5),
                                            label="current", labelOpts={"position": 0.1})
        for line in (self.steepest_line, self.min_line, self.current_line):
            line.setVisible(False)
            rp.addItem(line, ignoreBounds=True)
        self.result = None
        self._lr = None

        top = QHBoxLayout()
        for w in (self.track_box, self.every_box):
            top.addWidget(w)
        top.addStretch(1)
        tests = QHBoxLayout()
        for w in (self.test_button, self.test_steps, self.apply_steepest, self.apply_min):
            tests.addWidget(w)
        tests.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.verdict)
        layout.addWidget(self.sharp_plot, 1)
        layout.addLayout(tests)
        layout.addWidget(self.range_plot, 1)

    # -- inputs ----------------------------------------------------------------------------
    def _tracking_changed(self, *_args) -> None:
        self.sharpness_requested.emit(self.every_box.value() if self.track_box.isChecked()
                                      else 0)

    def _apply(self, which: str) -> None:
        if self.result is not None:
            self.apply_learning_rate.emit(float(getattr(self.result, which)))

    # -- showing ---------------------------------------------------------------------------
    def set_run(self, info: RunInfo) -> None:
        self.lam_curve.setData([], [])
        self.threshold_curve.setData([], [])
        self._lr = float(info.config.optimizer.learning_rate)
        self._show_current()

    def show_frame(self, frame: Frame) -> None:
        self._lr = float(frame.snapshot.learning_rate) if frame.snapshot.step else self._lr
        self._show_current()
        series = frame.sharpness
        if series is None or not len(series.steps):
            return
        lam = np.where(series.values > 0, series.values, np.nan)
        self.lam_curve.setData(series.steps, lam, connect="finite")
        thr = np.where(series.thresholds > 0, series.thresholds, np.nan)
        self.threshold_curve.setData(series.steps, thr, connect="finite")
        last, bound = series.values[-1], series.thresholds[-1]
        if not np.isfinite(bound):
            text = (f"λmax = {last:.3g}. The optimizer adapts its step per parameter, so "
                    "there is no single 2/η threshold.")
        elif last > bound:
            text = (f"λmax = {last:.3g} is above the threshold {bound:.3g}: along the sharpest "
                    "direction each step overshoots by more than it corrects (diverging, or "
                    "training at the edge of stability).")
        elif last > bound / 2:
            text = (f"λmax = {last:.3g}, between half the threshold and the threshold "
                    f"({bound:.3g}): steps overshoot the valley floor, so the loss oscillates.")
        else:
            text = (f"λmax = {last:.3g} is below half the threshold ({bound:.3g}): steps along "
                    "the sharpest direction do not overshoot.")
        self.verdict.setText(text)

    def _show_current(self) -> None:
        if self._lr and self._lr > 0 and self.result is not None:
            self.current_line.setValue(np.log10(self._lr))
            self.current_line.setVisible(True)

    def show_range_test(self, result) -> None:
        self.result = result
        grid = np.asarray(result.grid)
        ok = np.isfinite(result.median)
        self.median_curve.setData(grid[ok], np.asarray(result.median)[ok])
        self.band_low.setData(grid[ok], np.asarray(result.low)[ok])
        self.band_high.setData(grid[ok], np.asarray(result.high)[ok])
        for line, value in ((self.steepest_line, result.steepest),
                            (self.min_line, result.min_div_10)):
            line.setValue(np.log10(value))
            line.setVisible(True)
        self.apply_steepest.setText(f"Apply steepest (η = {result.steepest:.3g})")
        self.apply_min.setText(f"Apply minimum ÷ 10 (η = {result.min_div_10:.3g})")
        for b in (self.apply_steepest, self.apply_min):
            b.setEnabled(True)
        self._show_current()

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        return export_plots({"sharpness": self.sharp_plot.getPlotItem(),
                             "range_test": self.range_plot.getPlotItem()}, Path(folder), prefix)
