"""Experiment configuration: every error names its dotted field and quotes the value; TOML
round trips exactly; files are read with clear errors and written atomically; seeds."""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import config as config_io
from engine.activations import ACTIVATIONS
from engine.clipping import CLIP_KINDS
from engine.config import ConfigError, ExperimentConfig, OptimizerConfig, RunConfig
from engine.data import DATASETS
from engine.initializers import BIAS_SCHEMES, INITIALIZERS
from engine.losses import LOSSES
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES

# -- walking the dataclasses --------------------------------------------------------------
SECTIONS: dict[str, type] = {
    name: tp
    for name, tp in typing.get_type_hints(ExperimentConfig).items()
    if dataclasses.is_dataclass(tp)
}


def _fields() -> list[tuple[str, str, typing.Any]]:
    """(section, field, type hint) for every field of every section."""
    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        out.extend((section, f.name, hints[f.name]) for f in dataclasses.fields(cls))
    return out


def _base(tp: typing.Any) -> typing.Any:
    """int for `int | None`, the type itself otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


FIELD_TYPES = {f"{s}.{n}": _base(tp) for s, n, tp in _fields()}


def _default(section: str, name: str):
    return getattr(getattr(ExperimentConfig(), section), name)


# Out-of-range values for every numeric field, with the bound the message must state. A
# numeric field missing here fails test_every_numeric_field_has_bad_values.
BAD_NUMBERS: dict[str, list[tuple[typing.Any, str]]] = {
    "data.n_samples": [(9, ">= 10"), (1_000_001, "<= 1e+06")],
    "data.noise": [(-0.1, ">= 0"), (10.5, "<= 10")],
    "data.n_classes": [(1, ">= 2"), (21, "<= 20")],
    "data.validation_fraction": [(-0.1, ">= 0"), (0.9, "< 0.9")],
    "data.scale_feature": [(-1, ">= 0")],
    "data.scale_factor": [(0.0, "> 0"), (-2.0, "> 0"), (2e6, "<= 1e+06")],
    "network.hidden_layers": [(0, ">= 1"), (101, "<= 100")],
    "network.width": [(0, ">= 1"), (513, "<= 512")],
    "network.bn_momentum": [(0.0, "> 0"), (1.5, "<= 1")],
    "network.bn_epsilon": [(0.0, "> 0"), (2.0, "<= 1")],
    "init.gain": [(-1.0, ">= 0"), (1001.0, "<= 1000")],
    "init.weight_scale": [(-0.1, ">= 0"), (1001.0, "<= 1000")],
    "init.bias_scale": [(-1001.0, ">= -1000"), (1001.0, "<= 1000")],
    "init.lsuv_tolerance": [(0.0, "> 0"), (1.0, "< 1")],
    "init.lsuv_max_iter": [(0, ">= 1"), (1001, "<= 1000")],
    "optimizer.learning_rate": [(0.0, "> 0"), (-0.1, "> 0"), (2e6, "<= 1e+06")],
    "optimizer.momentum": [(-0.1, ">= 0"), (1.0, "< 1")],
    "optimizer.beta1": [(-0.1, ">= 0"), (1.0, "< 1")],
    "optimizer.beta2": [(-0.1, ">= 0"), (1.0, "< 1")],
    "optimizer.rho": [(-0.1, ">= 0"), (1.0, "< 1")],
    "optimizer.epsilon": [(0.0, "> 0"), (2.0, "<= 1")],
    "optimizer.weight_decay": [(-0.1, ">= 0"), (11.0, "<= 10")],
    "schedule.warmup_steps": [(-1, ">= 0"), (10**9 + 1, "<= 1e+09")],
    "schedule.step_size": [(0, ">= 1")],
    "schedule.gamma": [(0.0, "> 0"), (1.5, "<= 1")],
    "schedule.decay_rate": [(0.0, "> 0"), (1.5, "<= 1")],
    "schedule.decay_steps": [(0, ">= 1")],
    "schedule.total_steps": [(0, ">= 1")],
    "schedule.min_lr": [(-1e-3, ">= 0")],
    "schedule.cycle_steps": [(0, ">= 1")],
    "schedule.max_lr": [(-0.1, ">= 0")],
    "schedule.pct_start": [(0.0, "> 0"), (1.0, "< 1")],
    "schedule.div_factor": [(0.5, ">= 1")],
    "schedule.final_div_factor": [(0.5, ">= 1")],
    "clip.threshold": [(0.0, "> 0"), (-1.0, "> 0")],
    "regularization.l2": [(-0.1, ">= 0"), (101.0, "<= 100")],
    "run.seed": [(-1, ">= 0"), (2**63, "< ")],
    "run.data_seed": [(-1, ">= 0"), (2**63, "< ")],
    "run.init_seed": [(-1, ">= 0"), (2**63, "< ")],
    "run.batch_seed": [(-1, ">= 0"), (2**63, "< ")],
    "run.batch_size": [(0, ">= 1"), (100_001, "<= 100000")],
    "run.eval_every": [(0, ">= 1")],
    "run.steps": [(0, ">= 1"), (10**9 + 1, "<= 1e+09")],
}

# Fields chosen from a list, with a near-miss (gets a "did you mean") and a far miss.
BAD_CHOICES: dict[str, tuple[str, str | None]] = {
    "data.dataset": ("spirall", "spiral"),
    "data.csv_task": ("regresion", "regression"),
    "network.activation": ("rellu", "relu"),
    "network.loss": ("softmax_cee", "softmax_ce"),
    "init.weights": ("he_norml", "he_normal"),
    "init.biases": ("zeroes", "zeros"),
    "optimizer.name": ("adma", "adam"),
    "schedule.name": ("cosin", "cosine"),
    "clip.kind": ("global_nrom", "global_norm"),
}
FREE_TEXT = {"name", "description", "data.csv_path", "data.csv_target"}
OTHER_FIELDS = {
    # validated together with other fields, tested below
    "network.activations", "network.output_activation", "optimizer.layer_lr_multipliers",
    "data.standardize", "network.batch_norm", "network.residual",
}

NUMERIC = [k for k, tp in FIELD_TYPES.items() if tp in (int, float)]


def _cfg(dotted: str, value) -> dict:
    section, name = dotted.split(".")
    return {section: {name: value}}


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    return str(info.value)


# -- ranges -------------------------------------------------------------------------------
def test_every_field_is_covered_by_these_tests():
    """A new field must get bad values here (or be listed as free text), so that its
    validation is tested the day it is added."""
    known = set(BAD_NUMBERS) | set(BAD_CHOICES) | FREE_TEXT | OTHER_FIELDS
    top = {f.name for f in dataclasses.fields(ExperimentConfig) if f.name not in SECTIONS}
    every = {f"{s}.{n}" for s, n, _ in _fields()} | top
    assert every - known == set(), "add bad values for these fields"
    assert known - every == set(), "these fields no longer exist"


def test_every_numeric_field_has_bad_values():
    assert sorted(NUMERIC) == sorted(BAD_NUMBERS)


@pytest.mark.parametrize(
    ("dotted", "bad", "bound"),
    [(k, v, b) for k, cases in BAD_NUMBERS.items() for v, b in cases],
    ids=lambda x: str(x),
)
def test_out_of_range_names_the_dotted_field_and_quotes_the_value(dotted, bad, bound):
    message = _error(_cfg(dotted, bad))
    assert message.startswith(f"{dotted} must be {bound}")
    assert message.endswith(f", got {bad!r}")
    # the same check guards direct construction of the dataclasses
    section, name = dotted.split(".")
    cls = SECTIONS[section]
    with pytest.raises(ConfigError, match=f"^{dotted} "):
        ExperimentConfig(**{section: cls(**{name: bad})})
    with pytest.raises(ConfigError, match=f"^{dotted} "):
        ExperimentConfig().replace(**{dotted: bad})


def test_the_example_message_word_for_word():
    assert _error({"optimizer": {"learning_rate": -0.1}}) == (
        "optimizer.learning_rate must be > 0, got -0.1"
    )


@pytest.mark.parametrize("dotted", [k for k in NUMERIC if FIELD_TYPES[k] is float])
def test_nan_is_rejected_for_every_float_field(dotted):
    message = _error(_cfg(dotted, math.nan))
    assert message == f"{dotted} must be a number, got nan"


@pytest.mark.parametrize("dotted", sorted(BAD_NUMBERS))
def test_boundary_values_that_are_allowed(dotted):
    """The default is valid, and so is every inclusive bound (e.g. noise = 0)."""
    inclusive = {
        "data.noise": [0.0, 10.0], "data.n_samples": [10, 1_000_000],
        "data.validation_fraction": [0.0], "network.bn_momentum": [1.0],
        "init.gain": [0.0, 1000.0], "init.bias_scale": [-1000.0, 1000.0],
        "optimizer.momentum": [0.0], "schedule.gamma": [1.0], "schedule.min_lr": [0.0],
        "run.seed": [0, 2**63 - 1], "run.batch_size": [1, 100_000],
    }
    for value in [_default(*dotted.split(".")), *inclusive.get(dotted, [])]:
        if value is None:
            continue
        got = ExperimentConfig.from_dict(_cfg(dotted, value))
        assert _default_of(got, dotted) == value


def _default_of(config: ExperimentConfig, dotted: str):
    section, name = dotted.split(".")
    return getattr(getattr(config, section), name)


# -- names from the registries ------------------------------------------------------------
@pytest.mark.parametrize("dotted", sorted(BAD_CHOICES))
def test_bad_registry_name_lists_the_choices_and_suggests_the_nearest(dotted):
    typo, nearest = BAD_CHOICES[dotted]
    message = _error(_cfg(dotted, typo))
    assert message.startswith(f"{dotted} must be one of ")
    assert f"got {typo!r}" in message
    assert f"(did you mean {nearest!r}?)" in message
    far = _error(_cfg(dotted, "qqqqqqqq"))
    assert "'qqqqqqqq'" in far and "did you mean" not in far


@pytest.mark.parametrize(
    ("dotted", "registry"),
    [
        ("network.activation", ACTIVATIONS), ("init.weights", INITIALIZERS),
        ("init.biases", BIAS_SCHEMES), ("optimizer.name", OPTIMIZERS),
        ("schedule.name", SCHEDULES), ("clip.kind", CLIP_KINDS),
    ],
)
def test_every_registry_key_is_accepted(dotted, registry):
    for key in registry:
        assert _default_of(ExperimentConfig.from_dict(_cfg(dotted, key)), dotted) == key


def test_every_dataset_and_loss_combination_that_fits_is_accepted():
    for name, spec in DATASETS.items():
        for loss in LOSSES:
            data = {"data": {"dataset": name, "n_classes": 2}, "network": {"loss": loss}}
            if spec.task == "regression" and loss != "mse":
                continue
            assert ExperimentConfig.from_dict(data).network.loss == loss


def test_matrix_initializers_are_not_bias_schemes():
    for name in ("orthogonal", "lsuv"):
        message = _error({"init": {"biases": name}})
        assert message.startswith("init.biases must be one of") and repr(name) in message


def test_per_layer_activations_are_checked_one_by_one():
    message = _error({"network": {"hidden_layers": 3, "activations": ["relu", "tnah", "relu"]}})
    assert message.startswith("network.activations[1] must be one of")
    assert "got 'tnah' (did you mean 'tanh'?)" in message


def test_per_layer_activations_need_one_per_hidden_layer():
    message = _error({"network": {"hidden_layers": 3, "activations": ["relu", "tanh"]}})
    assert message.startswith("network.activations must list one activation per hidden layer")
    assert "(3)" in message and message.endswith("got 2")


def test_output_activation_only_with_mse():
    message = _error({"network": {"loss": "softmax_ce", "output_activation": "tanh"}})
    assert message.startswith("network.output_activation ") and "'tanh'" in message
    ok = {"data": {"dataset": "plane"}, "network": {"loss": "mse", "output_activation": "tanh"}}
    assert ExperimentConfig.from_dict(ok).network.output_activation == "tanh"
    bad = {"data": {"dataset": "plane"},
           "network": {"loss": "mse", "output_activation": "tahn"}}
    assert "did you mean 'tanh'" in _error(bad)


@pytest.mark.parametrize("n_given", [1, 4, 6])
def test_layer_lr_multipliers_need_one_per_layer(n_given):
    data = {"network": {"hidden_layers": 4},
            "optimizer": {"layer_lr_multipliers": [1.0] * n_given}}
    message = _error(data)
    assert message.startswith("optimizer.layer_lr_multipliers must have one entry per layer")
    assert "(5: hidden + output)" in message and message.endswith(f"got {n_given}")
    data["optimizer"]["layer_lr_multipliers"] = [1.0] * 5
    assert ExperimentConfig.from_dict(data).optimizer.layer_lr_multipliers == (1.0,) * 5


def test_layer_lr_multiplier_out_of_range_names_its_index():
    data = {"network": {"hidden_layers": 1}, "optimizer": {"layer_lr_multipliers": [1.0, -2.0]}}
    assert _error(data) == "optimizer.layer_lr_multipliers[1] must be >= 0, got -2.0"


def test_bce_with_a_three_class_spiral():
    message = _error({"data": {"dataset": "spiral", "n_classes": 3},
                      "network": {"loss": "bce"}})
    assert message.startswith("network.loss ")
    assert "'bce'" in message and "3" in message and "softmax_ce" in message
    two = {"data": {"dataset": "spiral", "n_classes": 2}, "network": {"loss": "bce"}}
    assert ExperimentConfig.from_dict(two).network.loss == "bce"


@pytest.mark.parametrize(
    ("dataset", "loss"),
    [(d, loss) for d, s in DATASETS.items() if s.task == "regression"
     for loss in LOSSES if loss != "mse"],
)
def test_regression_dataset_needs_mse(dataset, loss):
    message = _error({"data": {"dataset": dataset}, "network": {"loss": loss}})
    assert message == f"network.loss must be 'mse' for the regression dataset {dataset!r}, " \
                      f"got {loss!r}"


def test_csv_dataset_needs_a_path():
    message = _error({"data": {"dataset": "csv"}})
    assert message.startswith("data.csv_path must name a file") and message.endswith("got ''")


# -- unknown keys and wrong types ---------------------------------------------------------
def test_unknown_field_with_a_typo_gets_a_hint():
    message = _error({"optimizer": {"lerning_rate": 0.1}})
    assert "unknown field 'optimizer.lerning_rate'" in message
    assert "(did you mean 'optimizer.learning_rate'?)" in message


def test_unknown_section_with_a_typo_gets_a_hint():
    message = _error({"optimiser": {"learning_rate": 0.1}})
    assert "unknown field 'optimiser'" in message and "(did you mean 'optimizer'?)" in message


def test_unknown_field_without_a_near_name_is_still_named():
    message = _error({"run": {"zzzzzz": 1}})
    assert "unknown field 'run.zzzzzz'" in message and "did you mean" not in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"optimizer": {"learning_rate": "0.1"}},
         "optimizer.learning_rate must be a number, got '0.1'"),
        ({"optimizer": {"learning_rate": True}},
         "optimizer.learning_rate must be a number, got True"),
        ({"network": {"width": "16"}}, "network.width must be an integer, got '16'"),
        ({"network": {"width": 16.5}}, "network.width must be an integer, got 16.5"),
        ({"network": {"hidden_layers": True}},
         "network.hidden_layers must be an integer, got True"),
        ({"data": {"standardize": 1}}, "data.standardize must be true or false, got 1"),
        ({"network": {"batch_norm": "yes"}},
         "network.batch_norm must be true or false, got 'yes'"),
        ({"network": {"residual": 0.0}}, "network.residual must be true or false, got 0.0"),
        ({"network": {"activation": ["relu"]}},
         "network.activation must be a string, got ['relu']"),
        ({"name": ["a"]}, "name must be a string, got ['a']"),
        ({"data": {"csv_path": 3}}, "data.csv_path must be a string, got 3"),
        ({"network": {"activations": "relu"}},
         "network.activations must be a list, got 'relu'"),
        ({"network": {"hidden_layers": 2, "activations": ["relu", 3]}},
         "network.activations[1] must be a string, got 3"),
        ({"optimizer": {"layer_lr_multipliers": [1.0, "a"]}},
         "optimizer.layer_lr_multipliers[1] must be a number, got 'a'"),
        ({"run": {"seed": 1.5}}, "run.seed must be an integer, got 1.5"),
        ({"run": {"init_seed": "7"}}, "run.init_seed must be an integer, got '7'"),
        ({"optimizer": 3}, "optimizer must be a table of settings, got 3"),
        ({"optimizer": [0.1]}, "optimizer must be a table of settings, got [0.1]"),
    ],
)
def test_wrong_types_are_named(data, expected):
    assert _error(data) == expected


def test_whole_experiment_must_be_a_table():
    assert _error([1, 2]) == "experiment must be a table of settings, got [1, 2]"


def test_integral_float_for_an_int_field_is_an_int_and_an_int_for_a_float_is_a_float():
    c = ExperimentConfig.from_dict({"network": {"width": 8.0}, "optimizer": {"learning_rate": 1}})
    assert c.network.width == 8 and type(c.network.width) is int
    assert c.optimizer.learning_rate == 1.0 and type(c.optimizer.learning_rate) is float


def test_replace_sets_dotted_fields_and_validates():
    c = ExperimentConfig().replace(**{"optimizer.learning_rate": 0.3, "network.width": 4})
    assert c.optimizer.learning_rate == 0.3 and c.network.width == 4
    assert ExperimentConfig().optimizer.learning_rate == 0.05  # the original is unchanged
    with pytest.raises(ConfigError, match="unknown field 'network.widht'"):
        ExperimentConfig().replace(**{"network.widht": 4})
    with pytest.raises(ConfigError, match="is not a section"):
        ExperimentConfig().replace(**{"optimizer.learning_rate.x": 4})


# -- TOML round trip ----------------------------------------------------------------------
def _round_trip(config: ExperimentConfig) -> None:
    text = config_io.dumps(config)
    again = config_io.loads(text)
    assert again == config
    assert again.to_dict() == config.to_dict()
    assert config_io.dumps(again) == text


def test_default_config_round_trips():
    _round_trip(ExperimentConfig())


def test_to_dict_leaves_out_unset_seeds_and_from_dict_restores_them():
    d = ExperimentConfig().to_dict()
    assert "data_seed" not in d["run"] and "seed" in d["run"]
    assert ExperimentConfig.from_dict(d).run.data_seed is None
    c = ExperimentConfig(run=RunConfig(init_seed=5))
    assert c.to_dict()["run"]["init_seed"] == 5


def _floats(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    return st.floats(lo, hi, exclude_min=lo_open, exclude_max=hi_open, allow_nan=False,
                     allow_infinity=False)


_seeds = st.none() | st.integers(0, 2**63 - 1)


@st.composite
def valid_configs(draw) -> ExperimentConfig:
    dataset = draw(st.sampled_from([*DATASETS, "csv"]))
    regression = dataset != "csv" and DATASETS[dataset].task == "regression"
    n_classes = draw(st.integers(2, 20))
    losses = ["mse"] if regression else list(LOSSES)
    if dataset == "spiral" and n_classes != 2:
        losses = [x for x in losses if x != "bce"]
    loss = draw(st.sampled_from(losses))
    hidden = draw(st.integers(1, 6))
    acts = list(ACTIVATIONS)
    per_layer = draw(st.booleans())
    text = st.text(max_size=30)
    data = {
        "name": draw(text), "description": draw(text),
        "data": {
            "dataset": dataset, "n_samples": draw(st.integers(10, 1_000_000)),
            "noise": draw(_floats(0, 10)), "n_classes": n_classes,
            "validation_fraction": draw(_floats(0, 0.9, hi_open=True)),
            "standardize": draw(st.booleans()), "scale_feature": draw(st.integers(0, 5)),
            "scale_factor": draw(_floats(0, 1e6, lo_open=True)),
            "csv_path": draw(st.text(min_size=1, max_size=20)) if dataset == "csv" else "",
            "csv_target": draw(text),
            "csv_task": draw(st.sampled_from(["auto", "classification", "regression"])),
        },
        "network": {
            "hidden_layers": hidden, "width": draw(st.integers(1, 512)),
            "activation": draw(st.sampled_from(acts)),
            "activations": draw(st.lists(st.sampled_from(acts), min_size=hidden,
                                         max_size=hidden)) if per_layer else [],
            "loss": loss,
            "output_activation": draw(st.sampled_from(["auto", *acts])) if loss == "mse"
            else "auto",
            "batch_norm": draw(st.booleans()), "residual": draw(st.booleans()),
            "bn_momentum": draw(_floats(0, 1, lo_open=True)),
            "bn_epsilon": draw(_floats(0, 1, lo_open=True)),
        },
        "init": {
            "weights": draw(st.sampled_from(list(INITIALIZERS))),
            "biases": draw(st.sampled_from(BIAS_SCHEMES)),
            "gain": draw(_floats(0, 1e3)), "weight_scale": draw(_floats(0, 1e3)),
            "bias_scale": draw(_floats(-1e3, 1e3)),
            "lsuv_tolerance": draw(_floats(0, 1, lo_open=True, hi_open=True)),
            "lsuv_max_iter": draw(st.integers(1, 1000)),
        },
        "optimizer": {
            "name": draw(st.sampled_from(list(OPTIMIZERS))),
            "learning_rate": draw(_floats(0, 1e6, lo_open=True)),
            "momentum": draw(_floats(0, 1, hi_open=True)),
            "beta1": draw(_floats(0, 1, hi_open=True)),
            "beta2": draw(_floats(0, 1, hi_open=True)),
            "rho": draw(_floats(0, 1, hi_open=True)),
            "epsilon": draw(_floats(0, 1, lo_open=True)),
            "weight_decay": draw(_floats(0, 10)),
            "layer_lr_multipliers": draw(st.just([]) | st.lists(
                _floats(0, 1e6), min_size=hidden + 1, max_size=hidden + 1)),
        },
        "schedule": {
            "name": draw(st.sampled_from(list(SCHEDULES))),
            "warmup_steps": draw(st.integers(0, 10**9)),
            "step_size": draw(st.integers(1, 10**6)), "gamma": draw(_floats(0, 1, lo_open=True)),
            "decay_rate": draw(_floats(0, 1, lo_open=True)),
            "decay_steps": draw(st.integers(1, 10**6)),
            "total_steps": draw(st.integers(1, 10**6)), "min_lr": draw(_floats(0, 10)),
            "cycle_steps": draw(st.integers(1, 10**6)), "max_lr": draw(_floats(0, 10)),
            "pct_start": draw(_floats(0, 1, lo_open=True, hi_open=True)),
            "div_factor": draw(_floats(1, 1e6)), "final_div_factor": draw(_floats(1, 1e6)),
        },
        "clip": {"kind": draw(st.sampled_from(list(CLIP_KINDS))),
                 "threshold": draw(_floats(0, 1e6, lo_open=True))},
        "regularization": {"l2": draw(_floats(0, 100))},
        "run": {
            "seed": draw(st.integers(0, 2**63 - 1)),
            "data_seed": draw(_seeds), "init_seed": draw(_seeds), "batch_seed": draw(_seeds),
            "batch_size": draw(st.integers(1, 100_000)),
            "eval_every": draw(st.integers(1, 10**6)), "steps": draw(st.integers(1, 10**9)),
        },
    }
    data["run"] = {k: v for k, v in data["run"].items() if v is not None}
    return ExperimentConfig.from_dict(data)


@settings(max_examples=40, deadline=None)
@given(valid_configs())
def test_random_valid_configs_round_trip_exactly(config):
    _round_trip(config)


def test_round_trip_keeps_per_layer_activations_and_explicit_seeds():
    config = ExperimentConfig.from_dict({
        "name": 'quote " backslash \\ tab \t unicode σ',
        "network": {"hidden_layers": 3, "activations": ["relu", "tanh", "elu"]},
        "optimizer": {"layer_lr_multipliers": [0.5, 1.0, 2.0, 1e-300]},
        "run": {"seed": 2**63 - 1, "batch_seed": 0},
    })
    _round_trip(config)
    again = config_io.loads(config_io.dumps(config))
    assert again.network.activations == ("relu", "tanh", "elu")
    assert again.run.batch_seed == 0 and again.run.data_seed is None


def test_loads_reports_bad_toml():
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_io.loads("[optimizer\nlearning_rate = ")


# -- files --------------------------------------------------------------------------------
def test_save_then_load(tmp_path):
    config = ExperimentConfig().replace(**{"optimizer.name": "adam", "run.init_seed": 3})
    path = tmp_path / "exp.toml"
    config_io.save(config, path)
    assert config_io.load(path) == config
    assert config_io.load(str(path)) == config


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "is a folder"),
        (lambda p: (p.write_text("[optimizer\nlearning_rate = 0.1\n"), p)[1],
         "not valid TOML"),
        (lambda p: (p.write_bytes(bytes(range(256)) * 4), p)[1], "not a text file"),
        (lambda p: (p.write_bytes(b"\x00\x01garbage\x02"), p)[1], "not valid TOML"),
        (lambda p: (p.write_text("[optimizer]\nlearning_rate = -1.0\n"), p)[1],
         "optimizer.learning_rate must be > 0, got -1.0"),
        (lambda p: (p.write_text("[optimizer]\nlerning_rate = 0.1\n"), p)[1],
         "did you mean 'optimizer.learning_rate'"),
    ],
    ids=["missing", "folder", "bad-toml", "binary", "control-bytes", "range", "unknown"],
)
def test_load_errors_are_config_errors_naming_the_path(tmp_path, make, fragment):
    path = make(tmp_path / "experiment.toml")
    with pytest.raises(ConfigError) as info:
        config_io.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message


def test_shipped_experiments_load_and_round_trip():
    from importlib import resources

    folder = resources.files("resources.experiments")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
    assert names
    for name in names:
        config = config_io.load(Path(str(folder / name)))
        _round_trip(config)


def test_save_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "exp.toml"
    original = ExperimentConfig()
    config_io.save(original, path)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    changed = original.replace(**{"optimizer.learning_rate": 0.9})
    with pytest.raises(OSError, match="disk full"):
        config_io.save(changed, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]  # no temp file left
    config_io.save(changed, path)
    assert config_io.load(path) == changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]


def test_save_writes_through_a_temporary_file_in_the_same_folder(tmp_path, monkeypatch):
    path = tmp_path / "exp.toml"
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst), Path(src).read_bytes()))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    config_io.save(ExperimentConfig(), path)
    [(src, dst, data)] = renames
    assert dst == path and src.parent == tmp_path and src != path
    assert data == path.read_bytes() and not src.exists()


# -- seeds --------------------------------------------------------------------------------
def test_derived_seeds_differ_and_are_deterministic():
    seeds = RunConfig(seed=0).derived_seeds()
    assert len(set(seeds)) == 3
    assert RunConfig(seed=0).derived_seeds() == seeds
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)  # fit in TOML
    others = {RunConfig(seed=s).derived_seeds() for s in range(50)}
    assert len(others) == 50
    assert all(a != b for a, b in zip(RunConfig(seed=1).derived_seeds(), seeds, strict=True))


@given(st.integers(0, 2**63 - 1))
@settings(max_examples=25, deadline=None)
def test_derived_seeds_are_valid_explicit_seeds(seed):
    derived = RunConfig(seed=seed).derived_seeds()
    explicit = RunConfig(seed=seed, data_seed=derived[0], init_seed=derived[1],
                         batch_seed=derived[2])
    ExperimentConfig(run=explicit)  # validates
    assert explicit.derived_seeds() == derived


def test_explicit_seeds_override_one_at_a_time():
    base = RunConfig(seed=7).derived_seeds()
    for i, name in enumerate(("data_seed", "init_seed", "batch_seed")):
        got = RunConfig(seed=7, **{name: 123}).derived_seeds()
        assert got[i] == 123
        assert [g for j, g in enumerate(got) if j != i] == [b for j, b in enumerate(base)
                                                             if j != i]


def test_optimizer_config_defaults_are_valid_for_every_optimizer():
    for name in OPTIMIZERS:
        ExperimentConfig(optimizer=OptimizerConfig(name=name))
