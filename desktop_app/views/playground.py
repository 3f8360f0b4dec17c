"""Optimizer playground: the engine's optimizers on analytic two-parameter surfaces.

Everything is computed by `engine.surfaces` (grid, run_many, slide_presets); this view only
asks for a surface and a few runs and draws the surface, the paths and their losses.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app import theme
from desktop_app.views.inside import set_title
from desktop_app.views.training import (
    LABEL_SIZE,
    export_plots,
    make_plot,
    tick_font,
)
from engine.optimizers import OPTIMIZERS
from engine.surfaces import (
    SURFACES,
    OptimizerPath,
    Surface,
    grid,
    make_surface,
    run_optimizer,
    slide_presets,
)

MAX_RUNS = 6
AXIS_NAMES = {"rnn_cliff": ("w (recurrent weight)", "b (bias)")}  # default ("x", "y")
GRID_POINTS = 101
N_CONTOURS = 9
THROTTLE_MS = 150  # typing a rate recomputes at most this often
ALL_PRESETS = "all four (the slide)"
PRESET_PLACEHOLDER = "Lecture slide…"
CONTOUR_PEN = pg.mkPen(255, 255, 255, 150, width=1)
INVALID_STYLE = "QLineEdit { background: #ffd6d6; }"
COLORMAP = "viridis"
LEGEND_SHORT = 36  # characters: entries up to this long go two to a line
LEGEND_FONT_DELTA = 1  # points above theme.FONT_POINT_SIZE
LEGEND_ROW_HEIGHT = 21  # pixels per legend line at that size


def run_color(k: int) -> str:
    return theme.CLASS_COLORS[k % len(theme.CLASS_COLORS)]


def _color_icon(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def log_image(values: np.ndarray) -> np.ndarray:
    """log₁₀ of the height above the lowest grid value (so saddles and negative losses can be
    drawn too); the offset keeps the minimum itself finite."""
    v = np.where(np.isfinite(values), values, np.nan)
    lo, hi = np.nanmin(v), np.nanmax(v)
    eps = max((hi - lo) * 1e-4, 1e-12)
    z = np.log10(v - lo + eps)
    return np.where(np.isfinite(z), z, np.nanmax(z))


def left_plot_at(points: np.ndarray, extent: tuple[float, float, float, float]) -> int:
    """The first step whose point lies outside the drawn extent, or 0 if none does."""
    x0, x1, y0, y1 = extent
    tol = 1e-9 * max(x1 - x0, y1 - y0)
    outside = ((points[:, 0] < x0 - tol) | (points[:, 0] > x1 + tol)
               | (points[:, 1] < y0 - tol) | (points[:, 1] > y1 + tol))
    hits = np.flatnonzero(outside)
    return int(hits[0]) if hits.size else 0


def drawable(points: np.ndarray, extent: tuple[float, float, float, float]) -> np.ndarray:
    """The path up to where it leaves the extent, its last segment cut at a box twice the
    extent's size (so it visibly runs off the plot without 10¹⁶-pixel coordinates)."""
    k = left_plot_at(points, extent)
    if not k:
        return points
    x0, x1, y0, y1 = extent
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0), (y1 - y0)
    a, b = points[k - 1], points[k]
    t = 1.0
    for axis, centre, half in ((0, cx, hw), (1, cy, hh)):
        d = b[axis] - a[axis]
        if abs(b[axis] - centre) > half and d != 0.0:
            edge = centre + math.copysign(half, d)
            t = min(t, (edge - a[axis]) / d)
    return np.vstack([points[:k], a + max(t, 0.0) * (b - a)])


class PlaygroundView(QWidget):
    """Pick a surface and a few optimizers with their rates; see the paths and the losses."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._surface: Surface = SURFACES["quadratic"]
        self._paths: list[OptimizerPath] = []
        self._rows_of_paths: list[int] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(THROTTLE_MS)
        self._timer.timeout.connect(self.recompute)
        self._surface_stale = False  # λ spin boxes changed since the surface was drawn

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._build_controls())
        layout.addLayout(self._build_plots(), 1)

        self._show_surface()
        self.apply_preset(ALL_PRESETS)

    # -- construction --------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel = QWidget()
        panel.setFixedWidth(350)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 5000)
        self.steps_spin.setValue(100)
        self.steps_spin.valueChanged.connect(self._schedule)
        steps_form = QFormLayout()
        steps_form.addRow("Steps", self.steps_spin)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.recompute)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignTop)

        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(self._build_surface_form())
        column.addWidget(QLabel("Runs (same start)"))
        column.addLayout(self._build_runs_table(), 2)
        column.addLayout(steps_form)
        column.addWidget(self.run_button)
        column.addWidget(self.status_label, 1)
        return panel

    def _build_surface_form(self) -> QFormLayout:
        form = QFormLayout()
        self.surface_combo = QComboBox()
        for k, (name, s) in enumerate(SURFACES.items()):
            self.surface_combo.addItem(s.label, name)
            self.surface_combo.setItemData(k, s.description, Qt.ItemDataRole.ToolTipRole)
        self.surface_combo.currentIndexChanged.connect(self._surface_chosen)
        form.addRow("Surface", self.surface_combo)
        self.formula_label = QLabel()
        self.formula_label.setWordWrap(True)
        form.addRow(self.formula_label)

        self.lam_row = QWidget()
        lam_layout = QHBoxLayout(self.lam_row)
        lam_layout.setContentsMargins(0, 0, 0, 0)
        self.lam_spins = []
        for text, value in (("λ₁", 1.0), ("λ₂", 10.0)):
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setRange(0.001, 1000.0)
            spin.setValue(value)
            spin.setToolTip("Curvature (Hessian eigenvalue) along this axis")
            spin.valueChanged.connect(self._lambdas_changed)
            self.lam_spins.append(spin)
            lam_layout.addWidget(QLabel(text))
            lam_layout.addWidget(spin, 1)
        self.condition_label = QLabel()
        form.addRow(self.lam_row)
        form.addRow(self.condition_label)

        self.preset_combo = QComboBox()
        self.preset_combo.addItems([PRESET_PLACEHOLDER, *slide_presets(), ALL_PRESETS])
        self.preset_combo.setToolTip(
            "The lecture's first slide: plain gradient descent on the quadratic bowl with "
            "η·λmax = 0.05 (slow), 1.8 (oscillates), 2.2 (diverges) and 1 (near-optimal).")
        self.preset_combo.textActivated.connect(self._preset_chosen)
        form.addRow("Preset", self.preset_combo)
        return form

    def _build_runs_table(self) -> QVBoxLayout:
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["optimizer", "η", "clip ‖g‖ ≤"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Learning rate η (e.g. 0.01 or 1e-3); clip: global-norm "
                              "threshold τ, empty for none")
        self.add_button = QPushButton("Add run")
        self.add_button.clicked.connect(self._add_clicked)
        self.remove_button = QPushButton("Remove run")
        self.remove_button.clicked.connect(self._remove_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        box = QVBoxLayout()
        box.addWidget(self.table, 1)
        box.addLayout(buttons)
        return box

    def _build_plots(self) -> QVBoxLayout:
        self.surface_plot = make_plot(None, "y", bottom="x")
        plot = self.surface_plot.getPlotItem()
        plot.showGrid(x=False, y=False)
        plot.setAspectLocked(True, ratio=1.0)
        plot.setMenuEnabled(False)
        plot.disableAutoRange()
        self.image = pg.ImageItem(axisOrder="row-major")
        plot.addItem(self.image)
        self.contours = [pg.IsocurveItem(level=0.0, pen=CONTOUR_PEN, axisOrder="row-major")
                         for _ in range(N_CONTOURS)]
        for contour in self.contours:
            contour.setParentItem(self.image)  # shares the image's placement
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=COLORMAP, width=16,
                                        interactive=False, colorMapMenu=False)
        self.colorbar.setImageItem(self.image, insert_in=plot)
        bar_axis = self.colorbar.getAxis("right")
        bar_axis.setStyle(tickFont=tick_font())
        bar_axis.setWidth(78)  # room for "-1.5" and the label beside it
        bar_axis.setLabel("log₁₀(L − L_min)", **{"font-size": LABEL_SIZE})

        self.minima = pg.ScatterPlotItem(symbol="x", size=18, pen=pg.mkPen("k", width=3),
                                         brush=pg.mkBrush("w"))
        self.saddles = pg.ScatterPlotItem(symbol="+", size=18, pen=pg.mkPen("k", width=2),
                                          brush=pg.mkBrush("w"))
        self.start = pg.ScatterPlotItem(symbol="o", size=16, pen=pg.mkPen("k", width=2),
                                        brush=pg.mkBrush("w"))
        self.path_curves = []
        for k in range(MAX_RUNS):
            c = run_color(k)
            curve = pg.PlotDataItem(pen=theme.pen(c), symbol="o", symbolSize=6,
                                    symbolPen=None, symbolBrush=c)
            curve.setZValue(5 + k)
            plot.addItem(curve)
            self.path_curves.append(curve)
        for item, z in ((self.minima, 20), (self.saddles, 20), (self.start, 21)):
            item.setZValue(z)
            plot.addItem(item)
        self._legend_entries: list[str] = []

        self.loss_plot = make_plot(None, "loss", bottom="step", log_axis=True)
        self.loss_curves = [self.loss_plot.getPlotItem().plot(pen=theme.pen(run_color(k)))
                            for k in range(MAX_RUNS)]
        self.loss_plot.setMinimumHeight(170)
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.surface_plot, 3)
        column.addWidget(self.loss_plot, 1)
        return column

    # -- public --------------------------------------------------------------------------------
    def set_surface(self, name: str, **params: float) -> None:
        """Show the registry surface `name`, made with `params` (`make_surface`), and rerun."""
        surface = make_surface(name, **params)
        self._surface, self._surface_stale = surface, False
        index = self.surface_combo.findData(name)
        self.surface_combo.blockSignals(True)
        self.surface_combo.setCurrentIndex(index)
        self.surface_combo.blockSignals(False)
        if surface.name == "quadratic":
            for spin, lam in zip(self.lam_spins, surface.curvatures, strict=True):
                spin.blockSignals(True)
                spin.setValue(lam)
                spin.blockSignals(False)
        self._show_surface()
        self.recompute()

    def surface(self) -> Surface:
        return self._surface

    def set_runs(self, specs: list[dict]) -> None:
        """Replace the runs: `run_many` specs ({"optimizer", "lr", optional "clip" =
        (kind, τ), optional hyper-parameters}); at most MAX_RUNS are kept."""
        self.table.setRowCount(0)
        for spec in list(specs)[:MAX_RUNS]:
            self._append_row(dict(spec))
        self._update_buttons()
        self.recompute()

    def runs(self) -> list[dict]:
        """The valid runs in the table, as `run_many` specs."""
        return [spec for spec in (self._row_spec(r) for r in range(self.table.rowCount()))
                if spec is not None]

    def apply_preset(self, name: str) -> None:
        """One case of the lecture's first slide (a key of `slide_presets`) or ALL_PRESETS.
        The presets live on the quadratic bowl; from another surface this switches to it."""
        self._refresh_surface()
        if not self._surface.curvatures or min(self._surface.curvatures) <= 0:
            self.set_surface("quadratic", lam1=self.lam_spins[0].value(),
                             lam2=self.lam_spins[1].value())
        presets = slide_presets(self._surface)
        if name == ALL_PRESETS:
            self.set_runs(list(presets.values()))
        elif name in presets:
            self.set_runs([presets[name]])
        else:
            raise ValueError(f"preset must be one of {', '.join([*presets, ALL_PRESETS])}; "
                             f"got {name!r}")

    def paths(self) -> list[OptimizerPath]:
        """The last computed paths, one per valid run, in table order."""
        return list(self._paths)

    def legend_texts(self) -> list[str]:
        """The legend's entries, "optimizer, η=… — fate", one per drawn path."""
        return list(self._legend_entries)

    def recompute(self) -> None:
        """Run every valid row on the current surface and redraw (tiny: synchronous)."""
        self._timer.stop()
        self._refresh_surface()
        problems, paths, rows = [], [], []
        for row in range(self.table.rowCount()):
            spec = self._row_spec(row)
            if spec is None:
                problems.append(f"Run {row + 1}: type a rate > 0 (and a clip τ > 0 or none).")
                continue
            name, lr, clip = spec.pop("optimizer"), spec.pop("lr"), spec.pop("clip")
            try:
                paths.append(run_optimizer(self._surface, name, lr, None,
                                           self.steps_spin.value(), clip, **spec))
            except ValueError as exc:
                problems.append(f"Run {row + 1}: {exc}")
                continue
            rows.append(row)
        self._paths, self._rows_of_paths = paths, rows
        self._draw_paths(problems)

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        plots = {"playground_surface": self.surface_plot.getPlotItem(),
                 "playground_loss": self.loss_plot.getPlotItem()}
        return export_plots(plots, folder, prefix)

    # -- drawing -------------------------------------------------------------------------------
    def _show_surface(self) -> None:
        s = self._surface
        self.formula_label.setText(s.formula)
        self.surface_combo.setToolTip(s.description)
        is_quadratic = s.name == "quadratic"
        self.lam_row.setVisible(is_quadratic)
        self.condition_label.setVisible(is_quadratic)
        if is_quadratic:
            lam = s.curvatures
            self.condition_label.setText(
                f"condition number κ = λmax/λmin = {max(lam) / min(lam):.3g};  "
                f"2/λmax = {2 / max(lam):.3g}")
        xs, ys, values = grid(s, GRID_POINTS)
        z = log_image(values)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        lo, hi = float(np.percentile(z, 0.5)), float(np.percentile(z, 99.5))
        hi = hi if hi > lo else lo + 1.0
        self.image.setImage(z, autoLevels=False, levels=(lo, hi))
        # pixel centres on the grid points
        self.image.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, xs[-1] - xs[0] + dx,
                                  ys[-1] - ys[0] + dy))
        self.colorbar.setLevels((lo, hi))
        for contour, level in zip(self.contours, np.linspace(lo, hi, N_CONTOURS + 2)[1:-1],
                                  strict=True):
            contour.setData(z, level)
        self.minima.setData(pos=np.array(s.minima).reshape(-1, 2))
        self.saddles.setData(pos=np.array(s.saddle_points).reshape(-1, 2))
        self.start.setData(pos=np.array([s.start]))
        plot = self.surface_plot.getPlotItem()
        for side, text in zip(("bottom", "left"), AXIS_NAMES.get(s.name, ("x", "y")),
                              strict=True):
            plot.setLabel(side, text, **{"font-size": LABEL_SIZE})
        x0, x1, y0, y1 = s.extent
        self.surface_plot.getPlotItem().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def _draw_paths(self, problems: list[str]) -> None:
        extent = self._surface.extent
        entries, cells, lines, calm = [], [], [], []
        # log y unless a loss is <= 0 (saddle, several minima): then linear, all of it shown
        positive = all((p.losses > 0).all() for p in self._paths)
        self.loss_plot.getPlotItem().setLogMode(y=positive)
        for k in range(MAX_RUNS):
            curve, loss_curve = self.path_curves[k], self.loss_curves[k]
            if k >= len(self._paths):
                curve.setData(np.zeros(0), np.zeros(0))
                loss_curve.setData(np.zeros(0), np.zeros(0))
                continue
            path, row = self._paths[k], self._rows_of_paths[k]
            color = run_color(row)
            for item in (curve, loss_curve):
                item.setPen(theme.pen(color))
            curve.setSymbolBrush(color)
            pts = drawable(path.points, extent)
            curve.setData(pts[:, 0], pts[:, 1])
            loss_curve.setData(np.arange(path.losses.size), path.losses)
            label, fate = self._describe(path, extent)
            entries.append(label + (f" — {fate}" if fate else ""))
            cells.append(f"<span style='color:{color}'>━●━</span>&nbsp;{entries[-1]}")
            lines.append(f"<span style='color:{color}'>■</span> {label}: " + (
                fate or f"loss {path.losses[-1]:.3g} after {path.steps} steps"))
            if not fate:
                calm.append(path.losses)
        self._fit_loss_range(calm, positive, all_calm=len(calm) == len(self._paths))
        self.status_label.setText("<br>".join(lines + problems))
        self._legend_entries = entries
        self._set_legend(cells)

    def _fit_loss_range(self, calm: list[np.ndarray], log: bool, all_calm: bool) -> None:
        """Fit the y range to the runs that stay on the plot; a diverging run's 10¹⁶⁰ would
        flatten them all, so it is left to shoot off the top."""
        plot = self.loss_plot.getPlotItem()
        if all_calm or not calm:
            plot.enableAutoRange(axis="y")
            return
        values = np.concatenate(calm)
        lo, hi = float(values.min()), float(values.max())
        if log:
            plot.setYRange(np.log10(lo), np.log10(hi) + 1.0, padding=0.05)
        else:
            plot.setYRange(lo, hi + 0.5 * max(hi - lo, 1e-12), padding=0.05)

    def _set_legend(self, cells: list[str]) -> None:
        """The legend sits above the plot (so it never hides a path): two columns while the
        entries are short, one when a run's fate makes them long."""
        plot = self.surface_plot.getPlotItem()
        longest = max((len(e) for e in self._legend_entries), default=0)
        per_row = 2 if longest <= LEGEND_SHORT else 1
        rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
        html = "<table cellspacing='0' cellpadding='1'>" + "".join(
            "<tr>" + "".join(f"<td>{c}&nbsp;&nbsp;&nbsp;</td>" for c in row) + "</tr>"
            for row in rows) + "</table>"
        height = LEGEND_ROW_HEIGHT * max(len(rows), 1) + 6
        set_title(plot, html, delta=LEGEND_FONT_DELTA)
        plot.titleLabel.setMaximumHeight(height)
        plot.layout.setRowFixedHeight(0, height)

    @staticmethod
    def _describe(path: OptimizerPath, extent) -> tuple[str, str]:
        label = f"{OPTIMIZERS[path.optimizer].label}, η={path.lr:.3g}"
        if path.clip[0] != "none":
            label += f", clip {path.clip[1]:g}"
        left = left_plot_at(path.points, extent)
        if path.diverged:
            fate = f"diverged at step {path.divergence_step}"
        elif left:
            fate = f"left the plot at step {left} (diverging)"
        else:
            fate = ""
        return label, fate

    # -- the runs table ------------------------------------------------------------------------
    def _append_row(self, spec: dict) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        combo = _OptimizerCombo()
        combo.setCurrentIndex(max(combo.findData(spec.pop("optimizer", "sgd")), 0))
        lr = QLineEdit(f"{float(spec.pop('lr', 0.01)):.4g}")
        kind, tau = spec.pop("clip", ("none", 1.0))
        clip = QLineEdit("" if kind == "none" else f"{float(tau):g}")
        clip.setPlaceholderText("none")
        # a spec's other keys (hyper-parameters, a "value" clip) ride along with the row
        combo.extras = spec
        combo.clip_kind = "global_norm" if kind == "none" else kind
        combo.currentIndexChanged.connect(self._schedule)
        for edit in (lr, clip):
            edit.textChanged.connect(self._schedule)
        self.table.setCellWidget(row, 0, combo)
        self.table.setCellWidget(row, 1, lr)
        self.table.setCellWidget(row, 2, clip)
        self._recolor_rows()

    def _row_spec(self, row: int) -> dict | None:
        combo = self.table.cellWidget(row, 0)
        lr_edit, clip_edit = self.table.cellWidget(row, 1), self.table.cellWidget(row, 2)
        lr, tau = _number(lr_edit.text()), _number(clip_edit.text())
        clip_ok = not clip_edit.text().strip() or (tau is not None and tau > 0)
        lr_ok = lr is not None and lr > 0
        lr_edit.setStyleSheet("" if lr_ok else INVALID_STYLE)
        clip_edit.setStyleSheet("" if clip_ok else INVALID_STYLE)
        if not (lr_ok and clip_ok):
            return None
        clip = ("none", 1.0) if tau is None else (combo.clip_kind, tau)
        return {"optimizer": combo.currentData(), "lr": lr, "clip": clip,
                **combo.extras}

    def _recolor_rows(self) -> None:
        for row in range(self.table.rowCount()):
            item = QTableWidgetItem(_color_icon(run_color(row)), str(row + 1))
            self.table.setVerticalHeaderItem(row, item)

    def _update_buttons(self) -> None:
        n = self.table.rowCount()
        self.add_button.setEnabled(n < MAX_RUNS)
        self.remove_button.setEnabled(n > 0)

    def _add_clicked(self) -> None:
        if self.table.rowCount() < MAX_RUNS:
            self._append_row({"optimizer": "momentum", "lr": 0.01})
            self._update_buttons()
            self.recompute()

    def _remove_clicked(self) -> None:
        row = self.table.currentRow()
        self.table.removeRow(row if row >= 0 else self.table.rowCount() - 1)
        self._recolor_rows()
        self._update_buttons()
        self.recompute()

    # -- input handlers ------------------------------------------------------------------------
    def _schedule(self, *_) -> None:
        self._timer.start()  # restarts: a burst of edits computes once, ~150 ms after the last

    def _surface_chosen(self, index: int) -> None:
        name = self.surface_combo.itemData(index)
        if name == "quadratic":
            self.set_surface(name, lam1=self.lam_spins[0].value(),
                             lam2=self.lam_spins[1].value())
        else:
            self.set_surface(name)

    def _refresh_surface(self) -> None:
        if self._surface_stale:
            self._surface = make_surface("quadratic", lam1=self.lam_spins[0].value(),
                                         lam2=self.lam_spins[1].value())
            self._surface_stale = False
            self._show_surface()

    def _lambdas_changed(self, *_) -> None:
        self._surface_stale = True  # redrawn with the runs, once a spin-box burst is over
        self._schedule()

    def _preset_chosen(self, text: str) -> None:
        if text != PRESET_PLACEHOLDER:
            self.apply_preset(text)


class _OptimizerCombo(QComboBox):
    """The optimizer of one run; carries the spec's keys the table has no column for."""

    def __init__(self):
        super().__init__()
        for name, o in OPTIMIZERS.items():
            self.addItem(o.label, name)
        self.extras: dict = {}  # hyper-parameters
        self.clip_kind = "global_norm"  # used when a threshold is typed


def _number(text: str) -> float | None:
    """A typed number ("0.01", "1e-3", "2,5"); None if it is not a finite number."""
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


if __name__ == "__main__":  # look at it: python -m desktop_app.views.playground
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    theme.configure_pyqtgraph()
    view = PlaygroundView()
    view.resize(1100, 700)
    view.show()
    shots = [(p, None) for p in (*slide_presets(), ALL_PRESETS)]
    shots += [(None, name) for name in SURFACES if name != "quadratic"]
    for preset, surface_name in shots:
        if preset:
            view.apply_preset(preset)
        else:
            view.set_surface(surface_name)
            view.set_runs([{"optimizer": "sgd", "lr": 0.05},
                           {"optimizer": "momentum", "lr": 2e-3},
                           {"optimizer": "adam", "lr": 0.05},
                           {"optimizer": "sgd", "lr": 0.05, "clip": ("global_norm", 1.0)}])
        app.processEvents()
        tag = (preset or surface_name).split(":")[0].split(" (")[0].replace(" ", "_")
        view.grab().save(f"/tmp/playground_{tag}.png")
        print(tag, [p.message or p.steps for p in view.paths()])
