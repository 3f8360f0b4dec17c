"""Gradient flow: per-layer gradient norms (bars and a scrolling layers x steps heatmap), the
update/weight ratio per layer, and a verdict in words when gradients vanish or explode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo
from desktop_app.views.training import (
    LABEL_SIZE,
    SUPERSCRIPT,
    export_plots,
    freeze_mouse,
    make_plot,
    tick_font,
)

VANISH_RATIO = 1e-3  # a layer getting less than this share of the output layer's gradient
EXPLODE_RATIO = 1e3  # ... or more than this many times it
EXPLODE_ABSOLUTE = 1e3  # a gradient norm this large explodes whatever the others do
UPDATE_RULE_OF_THUMB = 1e-3  # ‖ΔW‖/‖W‖ per step that usually trains well
HEATMAP_COLUMNS = 600
MAX_NEW_COLUMNS = HEATMAP_COLUMNS // 10  # per frame: the picture scrolls <= 1/10 per frame
LEVEL_EVERY = 15  # frames between colour-level updates (~0.5 s at 30 Hz)
STATE_COLORS = {"vanishing": theme.VANISHING, "healthy": theme.HEALTHY,
                "exploding": theme.EXPLODING, "none": theme.MUTED}


def log10_or_nan(values) -> np.ndarray:
    """log10 of the positive finite values, NaN for zero, negative or non-finite ones."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v) & (v > 0)
    out[ok] = np.log10(v[ok])
    return out


def log10_for_colors(values) -> np.ndarray:
    """log10 with 0 -> -inf and +inf -> +inf (drawn in the lowest and highest colour), NaN
    and negative values -> NaN (drawn transparent)."""
    v = np.asarray(values, dtype=np.float64)
    out = log10_or_nan(v)
    out[v == 0] = -np.inf
    out[v == np.inf] = np.inf
    return out


def power_of_ten(x: float) -> str:
    """'10⁻⁶' for 1.3e-6."""
    return "10" + str(int(np.round(np.log10(x)))).translate(SUPERSCRIPT)


# -- verdict ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowVerdict:
    states: tuple[str, ...]  # per layer: "vanishing", "healthy", "exploding" or "none"
    kind: str  # the same words for the whole network
    text: str


def judge_flow(norms, names: tuple[str, ...]) -> FlowVerdict:
    """Colour each layer and say in words how the gradient flows back from the output.

    The reference is the output layer's norm: the gradient starts there and is multiplied
    layer by layer on its way to the input (the median of all layers when the output's is
    zero). A layer vanishes below VANISH_RATIO of it and explodes above EXPLODE_RATIO of it
    or above EXPLODE_ABSOLUTE.
    """
    g = np.asarray(norms, dtype=np.float64)
    n = g.size
    usable = np.isfinite(g) & (g > 0)
    if n == 0 or not usable.any():
        return FlowVerdict(("none",) * n, "none", "No gradients yet: press Step or Play.")
    ref = g[-1] if usable[-1] else float(np.median(g[usable]))
    ref_name = "the output layer's" if usable[-1] else "the median layer's"
    with np.errstate(all="ignore"):
        ratio = g / ref
    exploding = (np.isfinite(g) & ((ratio > EXPLODE_RATIO) | (g > EXPLODE_ABSOLUTE))) | np.isinf(g)
    vanishing = ~exploding & ~np.isnan(g) & (ratio < VANISH_RATIO)
    states = tuple("exploding" if e else "vanishing" if v else "healthy" if u else "none"
                   for e, v, u in zip(exploding, vanishing, usable | exploding, strict=True))
    if exploding.any():
        i = int(np.nanargmax(np.where(exploding, g, np.nan)))
        size = "infinite" if not np.isfinite(g[i]) else f"{g[i]:.2g}"
        text = f"Gradients explode: {names[i]} has ‖∇W‖ = {size}"
        if np.isfinite(ratio[i]) and ratio[i] > 1:
            text += f", {power_of_ten(ratio[i])} × {ref_name} gradient"
        return FlowVerdict(states, "exploding", text + ".")
    if vanishing.any():
        i = int(np.nanargmin(np.where(vanishing, g, np.nan)))
        share = "no gradient at all (exactly 0)" if g[i] == 0 else (
            f"{power_of_ten(ratio[i])} of {ref_name} gradient")
        count = int(vanishing.sum())
        text = (f"Gradients vanish toward the input: {names[i]} gets {share}; "
                f"{count} of {n} layers get less than 1/1000 of it.")
        return FlowVerdict(states, "vanishing", text)
    first = f"{ratio[0]:.2g}" if np.isfinite(ratio[0]) else "n/a"
    return FlowVerdict(states, "healthy", f"Gradient flow looks healthy "
                                          f"(ratio first/last = {first}).")


# -- heatmap columns -------------------------------------------------------------------------
class PooledColumns:
    """The last `width` columns of a rows x steps table, each column the mean of `stride`
    consecutive steps (NaN ignored). The stride doubles (pooling pairs of columns) whenever
    one batch of steps would add more than `max_new` columns, so fast training does not
    blur into a picture that is replaced every frame."""

    def __init__(self, n_rows: int, width: int = HEATMAP_COLUMNS, max_new: int = MAX_NEW_COLUMNS):
        self.width, self.max_new = width, max_new
        self.reset(n_rows)

    def reset(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.stride = 1
        self.first_block = 0  # column j holds steps (first_block+j)*stride+1 .. +stride
        self.last_step = 0
        self._sum = np.zeros((0, n_rows))  # (columns, rows)
        self._count = np.zeros((0, n_rows))

    @property
    def n_columns(self) -> int:
        return self._sum.shape[0]

    def add(self, steps: np.ndarray, values: np.ndarray) -> None:
        """steps: (k,) increasing 1-based step numbers; values: (k, n_rows), NaN = missing
        (+-inf count: a block holding one averages to +-inf)."""
        steps = np.asarray(steps, dtype=np.int64)
        if steps.size == 0:
            return
        if steps[0] <= self.last_step:  # rolled back: start the picture again
            self.reset(self.n_rows)
        while (steps[-1] - steps[0]) // self.stride + 1 > self.max_new:
            self._double()
        blocks = (steps - 1) // self.stride
        if self.n_columns == 0:
            self.first_block = int(blocks[0])
        grow = int(blocks[-1]) - self.first_block + 1 - self.n_columns
        if grow > 0:
            self._sum = np.concatenate([self._sum, np.zeros((grow, self.n_rows))])
            self._count = np.concatenate([self._count, np.zeros((grow, self.n_rows))])
        ok = ~np.isnan(values)
        with np.errstate(invalid="ignore"):  # -inf + inf in one block: NaN, transparent
            np.add.at(self._sum, blocks - self.first_block, np.where(ok, values, 0.0))
        np.add.at(self._count, blocks - self.first_block, ok.astype(np.float64))
        drop = self.n_columns - self.width
        if drop > 0:
            self._sum, self._count = self._sum[drop:], self._count[drop:]
            self.first_block += drop
        self.last_step = int(steps[-1])

    def _double(self) -> None:
        if self.n_columns:
            first = self.first_block // 2
            cols = (self.first_block + np.arange(self.n_columns)) // 2 - first
            size = int(cols[-1]) + 1
            s, c = np.zeros((size, self.n_rows)), np.zeros((size, self.n_rows))
            with np.errstate(invalid="ignore"):
                np.add.at(s, cols, self._sum)
            np.add.at(c, cols, self._count)
            self._sum, self._count, self.first_block = s, c, first
        self.stride *= 2

    def image(self) -> np.ndarray:
        """(n_rows, n_columns) means, NaN where a column has no value for a row."""
        out = np.full(self._sum.shape, np.nan)
        with np.errstate(invalid="ignore"):
            np.divide(self._sum, self._count, out=out, where=self._count > 0)
        return np.ascontiguousarray(out.T)

    def x_span(self) -> tuple[float, float]:
        """Step coordinates of the image's left and right edges."""
        x0 = self.first_block * self.stride + 0.5
        return x0, x0 + self.n_columns * self.stride


# -- the view --------------------------------------------------------------------------------
class GradientFlowView(QWidget):
    """Per-layer gradient norms (live bars and a scrolling heatmap), update/weight ratios and a
    verdict. Clicking a layer's bar or heatmap row emits `layer_clicked(index)`."""

    layer_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._names: tuple[str, ...] = ()
        self._columns = PooledColumns(0)
        self._frames = 0
        self._levels = (-8.0, 0.0)

        self.norm_plot = make_plot("Gradient norm per layer (last step)", "log10 ‖∇W‖",
                                   bottom=None)
        self.norm_bars = pg.BarGraphItem(x=[], y0=[], y1=[], width=0.7)
        self.norm_plot.addItem(self.norm_bars)
        freeze_mouse(self.norm_plot.getPlotItem())

        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setContentsMargins(8, 2, 8, 2)

        self.ratio_plot = make_plot("Update size ‖ΔW‖ / ‖W‖ per layer", "log10 ratio",
                                    bottom=None)
        self.ratio_bars = pg.BarGraphItem(x=[], y0=[], y1=[], width=0.7,
                                          brush=theme.TRAIN, pen=None)
        self.ratio_plot.addItem(self.ratio_bars)
        self.rule_line = pg.InfiniteLine(
            pos=np.log10(UPDATE_RULE_OF_THUMB), angle=0,
            pen=theme.pen(theme.ACCENT, 1.5, Qt.PenStyle.DashLine),
            label="10⁻³ rule of thumb",
            labelOpts={"position": 0.01, "color": theme.ACCENT, "anchors": [(0, 1), (0, 1)],
                       "fill": (255, 255, 255, 200)})
        self.ratio_plot.addItem(self.rule_line)
        freeze_mouse(self.ratio_plot.getPlotItem())

        self.heatmap_plot = make_plot("Gradient norm history (log10 ‖∇W‖)", "", bottom="step")
        self.heatmap = pg.ImageItem(axisOrder="row-major")
        self.heatmap_plot.addItem(self.heatmap)
        self.colorbar = pg.ColorBarItem(values=self._levels, colorMap=pg.colormap.get("viridis"),
                                        interactive=False, width=18)
        self.colorbar.setImageItem(self.heatmap, insert_in=self.heatmap_plot.getPlotItem())
        self.colorbar.axis.setLabel("log10 ‖∇W‖", **{"font-size": LABEL_SIZE})
        self.colorbar.axis.setStyle(tickFont=tick_font())
        self.colorbar.axis.setWidth(80)  # room for "-0.5" and the label side by side
        hm = self.heatmap_plot.getPlotItem()
        freeze_mouse(hm)
        hm.showGrid(x=False, y=False)
        hm.getAxis("left").setStyle(textFillLimits=[(0, 1.0)])  # every layer gets its name

        for widget in (self.norm_plot, self.ratio_plot, self.heatmap_plot):
            widget.scene().sigMouseClicked.connect(self._on_scene_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        layout.addWidget(self.norm_plot, 4)
        layout.addWidget(self.verdict_label)
        layout.addWidget(self.ratio_plot, 3)
        layout.addWidget(self.heatmap_plot, 5)
        self._show_verdict(judge_flow([], ()))

    # -- public ------------------------------------------------------------------------------
    def set_run(self, info: RunInfo) -> None:
        self._names = tuple(info.layer_names)
        n = len(self._names)
        self._columns.reset(n)
        self._frames = 0
        x = np.arange(n, dtype=np.float64)
        self.norm_bars.setOpts(x=x, y0=np.zeros(n), y1=np.zeros(n), brushes=None,
                               brush=theme.MUTED, pen=None)
        self.ratio_bars.setOpts(x=x, y0=np.zeros(n), y1=np.zeros(n))
        short = _short_names(self._names)
        for widget in (self.norm_plot, self.ratio_plot):
            plot = widget.getPlotItem()
            plot.getAxis("bottom").setTicks([_thinned(short), []])
            edge = 0.6 if n <= 12 else 0.6 + n / 40  # room for the first and last labels
            plot.setXRange(-edge, n - 1 + edge, padding=0)
        self.norm_plot.getPlotItem().setYRange(-8, 0, padding=0.02)
        self.ratio_plot.getPlotItem().setYRange(-6, -1, padding=0.02)
        hm = self.heatmap_plot.getPlotItem()
        hm.getAxis("left").setTicks([_thinned(short, 16), []])
        hm.setYRange(-0.5, n - 0.5, padding=0)
        hm.setXRange(0.5, HEATMAP_COLUMNS + 0.5, padding=0)
        self.heatmap.setVisible(False)
        self._show_verdict(judge_flow([], ()))

    def show_frame(self, frame: Frame) -> None:
        snap = frame.snapshot
        if len(snap.layer_names) != len(self._names):
            return  # a frame of another run, before set_run
        self._show_bars(snap.layer_grad_norm, snap.layer_update_ratio)
        verdict = judge_flow(snap.layer_grad_norm, self._names)
        self._show_verdict(verdict, snap.divergence.step if snap.diverged else None)
        self.norm_bars.setOpts(brushes=[STATE_COLORS[s] for s in verdict.states])
        d = frame.delta
        if len(d) and d.grad_layer.shape[1] == len(self._names):
            self._columns.add(d.steps, log10_for_colors(d.grad_layer))
            self._frames += 1
            self._show_heatmap()

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        return export_plots({"gradient_norms": self.norm_plot.getPlotItem(),
                             "update_ratio": self.ratio_plot.getPlotItem(),
                             "gradient_heatmap": self.heatmap_plot.getPlotItem()},
                            folder, prefix)

    def layer_at(self, scene_pos: QPointF) -> int | None:
        """The layer under a scene position (a bar or a heatmap row), or None."""
        n = len(self._names)
        for widget, along_x in ((self.norm_plot, True), (self.ratio_plot, True),
                                (self.heatmap_plot, False)):
            vb = widget.getPlotItem().getViewBox()
            if widget.scene() is not vb.scene() or not vb.sceneBoundingRect().contains(scene_pos):
                continue
            p = vb.mapSceneToView(scene_pos)
            v = p.x() if along_x else p.y()
            i = int(np.floor(v + 0.5))
            return i if 0 <= i < n else None
        return None

    # -- internals ---------------------------------------------------------------------------
    def _on_scene_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        layer = self.layer_at(event.scenePos())
        if layer is not None:
            self.layer_clicked.emit(layer)

    def _show_bars(self, norms: np.ndarray, ratios: np.ndarray) -> None:
        logs = log10_or_nan(norms)
        floor = _floor(logs, default=-8.0)
        self.norm_bars.setOpts(y0=np.full(logs.size, floor), y1=np.where(np.isnan(logs),
                                                                           floor, logs))
        _fit_y(self.norm_plot.getPlotItem(), floor, logs)
        r = log10_or_nan(ratios)
        rfloor = min(_floor(r, default=-6.0), np.log10(UPDATE_RULE_OF_THUMB) - 1)
        self.ratio_bars.setOpts(y0=np.full(r.size, rfloor), y1=np.where(np.isnan(r), rfloor, r))
        _fit_y(self.ratio_plot.getPlotItem(), rfloor, np.append(r, -2.0))

    def _show_verdict(self, verdict: FlowVerdict, diverged_at: int | None = None) -> None:
        text = verdict.text
        if diverged_at is not None:
            text += f" (Run diverged at step {diverged_at}; showing the last finite step.)"
        if text != self.verdict_label.text():
            self.verdict_label.setText(text)
            self.verdict_label.setStyleSheet(
                f"color: {STATE_COLORS[verdict.kind]}; font-size: 13pt; font-weight: 600;")

    def _show_heatmap(self) -> None:
        cols = self._columns
        image = cols.image()
        if self._frames == 1 or self._frames % LEVEL_EVERY == 0:
            self._update_levels(image)
        self.heatmap.setImage(image, autoLevels=False, levels=self._levels)
        self.heatmap.setVisible(True)
        x0, x1 = cols.x_span()
        self.heatmap.setRect(QRectF(x0, -0.5, x1 - x0, cols.n_rows))
        # the image fills the plot: the axis grows with training until the columns are full,
        # then scrolls
        right = max(x1, x0 + 10 * cols.stride)
        self.heatmap_plot.getPlotItem().setXRange(x0, right, padding=0)

    def _update_levels(self, image: np.ndarray) -> None:
        finite = image[np.isfinite(image)]
        if finite.size == 0:
            return
        # whole half-decades, so that the colours do not flicker with every update
        lo = np.floor(2 * np.percentile(finite, 2)) / 2
        hi = max(np.ceil(2 * np.percentile(finite, 98)) / 2, lo + 1) + 0.0
        if (lo, hi) != self._levels:
            self._levels = (float(lo), float(hi))
            self.colorbar.setLevels(self._levels)


def _floor(logs: np.ndarray, default: float) -> float:
    """A whole decade below the smallest finite value: where bars start."""
    finite = logs[np.isfinite(logs)]
    return float(np.floor(finite.min()) - 1) if finite.size else default


def _fit_y(plot: pg.PlotItem, floor: float, logs: np.ndarray) -> None:
    finite = logs[np.isfinite(logs)]
    top = float(np.ceil(finite.max() + 0.25)) if finite.size else floor + 1
    lo, hi = plot.getViewBox().viewRange()[1]
    if abs(lo - floor) > 1e-9 or abs(hi - max(top, floor + 1)) > 0.5:
        plot.setYRange(floor, max(top, floor + 1), padding=0)


def _thinned(labels: list[str], most: int = 12) -> list[tuple[int, str]]:
    """(index, label) ticks, at most about `most` of them: every k-th layer, always the
    first and the last (the output), so deep networks keep readable axes."""
    n = len(labels)
    step = max(1, -(-n // most))
    picks = sorted({*range(0, n, step), n - 1})
    if len(picks) > 1 and picks[-1] - picks[-2] < step / 2:
        picks.pop(-2)  # the last regular tick would crowd the output's label
    return [(i, labels[i]) for i in picks]


def _short_names(names: tuple[str, ...]) -> list[str]:
    """'h3' for 'hidden 3' and 'out' for 'output' when there are many layers."""
    if len(names) <= 6:
        return list(names)
    return [n.replace("hidden ", "h").replace("output", "out") for n in names]
