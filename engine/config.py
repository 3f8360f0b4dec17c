"""Experiment configuration: frozen dataclasses, validated once, TOML on disk.

A run is described completely by one `ExperimentConfig`; the same configuration and seed
give the same run, bit for bit. Errors name the field and quote the bad value.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the field and the value."""


def _fail(path: str, message: str) -> None:
    raise ConfigError(f"{path} {message}")


def _check_range(
    path: str,
    value: float,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> None:
    if value != value:  # NaN
        _fail(path, f"must be a number, got {value!r}")
    if gt is not None and not value > gt:
        _fail(path, f"must be > {gt:g}, got {value!r}")
    if ge is not None and not value >= ge:
        _fail(path, f"must be >= {ge:g}, got {value!r}")
    if lt is not None and not value < lt:
        _fail(path, f"must be < {lt:g}, got {value!r}")
    if le is not None and not value <= le:
        _fail(path, f"must be <= {le:g}, got {value!r}")


def _check_choice(path: str, value: str, choices: typing.Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        hint = difflib.get_close_matches(value, choices, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        _fail(path, f"must be one of {', '.join(choices)}; got {value!r}{extra}")


# Registries live in their modules; the names are imported lazily so that this module
# stays importable on its own (and cheap: no numba).
def _names(registry: str) -> list[str]:
    from engine import registries

    return list(getattr(registries, registry)())


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "spiral"  # a key of DATASETS, or "csv"
    n_samples: int = 600  # points generated (before the train/validation split)
    noise: float = 0.1  # dataset-specific noise level (std of added Gaussian noise)
    n_classes: int = 3  # spiral arms; other classification sets have 2 classes
    validation_fraction: float = 0.2  # share of points held out for validation
    standardize: bool = True  # subtract the mean, divide by the std of each feature
    scale_feature: int = 0  # which feature the "badly scaled" factor multiplies
    scale_factor: float = 1.0  # 1 = off; e.g. 100 makes one feature 100x larger
    csv_path: str = ""  # with dataset = "csv": the file to read
    csv_target: str = ""  # with dataset = "csv": the label/target column (default: last)
    csv_task: str = "auto"  # "auto", "classification" or "regression"

    def validate(self, p: str = "data") -> None:
        _check_choice(f"{p}.dataset", self.dataset, [*_names("dataset_names"), "csv"])
        _check_range(f"{p}.n_samples", self.n_samples, ge=10, le=1_000_000)
        _check_range(f"{p}.noise", self.noise, ge=0.0, le=10.0)
        _check_range(f"{p}.n_classes", self.n_classes, ge=2, le=20)
        _check_range(f"{p}.validation_fraction", self.validation_fraction, ge=0.0, lt=0.9)
        _check_range(f"{p}.scale_feature", self.scale_feature, ge=0)
        _check_range(f"{p}.scale_factor", self.scale_factor, gt=0.0, le=1e6)
        _check_choice(f"{p}.csv_task", self.csv_task, ["auto", "classification", "regression"])
        if self.dataset == "csv" and not self.csv_path:
            _fail(f"{p}.csv_path", "must name a file when data.dataset is 'csv', got ''")


@dataclass(frozen=True)
class NetworkConfig:
    hidden_layers: int = 4  # number of hidden layers (1-100)
    width: int = 16  # units per hidden layer (1-512)
    activation: str = "tanh"  # one activation for every hidden layer ...
    activations: tuple[str, ...] = ()  # ... or one per hidden layer (overrides the above)
    loss: str = "softmax_ce"  # mse, bce (2 classes) or softmax_ce
    output_activation: str = "auto"  # auto: linear for mse, sigmoid for bce, softmax for ce
    batch_norm: bool = False  # batch normalization before each hidden activation
    residual: bool = False  # identity skip around hidden layers whose widths match
    bn_momentum: float = 0.1  # running statistics: r <- (1 - m) r + m * batch statistic
    bn_epsilon: float = 1e-5

    def hidden_activations(self) -> tuple[str, ...]:
        return self.activations or (self.activation,) * self.hidden_layers

    def validate(self, p: str = "network") -> None:
        _check_range(f"{p}.hidden_layers", self.hidden_layers, ge=1, le=100)
        _check_range(f"{p}.width", self.width, ge=1, le=512)
        acts = _names("activation_names")
        _check_choice(f"{p}.activation", self.activation, acts)
        if self.activations and len(self.activations) != self.hidden_layers:
            _fail(
                f"{p}.activations",
                f"must list one activation per hidden layer ({self.hidden_layers}), "
                f"got {len(self.activations)}",
            )
        for i, name in enumerate(self.activations):
            _check_choice(f"{p}.activations[{i}]", name, acts)
        _check_choice(f"{p}.loss", self.loss, _names("loss_names"))
        if self.output_activation != "auto":
            if self.loss != "mse":
                _fail(
                    f"{p}.output_activation",
                    f"can only be chosen with loss 'mse' (bce uses sigmoid, softmax_ce "
                    f"uses softmax), got {self.output_activation!r}",
                )
            _check_choice(f"{p}.output_activation", self.output_activation, acts)
        _check_range(f"{p}.bn_momentum", self.bn_momentum, gt=0.0, le=1.0)
        _check_range(f"{p}.bn_epsilon", self.bn_epsilon, gt=0.0, le=1.0)


@dataclass(frozen=True)
class InitConfig:
    weights: str = "xavier_uniform"  # a key of INITIALIZERS
    biases: str = "zeros"  # a key of INITIALIZERS, chosen separately
    gain: float = 1.0  # multiplies the weights of any scheme
    weight_scale: float = 0.1  # epsilon / sigma / value for uniform, normal, constant
    bias_scale: float = 0.0  # epsilon / sigma / value for the bias scheme
    lsuv_tolerance: float = 0.02  # LSUV: stop when |var - 1| < tolerance
    lsuv_max_iter: int = 20  # LSUV: at most this many rescalings per layer

    def validate(self, p: str = "init") -> None:
        names = _names("initializer_names")
        _check_choice(f"{p}.weights", self.weights, names)
        from engine.initializers import BIAS_SCHEMES

        _check_choice(f"{p}.biases", self.biases, BIAS_SCHEMES)
        _check_range(f"{p}.gain", self.gain, ge=0.0, le=1e3)
        _check_range(f"{p}.weight_scale", self.weight_scale, ge=0.0, le=1e3)
        _check_range(f"{p}.bias_scale", self.bias_scale, ge=-1e3, le=1e3)
        _check_range(f"{p}.lsuv_tolerance", self.lsuv_tolerance, gt=0.0, lt=1.0)
        _check_range(f"{p}.lsuv_max_iter", self.lsuv_max_iter, ge=1, le=1000)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"  # a key of OPTIMIZERS
    learning_rate: float = 0.05
    momentum: float = 0.9  # momentum, nesterov
    beta1: float = 0.9  # adam, adamw
    beta2: float = 0.999  # adam, adamw
    rho: float = 0.9  # rmsprop: decay of the squared-gradient average
    epsilon: float = 1e-8  # adagrad, rmsprop, adam, adamw
    weight_decay: float = 0.01  # adamw: decoupled decay of the weights
    layer_lr_multipliers: tuple[float, ...] = ()  # one per layer (hidden + output); () = all 1

    def validate(self, p: str = "optimizer") -> None:
        _check_choice(f"{p}.name", self.name, _names("optimizer_names"))
        _check_range(f"{p}.learning_rate", self.learning_rate, gt=0.0, le=1e6)
        _check_range(f"{p}.momentum", self.momentum, ge=0.0, lt=1.0)
        _check_range(f"{p}.beta1", self.beta1, ge=0.0, lt=1.0)
        _check_range(f"{p}.beta2", self.beta2, ge=0.0, lt=1.0)
        _check_range(f"{p}.rho", self.rho, ge=0.0, lt=1.0)
        _check_range(f"{p}.epsilon", self.epsilon, gt=0.0, le=1.0)
        _check_range(f"{p}.weight_decay", self.weight_decay, ge=0.0, le=10.0)
        for i, m in enumerate(self.layer_lr_multipliers):
            _check_range(f"{p}.layer_lr_multipliers[{i}]", m, ge=0.0, le=1e6)


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "constant"  # a key of SCHEDULES
    warmup_steps: int = 0  # linear warmup from ~0 to the schedule's start, then the schedule
    step_size: int = 500  # step: multiply by gamma every step_size steps
    gamma: float = 0.5  # step: the factor
    decay_rate: float = 0.5  # exponential: lr * decay_rate ** (step / decay_steps)
    decay_steps: int = 1000  # exponential
    total_steps: int = 5000  # cosine, 1cycle: length of the schedule
    min_lr: float = 1e-4  # cosine: final rate
    cycle_steps: int = 500  # cyclic: steps from learning_rate up to max_lr (half a cycle)
    max_lr: float = 0.0  # cyclic, 1cycle: peak rate; 0 = 10 x learning_rate (cyclic) / lr
    pct_start: float = 0.3  # 1cycle: share of steps spent rising
    div_factor: float = 25.0  # 1cycle: start at max_lr / div_factor
    final_div_factor: float = 1e4  # 1cycle: end at start / final_div_factor

    def validate(self, p: str = "schedule") -> None:
        _check_choice(f"{p}.name", self.name, _names("schedule_names"))
        _check_range(f"{p}.warmup_steps", self.warmup_steps, ge=0, le=10**9)
        _check_range(f"{p}.step_size", self.step_size, ge=1)
        _check_range(f"{p}.gamma", self.gamma, gt=0.0, le=1.0)
        _check_range(f"{p}.decay_rate", self.decay_rate, gt=0.0, le=1.0)
        _check_range(f"{p}.decay_steps", self.decay_steps, ge=1)
        _check_range(f"{p}.total_steps", self.total_steps, ge=1)
        _check_range(f"{p}.min_lr", self.min_lr, ge=0.0)
        _check_range(f"{p}.cycle_steps", self.cycle_steps, ge=1)
        _check_range(f"{p}.max_lr", self.max_lr, ge=0.0)
        _check_range(f"{p}.pct_start", self.pct_start, gt=0.0, lt=1.0)
        _check_range(f"{p}.div_factor", self.div_factor, ge=1.0)
        _check_range(f"{p}.final_div_factor", self.final_div_factor, ge=1.0)


@dataclass(frozen=True)
class ClipConfig:
    kind: str = "none"  # none, global_norm, layer_norm, value
    threshold: float = 1.0  # the norm (or the absolute value) gradients are clipped to

    def validate(self, p: str = "clip") -> None:
        _check_choice(f"{p}.kind", self.kind, _names("clip_names"))
        _check_range(f"{p}.threshold", self.threshold, gt=0.0)


@dataclass(frozen=True)
class RegularizationConfig:
    l2: float = 0.0  # adds l2/2 * sum(W**2) over weights (not biases) to the loss

    def validate(self, p: str = "regularization") -> None:
        _check_range(f"{p}.l2", self.l2, ge=0.0, le=100.0)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0  # derives the three seeds below unless they are set
    data_seed: int | None = None  # dataset generation and the train/validation split
    init_seed: int | None = None  # weight initialization
    batch_seed: int | None = None  # minibatch order
    batch_size: int = 32  # capped at the training-set size (full batch)
    eval_every: int = 50  # validation loss/accuracy and layer probes every this many steps
    steps: int = 2000  # planned length of the run (schedules are drawn this far ahead)

    def validate(self, p: str = "run") -> None:
        for name in ("seed", "data_seed", "init_seed", "batch_seed"):
            value = getattr(self, name)
            if value is not None:
                _check_range(f"{p}.{name}", value, ge=0, lt=2**63)
        _check_range(f"{p}.batch_size", self.batch_size, ge=1, le=100_000)
        _check_range(f"{p}.eval_every", self.eval_every, ge=1)
        _check_range(f"{p}.steps", self.steps, ge=1, le=10**9)

    def derived_seeds(self) -> tuple[int, int, int]:
        """(data, init, batch) seeds: the explicit ones, else spawned from `seed`."""
        import numpy as np

        children = np.random.SeedSequence(self.seed).generate_state(3, dtype=np.uint64)
        derived = [int(c) >> 1 for c in children]  # fit in a signed 64-bit TOML integer
        given = (self.data_seed, self.init_seed, self.batch_seed)
        return tuple(g if g is not None else d for g, d in zip(given, derived, strict=True))


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "untitled"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "validate"):
                value.validate(f.name)
        n_layers = self.network.hidden_layers + 1
        mults = self.optimizer.layer_lr_multipliers
        if mults and len(mults) != n_layers:
            _fail(
                "optimizer.layer_lr_multipliers",
                f"must have one entry per layer ({n_layers}: hidden + output), got {len(mults)}",
            )
        data, loss = self.data, self.network.loss
        if loss == "bce" and data.dataset == "spiral" and data.n_classes != 2:
            _fail(
                "network.loss",
                f"'bce' needs 2 classes, but data.n_classes is {data.n_classes}; "
                "use 'softmax_ce'",
            )
        if data.dataset != "csv" and loss != "mse":
            from engine.data import DATASETS

            if DATASETS[data.dataset].task == "regression":
                _fail(
                    "network.loss",
                    f"must be 'mse' for the regression dataset {data.dataset!r}, got {loss!r}",
                )

    # -- conversions -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict; None values are left out (TOML has no null)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Build and validate; unknown keys and wrong types are rejected by name."""
        return _from_dict(cls, data, "")

    def replace(self, **sections: Any) -> ExperimentConfig:
        """A copy with dotted fields replaced: replace(**{"optimizer.learning_rate": 0.1})."""
        data = self.to_dict()
        for key, value in sections.items():
            set_dotted(data, key, value)
        return ExperimentConfig.from_dict(data)


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = _to_dict(getattr(obj, f.name))
            if value is not None:
                out[f.name] = value
        return out
    if isinstance(obj, tuple):
        return [_to_dict(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            _fail(path, f"must be a list, got {value!r}")
        return tuple(_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            _fail(path, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a bug, not bad input


def _from_dict(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "experiment"
    if not isinstance(data, dict):
        _fail(where, f"must be a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        hint = difflib.get_close_matches(key, list(fields), n=1)
        extra = f" (did you mean {prefix + hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown field {prefix + key!r} in {where}{extra}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(tp, value, f"{prefix}{name}")
    obj = cls(**kwargs)
    if prefix and hasattr(obj, "validate"):
        obj.validate(prefix.rstrip("."))
    return obj


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `data["a"]["b"] = value` for key "a.b", creating tables on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
    node[parts[-1]] = value


# -- TOML ---------------------------------------------------------------------------------
def loads(text: str) -> ExperimentConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    return ExperimentConfig.from_dict(data)


def load(path: str | Path) -> ExperimentConfig:
    """Read an experiment from a TOML file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not an experiment file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    try:
        return ExperimentConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dumps(config: ExperimentConfig) -> str:
    import tomli_w

    return tomli_w.dumps(config.to_dict())


def save(config: ExperimentConfig, path: str | Path) -> None:
    """Write atomically: a temporary file beside the target, then a rename."""
    from engine.files import atomic_write_bytes

    atomic_write_bytes(Path(path), dumps(config).encode("utf-8"))
