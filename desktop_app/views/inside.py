"""Inside the network: per-layer histograms of activations, weights and gradients, and
saturated / dead-unit shares over all layers (everything read from the layer probe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QVBoxLayout, QWidget

from desktop_app import theme
from desktop_app.messages import Frame, RunInfo
from engine.activations import ACTIVATIONS

# (probe field, plot name for files, title, x-axis label)
HISTOGRAMS = (
    ("activations", "activations", "Activations", "activation a = f(z)"),
    ("pre_activations", "pre_activations", "Pre-activations", "z = W·x + b"),
    ("weights", "weights", "Weights", "weight value"),
    ("gradients", "gradients", "Weight gradients", "∂loss/∂W"),
)
SATURATED_COLOR = theme.ACCENT
DEAD_COLOR = "#555555"
EXPORT_WIDTH = 1200  # pixels of an exported PNG (slides)


def plot_font(delta: int = 0) -> QFont:
    font = QFont()
    font.setPointSize(theme.FONT_POINT_SIZE + delta)
    return font


def style_plot(plot: pg.PlotItem, x_label: str, y_label: str) -> None:
    """Projector-readable axes: larger tick and label fonts."""
    for side, label in (("bottom", x_label), ("left", y_label)):
        axis = plot.getAxis(side)
        axis.setTickFont(plot_font(1))
        axis.setLabel(label, **{"font-size": f"{theme.FONT_POINT_SIZE + 2}pt"})
    plot.showGrid(x=False, y=True, alpha=0.25)
    plot.setMenuEnabled(False)
    plot.hideButtons()


def set_title(plot: pg.PlotItem, text: str) -> None:
    plot.setTitle(text, size=f"{theme.FONT_POINT_SIZE + 3}pt", color=theme.FOREGROUND)


def export_plot(item, folder: Path, name: str) -> list[Path]:
    """`item` as `name`.png (at least EXPORT_WIDTH pixels wide) and `name`.svg."""
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    exporter = ImageExporter(item)
    if item.sceneBoundingRect().width() >= 1:
        width = max(EXPORT_WIDTH, int(exporter.parameters()["width"]))
        exporter.parameters()["width"] = width
    exporter.export(str(png))
    SVGExporter(item).export(str(svg))
    return [png, svg]


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
        self.layer_list.currentRowChanged.connect(self._on_row_changed)
        layers_title = QLabel("Layers (input side first)")
        layers_title.setFont(plot_font(1))

        self.summary_widget = pg.GraphicsLayoutWidget()
        self.summary_widget.setMinimumHeight(200)
        self.summary_plot = self.summary_widget.addPlot()
        style_plot(self.summary_plot, "layer", "share of units")
        set_title(self.summary_plot, "Saturated / dead")
        self.summary_plot.setYRange(0.0, 1.0, padding=0.02)
        self.summary_plot.setMouseEnabled(x=False, y=False)
        self.summary_plot.getAxis("left").setTicks(
            [[(v, f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]])
        self.selected_bar = pg.BarGraphItem(x=[0], height=[0], width=0.9,
                                            brush=pg.mkBrush(0, 0, 0, 30), pen=pg.mkPen(None))
        self.saturated_bars = pg.BarGraphItem(x=[0], height=[0], width=0.4,
                                              brush=SATURATED_COLOR, pen=pg.mkPen(None))
        self.dead_bars = pg.BarGraphItem(x=[0], height=[0], width=0.4,
                                         brush=DEAD_COLOR, pen=pg.mkPen(None))
        legend = self.summary_plot.addLegend(offset=(5, 5), labelTextSize="10pt")
        for item in (self.selected_bar, self.saturated_bars, self.dead_bars):
            self.summary_plot.addItem(item)
        legend.addItem(self.saturated_bars, "saturated")
        legend.addItem(self.dead_bars, "dead units")
        self.summary_plot.scene().sigMouseClicked.connect(self._on_summary_clicked)

        left_panel = QWidget()
        left_panel.setFixedWidth(260)
        left = QVBoxLayout(left_panel)
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(layers_title)
        left.addWidget(self.layer_list, 3)
        left.addWidget(self.summary_widget, 2)

        self.status = QLabel()
        self.status.setFont(plot_font(2))
        self.status.setWordWrap(True)
        self.histogram_widget = pg.GraphicsLayoutWidget()
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        for k, (field, _name, _title, x_label) in enumerate(HISTOGRAMS):
            plot = self.histogram_widget.addPlot(row=k // 2, col=k % 2)
            style_plot(plot, x_label, "count")
            curve = pg.PlotDataItem(stepMode="center", fillLevel=0,
                                    pen=theme.pen(theme.TRAIN, 1.5),
                                    brush=pg.mkBrush(theme.TRAIN + "66"))
            plot.addItem(curve)
            self.plots[field], self.curves[field] = plot, curve

        right = QVBoxLayout()
        right.addWidget(self.status)
        right.addWidget(self.histogram_widget, 1)

        layout = QHBoxLayout(self)
        layout.addWidget(left_panel, 0)
        layout.addLayout(right, 1)
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
        ticks = [(i, self._short_name(i)) for i in range(info.n_layers)]
        self.summary_plot.getAxis("bottom").setTicks([ticks])
        self.summary_plot.setXRange(-0.6, info.n_layers - 0.4, padding=0)
        self._draw_empty()

    def show_frame(self, frame: Frame) -> None:
        probe = frame.snapshot.probe
        # A probe object is made once per evaluation (every run.eval_every steps) and then
        # repeated in every frame: redraw only when a new one arrives.
        if probe is None or probe is self._probe or self._info is None:
            return
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

    # -- drawing -----------------------------------------------------------------------
    def _short_name(self, i: int) -> str:
        name = self._info.layer_names[i] if self._info else str(i)
        return "out" if name == "output" else name.replace("hidden ", "")

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
            set_title(self.plots[field], f"{title} — no data yet")
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
            set_title(self.plots[field], title)
        set_title(self.plots["activations"], self.activation_title(row))
        shape = self._info.layer_shapes[row] if self._info else None
        units = f", {shape[0]} → {shape[1]} units" if shape else ""
        self.status.setText(
            f"<b>{layer.name} ({layer.activation})</b>{units} · probe at step {probe.step} "
            f"on {probe.rows} samples · activations {layer.act_mean:.3g} ± "
            f"{layer.act_std:.3g} · pre-activations {layer.pre_mean:.3g} ± {layer.pre_std:.3g}")

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
