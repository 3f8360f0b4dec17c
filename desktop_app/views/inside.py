"""Inside the network: per-layer histograms of activations, weights and gradients, and
saturated / dead-unit shares over all layers (everything read from the layer probe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QResizeEvent
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QBoxLayout, QLabel, QListWidget, QVBoxLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo
from engine.activations import ACTIVATIONS

# (probe field, plot name for files, title, x-axis label)
HISTOGRAMS = (
    ("activations", "activations", "Activations", "a = f(z)"),
    ("pre_activations", "pre_activations", "Pre-activations", "z = W·x + b"),
    ("weights", "weights", "Weights", "W"),
    ("gradients", "gradients", "Weight gradients", "∂loss/∂W"),
)
SATURATED_COLOR = theme.ACCENT
DEAD_COLOR = "#555555"
EXPORT_WIDTH = 1200  # pixels of an exported PNG (slides)
WIDE_LAYOUT = 720  # from this width on, the layer list sits beside the histograms
OVERVIEW_WIDTH = 240  # list and summary column, wide layout
LIST_WIDTH = 190  # the layer list beside the summary, narrow layout
QWIDGETSIZE_MAX = (1 << 24) - 1


def plot_font(delta: int = 0) -> QFont:
    font = QFont()
    font.setPointSize(theme.FONT_POINT_SIZE + delta)
    return font


class Axis(pg.AxisItem):
    """An axis whose label stays centred when the SI prefix ("(x0.001)") changes its width
    (pyqtgraph re-centres the label only on resize)."""

    def updateAutoSIPrefix(self):
        super().updateAutoSIPrefix()
        self.resizeEvent()


def add_plot(layout: pg.GraphicsLayout, **kwargs) -> pg.PlotItem:
    """A plot in `layout` with re-centring axes."""
    axes = {side: Axis(side) for side in ("left", "bottom")}
    return layout.addPlot(axisItems=axes, **kwargs)


def style_plot(plot: pg.PlotItem, x_label: str, y_label: str) -> None:
    """Projector-readable axes: larger tick and label fonts."""
    for side, label in (("bottom", x_label), ("left", y_label)):
        axis = plot.getAxis(side)
        axis.setTickFont(plot_font(1))
        if label:
            axis.setLabel(label, **{"font-size": f"{theme.FONT_POINT_SIZE + 2}pt"})
    plot.showGrid(x=False, y=True, alpha=0.25)
    plot.setMenuEnabled(False)
    plot.hideButtons()


def set_title(plot: pg.PlotItem, text: str, delta: int = 2) -> None:
    label = plot.titleLabel
    if not getattr(label, "shrinks", False):
        # A long title must not widen the plot past its column (the layout would overflow
        # and clip the next plot). LabelItem re-imposes the text's width as its minimum on
        # every resize, so drop it there, after pyqtgraph's own update.
        def update_min(label=label):
            pg.LabelItem.updateMin(label)
            label.setMinimumWidth(0)

        label.updateMin = update_min
        label.shrinks = True
    plot.setTitle(text, size=f"{theme.FONT_POINT_SIZE + delta}pt", color=theme.FOREGROUND)


def export_plot(item, folder: Path, name: str) -> list[Path]:
    """`item` as `name`.png (at least EXPORT_WIDTH pixels wide) and `name`.svg."""
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    exporter = ImageExporter(item)
    if item.sceneBoundingRect().width() >= 1:
        width = max(EXPORT_WIDTH, int(exporter.parameters()["width"]))
        exporter.parameters()["width"] = width
    exporter.export(str(png))
    try:
        SVGExporter(item).export(str(svg))
    except ValueError:
        # pyqtgraph <= 0.14.0 cannot parse the closed paths ("... Z") that Qt 6 writes
        # (pyqtgraph issue #3495): let Qt write the SVG itself.
        render_svg(item, svg)
    return [png, svg]


def render_svg(item, path: Path) -> None:
    """`item`'s part of its scene drawn by Qt's SVG generator (vector, text as text)."""
    source = item.sceneBoundingRect()
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(QSize(int(source.width()), int(source.height())))
    generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
    generator.setTitle(path.stem)
    target = QRectF(0, 0, source.width(), source.height())
    painter = QPainter(generator)
    # Export mode makes scatter plots draw vector symbols instead of pixmap-atlas stamps
    # (each stamp would embed the whole atlas in the SVG).
    modes = SVGExporter(item)
    try:
        modes.setExportMode(True, {"painter": painter, "antialias": True,
                                   "background": QColor("white"), "resolutionScale": 1.0})
        painter.fillRect(target, QColor("white"))
        item.scene().render(painter, target, source)
    finally:
        modes.setExportMode(False)
        painter.end()


class InsideView(QWidget):
    """A layer list, four histograms of the selected layer, and per-layer bars of the
    saturated and dead-unit shares. `show_frame` redraws only when a new probe arrives."""

    layer_selected = Signal(int)  # the user (or select_layer) picked layer i

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._info: RunInfo | None = None
        self._probe = None

        self.layer_list = QListWidget()
        self.layer_list.setFont(plot_font(2))
        self.layer_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.layer_list.currentRowChanged.connect(self._on_row_changed)
        layers_title = QLabel("Layers (input side first)")
        layers_title.setFont(plot_font(1))

        self.summary_widget = pg.GraphicsLayoutWidget()
        self.summary_widget.setMinimumHeight(130)
        self.summary_plot = add_plot(self.summary_widget.ci)
        style_plot(self.summary_plot, "layer (input → output)", "share of units")
        set_title(self.summary_plot,
                  f"<span style='color:{SATURATED_COLOR}'>■ saturated</span>&nbsp;&nbsp;"
                  f"<span style='color:{DEAD_COLOR}'>■ dead</span>", delta=1)
        self.summary_plot.setYRange(-0.04, 1.08, padding=0)
        self.summary_plot.setMouseEnabled(x=False, y=False)
        self.summary_plot.getAxis("left").setTicks(
            [[(v, f"{v:.0%}") for v in (0.0, 0.5, 1.0)], [(0.25, ""), (0.75, "")]])
        self.selected_bar = pg.BarGraphItem(x=[0], height=[0], width=0.9,
                                            brush=pg.mkBrush(0, 0, 0, 30), pen=pg.mkPen(None))
        self.saturated_bars = pg.BarGraphItem(x=[0], height=[0], width=0.4,
                                              brush=SATURATED_COLOR, pen=pg.mkPen(None))
        self.dead_bars = pg.BarGraphItem(x=[0], height=[0], width=0.4,
                                         brush=DEAD_COLOR, pen=pg.mkPen(None))
        for item in (self.selected_bar, self.saturated_bars, self.dead_bars):
            self.summary_plot.addItem(item)
        self.summary_plot.scene().sigMouseClicked.connect(self._on_summary_clicked)

        # Wide: [list over summary | histograms]. Narrow (the window's right column):
        # [list beside summary] over the histograms. See _arrange.
        self.list_panel = QWidget()
        list_layout = QVBoxLayout(self.list_panel)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addWidget(layers_title)
        list_layout.addWidget(self.layer_list, 1)
        self.overview = QWidget()
        self.overview_layout = QBoxLayout(QBoxLayout.Direction.TopToBottom, self.overview)
        self.overview_layout.setContentsMargins(0, 0, 0, 0)
        self.overview_layout.addWidget(self.list_panel, 2)
        self.overview_layout.addWidget(self.summary_widget, 3)

        self.status = QLabel()
        self.status.setFont(plot_font(2))
        self.status.setWordWrap(True)
        self.histogram_widget = pg.GraphicsLayoutWidget()
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.empty_texts: dict[str, pg.TextItem] = {}
        for k in range(2):
            self.histogram_widget.ci.layout.setColumnStretchFactor(k, 1)
            self.histogram_widget.ci.layout.setRowStretchFactor(k, 1)
        for k, (field, _name, _title, x_label) in enumerate(HISTOGRAMS):
            plot = add_plot(self.histogram_widget.ci, row=k // 2, col=k % 2)
            style_plot(plot, x_label, "")
            curve = pg.PlotDataItem(stepMode="center", fillLevel=0,
                                    pen=theme.pen(theme.TRAIN, 1.5),
                                    brush=pg.mkBrush(theme.TRAIN + "66"))
            plot.addItem(curve)
            empty = pg.TextItem("no data yet", color=theme.MUTED, anchor=(0.5, 0.5))
            empty.setFont(plot_font(3))
            empty.setPos(0.5, 0.5)
            plot.addItem(empty, ignoreBounds=True)
            self.plots[field], self.curves[field] = plot, curve
            self.empty_texts[field] = empty

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.status)
        detail_layout.addWidget(self.histogram_widget, 1)

        self.main_layout = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self.main_layout.setContentsMargins(4, 4, 4, 4)
        self.main_layout.addWidget(self.overview, 0)
        self.main_layout.addWidget(detail, 1)
        self._wide: bool | None = None
        self._arrange()
        self._draw_empty()

    # -- public ------------------------------------------------------------------------
    def set_run(self, info: RunInfo) -> None:
        """A new (or reset) run: list its layers, forget the old probe."""
        previous = max(self.layer_list.currentRow(), 0)
        self._info = info
        self._probe = None
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for name, act in zip(info.layer_names, info.layer_activations, strict=True):
            self.layer_list.addItem(f"{name} ({act})")
        self.layer_list.setCurrentRow(min(previous, info.n_layers - 1))
        self.layer_list.blockSignals(False)
        every = -(-info.n_layers // 8)  # at most ~8 labels fit under the bars
        ticks = [(i, str(i + 1)) for i in range(info.n_layers)]
        self.summary_plot.getAxis("bottom").setTicks([ticks[::every], ticks])
        self.summary_plot.setXRange(-0.7, info.n_layers - 0.3, padding=0)
        self._draw_empty()

    def show_frame(self, frame: Frame) -> None:
        probe = frame.snapshot.probe
        # A probe object is made once per evaluation (every run.eval_every steps) and then
        # repeated in every frame: redraw only when a new one arrives.
        if probe is None or probe is self._probe or self._info is None:
            return
        if len(probe.layers) != self._info.n_layers:
            return  # a frame of the previous run, still in flight after a reset
        self._probe = probe
        self._draw_summary()
        self._draw_layer()

    def select_layer(self, index: int) -> None:
        """Show layer `index` (0 = the first hidden layer)."""
        if 0 <= index < self.layer_list.count():
            self.layer_list.setCurrentRow(index)

    def selected_layer(self) -> int:
        return self.layer_list.currentRow()

    def export_figures(self, folder: Path, prefix: str) -> list[Path]:
        """Each plot as `{prefix}_{plot}.png` and `.svg` in `folder`."""
        folder = Path(folder)
        written = []
        for field, name, _title, _x in HISTOGRAMS:
            written += export_plot(self.plots[field], folder, f"{prefix}_{name}")
        written += export_plot(self.summary_plot, folder, f"{prefix}_saturation")
        return written

    # -- layout ------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange()

    def _arrange(self) -> None:
        """Side by side when there is room, else the overview on top (at most ~35% of the
        height) so the histograms keep the full width."""
        wide = self.width() >= WIDE_LAYOUT
        if wide == self._wide:
            if not wide:
                self.overview.setMaximumHeight(max(130, int(0.35 * self.height())))
            return
        self._wide = wide
        if wide:
            self.main_layout.setDirection(QBoxLayout.Direction.LeftToRight)
            self.overview_layout.setDirection(QBoxLayout.Direction.TopToBottom)
            self.overview.setFixedWidth(OVERVIEW_WIDTH)
            self.overview.setMaximumHeight(QWIDGETSIZE_MAX)
            self.list_panel.setMaximumWidth(QWIDGETSIZE_MAX)
        else:
            self.main_layout.setDirection(QBoxLayout.Direction.TopToBottom)
            self.overview_layout.setDirection(QBoxLayout.Direction.LeftToRight)
            self.overview.setMinimumWidth(0)
            self.overview.setMaximumWidth(QWIDGETSIZE_MAX)
            self.overview.setMaximumHeight(max(130, int(0.35 * self.height())))
            self.list_panel.setMaximumWidth(LIST_WIDTH)

    # -- drawing -----------------------------------------------------------------------
    def _on_row_changed(self, row: int) -> None:
        if row < 0:
            return
        self._draw_layer()
        self.layer_selected.emit(row)

    def _on_summary_clicked(self, event) -> None:
        if self._info is None:
            return
        view = self.summary_plot.vb
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        x = view.mapSceneToView(event.scenePos()).x()
        self.select_layer(int(round(x)))

    def _draw_empty(self) -> None:
        every = self._info.config.run.eval_every if self._info else None
        when = f" — layer probes are computed every {every} steps" if every else ""
        self.status.setText(f"No data yet{when}.")
        for field, _name, title, _x in HISTOGRAMS:
            self.curves[field].clear()
            self.plots[field].setRange(xRange=(0, 1), yRange=(0, 1))
            self.plots[field].enableAutoRange()
            self.empty_texts[field].show()
            set_title(self.plots[field], title)
        n = self._info.n_layers if self._info else 0
        zeros = np.zeros(n)
        self.saturated_bars.setOpts(x=np.arange(n) - 0.2, height=zeros)
        self.dead_bars.setOpts(x=np.arange(n) + 0.2, height=zeros)
        self._draw_selected_bar()

    def _draw_selected_bar(self) -> None:
        row = self.layer_list.currentRow()
        self.selected_bar.setOpts(x=[max(row, 0)], height=[1.0 if row >= 0 else 0.0])

    def _draw_summary(self) -> None:
        n = len(self._probe.layers)
        self.saturated_bars.setOpts(x=np.arange(n) - 0.2, height=self._probe.saturated)
        self.dead_bars.setOpts(x=np.arange(n) + 0.2, height=self._probe.dead)

    def _draw_layer(self) -> None:
        self._draw_selected_bar()
        row = self.layer_list.currentRow()
        probe = self._probe
        if probe is None or not 0 <= row < len(probe.layers):
            return
        layer = probe.layers[row]
        for field, _name, title, _x in HISTOGRAMS:
            hist = getattr(layer, field)
            self.curves[field].setData(hist.edges, hist.counts)
            self.empty_texts[field].hide()
            set_title(self.plots[field], title)
        set_title(self.plots["activations"], self.activation_title(row))
        shape = self._info.layer_shapes[row] if self._info else None
        units = f", {shape[0]} → {shape[1]} units" if shape else ""
        self.status.setText(
            f"<b>{layer.name} ({layer.activation})</b>{units} · step {probe.step} · "
            f"a = {layer.act_mean:.3g} ± {layer.act_std:.3g} · "
            f"z = {layer.pre_mean:.3g} ± {layer.pre_std:.3g}")
        self.status.setToolTip(
            f"Probe at step {probe.step} on {probe.rows} training samples: activations a "
            f"(mean ± std) and pre-activations z of layer '{layer.name}'.")

    def activation_title(self, row: int) -> str:
        """'Activations — 63% saturated' / '— 40% dead units' for the probe's layer `row`."""
        layer = self._probe.layers[row]
        spec = ACTIVATIONS.get(layer.activation)
        is_output = row == len(self._probe.layers) - 1
        parts = []
        if spec is not None and spec.saturation:
            parts.append(f"{layer.saturated:.0%} saturated")
        if spec is not None and spec.relu_like and not is_output:
            parts.append(f"{layer.dead:.0%} dead units")
        return " — ".join(["Activations", *parts])
