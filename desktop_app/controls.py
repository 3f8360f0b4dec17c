"""The controls dock: every setting of an experiment, grouped, filled from the registries.

Each control edits one dotted field of the configuration. A change is validated by the
engine's configuration (the error, naming the field, goes to `invalid`); a valid change
emits `config_changed` with the new configuration. Slider drags are throttled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import engine
from engine.config import ConfigError, ExperimentConfig

LR_MIN, LR_MAX = 1e-5, 10.0  # the log slider's range (typed values may go beyond)
SLIDER_STEPS = 600
THROTTLE_MS = 120  # a slider drag sends at most ~8 changes a second


@dataclass
class Field:
    key: str  # dotted field of ExperimentConfig
    label: str
    kind: str  # "choice", "int", "float", "logfloat", "bool"
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    lo: float = 0.0
    hi: float = 1.0
    tip: str = ""


def _choices(registry: dict, attr: str = "label") -> list[tuple[str, str]]:
    return [(name, getattr(entry, attr, name) or name) for name, entry in registry.items()]


def _descriptions(registry: dict) -> dict[str, str]:
    return {name: getattr(entry, "description", "") for name, entry in registry.items()}


GROUPS: list[tuple[str, list[Field]]] = [
    ("Data", [
        Field("data.dataset", "Dataset", "choice",
              [(n, n.capitalize()) for n in engine.DATASETS]),
        Field("data.noise", "Noise", "float", lo=0.0, hi=2.0),
        Field("data.n_samples", "Points", "int", lo=20, hi=20000),
        Field("data.n_classes", "Classes (spiral)", "int", lo=2, hi=10),
        Field("data.validation_fraction", "Validation share", "float", lo=0.0, hi=0.8),
        Field("data.standardize", "Standardize features", "bool"),
        Field("data.scale_factor", "Scale feature 1 by", "logfloat", lo=1e-2, hi=1e3,
              tip="The lecture's badly scaled features: one input much larger than the other."),
    ]),
    ("Network", [
        Field("network.hidden_layers", "Hidden layers", "int", lo=1, hi=100),
        Field("network.width", "Width", "int", lo=1, hi=512),
        Field("network.activation", "Activation", "choice", _choices(engine.ACTIVATIONS)),
        Field("network.loss", "Loss", "choice", _choices(engine.LOSSES)),
        Field("network.batch_norm", "Batch normalization", "bool"),
        Field("network.residual", "Residual connections", "bool"),
    ]),
    ("Initialization", [
        Field("init.weights", "Weights", "choice", _choices(engine.INITIALIZERS)),
        Field("init.biases", "Biases", "choice",
              [c for c in _choices(engine.INITIALIZERS) if c[0] not in ("orthogonal", "lsuv")]),
        Field("init.gain", "Gain", "float", lo=0.0, hi=10.0),
        Field("init.weight_scale", "Weight ε / σ / value", "float", lo=0.0, hi=10.0),
        Field("init.bias_scale", "Bias value / ε / σ", "float", lo=-10.0, hi=10.0),
    ]),
    ("Optimizer", [
        Field("optimizer.name", "Optimizer", "choice", _choices(engine.OPTIMIZERS)),
        Field("optimizer.learning_rate", "Learning rate", "logfloat", lo=LR_MIN, hi=LR_MAX),
        Field("optimizer.momentum", "Momentum μ", "float", lo=0.0, hi=0.999),
        Field("optimizer.beta1", "β₁", "float", lo=0.0, hi=0.999),
        Field("optimizer.beta2", "β₂", "float", lo=0.0, hi=0.9999),
        Field("optimizer.rho", "ρ", "float", lo=0.0, hi=0.999),
        Field("optimizer.epsilon", "ε", "logfloat", lo=1e-12, hi=1e-1),
        Field("optimizer.weight_decay", "Weight decay λ", "float", lo=0.0, hi=1.0),
        Field("schedule.name", "Schedule", "choice", _choices(engine.SCHEDULES)),
        Field("schedule.warmup_steps", "Warm-up steps", "int", lo=0, hi=100000),
        Field("schedule.step_size", "Step size", "int", lo=1, hi=100000),
        Field("schedule.gamma", "γ", "float", lo=0.01, hi=1.0),
        Field("schedule.decay_rate", "Decay rate", "float", lo=0.01, hi=1.0),
        Field("schedule.decay_steps", "Decay steps", "int", lo=1, hi=100000),
        Field("schedule.total_steps", "Total steps", "int", lo=1, hi=1000000),
        Field("schedule.min_lr", "Minimum rate", "logfloat", lo=1e-7, hi=1.0),
        Field("schedule.cycle_steps", "Half cycle", "int", lo=1, hi=100000),
        Field("schedule.max_lr", "Peak rate", "logfloat", lo=1e-6, hi=10.0),
    ]),
    ("Regularization and clipping", [
        Field("regularization.l2", "L2 λ", "float", lo=0.0, hi=1.0),
        Field("clip.kind", "Clipping", "choice", _choices(engine.CLIP_KINDS)),
        Field("clip.threshold", "Threshold τ", "logfloat", lo=1e-3, hi=1e3),
    ]),
    ("Run", [
        Field("run.seed", "Seed", "int", lo=0, hi=2**31 - 1),
        Field("run.batch_size", "Batch size", "int", lo=1, hi=4096),
        Field("run.steps", "Planned steps", "int", lo=1, hi=10**7),
        Field("run.eval_every", "Evaluate every", "int", lo=1, hi=100000),
    ]),
]

# Which optimizer / schedule fields matter for which choice (the rest are hidden).
SCHEDULE_FIELDS = {
    "constant": (), "step": ("step_size", "gamma"), "exponential": ("decay_rate", "decay_steps"),
    "cosine": ("total_steps", "min_lr"), "cyclic": ("cycle_steps", "max_lr"),
    "one_cycle": ("total_steps", "max_lr"),
}


def get_dotted(config: ExperimentConfig, key: str) -> Any:
    obj: Any = config
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


class LogSlider(QWidget):
    """A log-scale slider with a typed value beside it (scientific notation allowed)."""

    value_changed = Signal(float)

    def __init__(self, lo: float, hi: float, parent=None):
        super().__init__(parent)
        self.lo, self.hi = lo, hi
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.edit = QLineEdit()
        self.edit.setValidator(QDoubleValidator(0.0, 1e12, 12))
        self.edit.setMaximumWidth(90)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.edit)
        self._value = lo
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(THROTTLE_MS)
        self._throttle.timeout.connect(lambda: self.value_changed.emit(self._value))
        self.slider.valueChanged.connect(self._slider_moved)
        self.slider.sliderReleased.connect(self._flush)
        self.edit.editingFinished.connect(self._typed)

    def _to_pos(self, v: float) -> int:
        v = min(max(v, self.lo), self.hi)
        frac = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return round(frac * SLIDER_STEPS)

    def _from_pos(self, pos: int) -> float:
        exp = math.log10(self.lo) + pos / SLIDER_STEPS * (math.log10(self.hi) - math.log10(self.lo))
        return float(f"{10 ** exp:.3g}")

    def _slider_moved(self, pos: int) -> None:
        self._value = self._from_pos(pos)
        self.edit.setText(f"{self._value:g}")
        if not self._throttle.isActive():
            self._throttle.start()

    def _flush(self) -> None:
        self._throttle.stop()
        self.value_changed.emit(self._value)

    def _typed(self) -> None:
        try:
            v = float(self.edit.text())
        except ValueError:
            return
        if v != self._value:
            self._value = v
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_pos(v) if v > 0 else 0)
            self.slider.blockSignals(False)
            self.value_changed.emit(v)

    def value(self) -> float:
        return self._value

    def set_value(self, v: float) -> None:
        self._value = float(v)
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_pos(v) if v > 0 else 0)
        self.slider.blockSignals(False)
        self.edit.setText(f"{v:g}")


class ControlsPanel(QScrollArea):
    """All settings; `config_changed(config)` on every valid change, `invalid(message)`."""

    config_changed = Signal(object)
    invalid = Signal(str)
    open_csv_requested = Signal()

    def __init__(self, config: ExperimentConfig, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._config = config
        self._widgets: dict[str, QWidget] = {}
        self._rows: dict[str, tuple[QLabel, QWidget]] = {}
        body = QWidget()
        column = QVBoxLayout(body)
        for title, fields in GROUPS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for f in fields:
                w = self._make(f)
                label = QLabel(f.label)
                if f.tip:
                    w.setToolTip(f.tip)
                    label.setToolTip(f.tip)
                form.addRow(label, w)
                self._widgets[f.key] = w
                self._rows[f.key] = (label, w)
            if title == "Data":
                self.csv_button = QPushButton("Open CSV…")
                self.csv_button.clicked.connect(self.open_csv_requested)
                form.addRow(self.csv_button)
            if title == "Initialization":
                self.formula = QLabel()
                self.formula.setWordWrap(True)
                self.formula.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                form.addRow(self.formula)
            if title == "Optimizer":
                self.opt_formula = QLabel()
                self.opt_formula.setWordWrap(True)
                form.addRow(self.opt_formula)
            column.addWidget(box)
        column.addStretch(1)
        self.setWidget(body)
        self.setMinimumWidth(330)
        self.set_config(config)

    # -- widgets -------------------------------------------------------------------------
    def _make(self, f: Field) -> QWidget:
        if f.kind == "choice":
            w = QComboBox()
            descriptions = {}
            for registry in (engine.DATASETS, engine.ACTIVATIONS, engine.LOSSES,
                             engine.INITIALIZERS, engine.OPTIMIZERS, engine.SCHEDULES,
                             engine.CLIP_KINDS):
                descriptions.update(_descriptions(registry))
            for i, (value, label) in enumerate(f.choices):
                w.addItem(label, value)
                w.setItemData(i, descriptions.get(value, ""), Qt.ItemDataRole.ToolTipRole)
            if f.key == "data.dataset":
                w.addItem("CSV file", "csv")
            w.currentIndexChanged.connect(
                lambda _i, f=f, w=w: self._edited(f.key, w.currentData())
            )
            return w
        if f.kind == "bool":
            w = QCheckBox()
            w.toggled.connect(lambda v, f=f: self._edited(f.key, bool(v)))
            return w
        if f.kind == "int":
            w = QSpinBox()
            w.setRange(int(f.lo), int(f.hi))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda v, f=f: self._edited(f.key, int(v)))
            return w
        if f.kind == "logfloat":
            w = LogSlider(f.lo, f.hi)
            w.value_changed.connect(lambda v, f=f: self._edited(f.key, float(v)))
            return w
        w = QLineEdit()
        w.setValidator(QDoubleValidator(f.lo, f.hi, 8))
        w.editingFinished.connect(lambda f=f, w=w: self._typed_float(f.key, w))
        return w

    def _typed_float(self, key: str, w: QLineEdit) -> None:
        try:
            v = float(w.text())
        except ValueError:
            self.invalid.emit(f"{key} must be a number, got {w.text()!r}")
            return
        if v != get_dotted(self._config, key):
            self._edited(key, v)

    def _edited(self, key: str, value: Any) -> None:
        if self._loading or get_dotted(self._config, key) == value:
            return
        changes = {key: value}
        if key == "network.hidden_layers":
            changes["network.activations"] = []
            if self._config.optimizer.layer_lr_multipliers:
                changes["optimizer.layer_lr_multipliers"] = []
        if key == "data.dataset" and value != "csv":
            task = engine.DATASETS[value].task
            if task == "regression":
                changes["network.loss"] = "mse"
            elif self._config.network.loss == "mse" and self._config.data.dataset != "csv" and \
                    engine.DATASETS[self._config.data.dataset].task == "regression":
                changes["network.loss"] = "softmax_ce"
        try:
            config = self._config.replace(**changes)
        except ConfigError as exc:
            self.invalid.emit(str(exc))
            self.set_config(self._config)  # put the control back
            return
        self._config = config
        self.set_config(config)
        self.config_changed.emit(config)

    # -- state ---------------------------------------------------------------------------
    _loading = False

    def config(self) -> ExperimentConfig:
        return self._config

    def set_config(self, config: ExperimentConfig) -> None:
        """Show `config` in the controls without emitting changes."""
        self._loading = True
        try:
            self._config = config
            for key, w in self._widgets.items():
                value = get_dotted(config, key)
                if isinstance(w, QComboBox):
                    i = w.findData(value)
                    w.setCurrentIndex(max(i, 0))
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                elif isinstance(w, QSpinBox):
                    w.setValue(int(value) if value is not None else 0)
                elif isinstance(w, LogSlider):
                    w.set_value(float(value))
                elif isinstance(w, QLineEdit):
                    w.setText(f"{value:g}")
            self._update_visibility()
        finally:
            self._loading = False

    def _show_row(self, key: str, visible: bool) -> None:
        label, w = self._rows[key]
        label.setVisible(visible)
        w.setVisible(visible)

    def _update_visibility(self) -> None:
        c = self._config
        spec = engine.OPTIMIZERS[c.optimizer.name]
        for name in ("momentum", "beta1", "beta2", "rho", "epsilon", "weight_decay"):
            self._show_row(f"optimizer.{name}", name in spec.hyper)
        wanted = SCHEDULE_FIELDS.get(c.schedule.name, ())
        for name in ("step_size", "gamma", "decay_rate", "decay_steps", "total_steps",
                     "min_lr", "cycle_steps", "max_lr"):
            self._show_row(f"schedule.{name}", name in wanted)
        self._show_row("data.n_classes", c.data.dataset == "spiral")
        wscheme = engine.INITIALIZERS[c.init.weights]
        bscheme = engine.INITIALIZERS[c.init.biases]
        self._show_row("init.weight_scale", wscheme.uses_scale)
        self._show_row("init.bias_scale", bscheme.uses_scale)
        self._show_row("clip.threshold", c.clip.kind != "none")
        self.formula.setText(
            f"<b>{wscheme.label}</b>: {wscheme.formula}<br>"
            f"<small>{wscheme.description}</small>"
        )
        sched = engine.SCHEDULES[c.schedule.name]
        self.opt_formula.setText(f"<b>{spec.label}</b>: {spec.formula}<br>"
                                 f"<b>{sched.label}</b>: {sched.formula}")
