"""Gradient Lab's engine: trains small deep networks step by step and measures everything.

numpy + numba, no Qt. The public API:

>>> import engine
>>> session = engine.session_from_toml("resources/experiments/sigmoid_deep.toml")
>>> snap = session.step(100)                 # an immutable Snapshot
>>> snap.loss, snap.layer_grad_norm          # per-layer gradient norms, input side first
>>> w, b = session.get_layer(0)              # numpy copies; set_layer(0, w, b) writes
>>> loss, grads = session.loss_and_gradients(x, y)   # [(dW, db), ...] without stepping

Configurations are frozen dataclasses (`ExperimentConfig`), read and written as TOML.
Every choice is a registry (ACTIVATIONS, INITIALIZERS, OPTIMIZERS, SCHEDULES, LOSSES,
DATASETS, CLIP_KINDS) whose keys are the names a configuration uses.
"""

from __future__ import annotations

from engine import _jit  # noqa: F401  (sets numba's cache folder before numba loads)
from engine.activations import ACTIVATIONS
from engine.clipping import CLIP_KINDS
from engine.config import ConfigError, ExperimentConfig
from engine.config import load as load_config
from engine.config import loads as config_from_toml_text
from engine.config import save as save_config
from engine.data import DATASETS, Dataset, make_dataset, read_csv
from engine.dynamics import (
    RangeTestResult,
    SharpnessTracker,
    lr_range_test,
    session_sharpness,
    stability_threshold,
    top_hessian_eigenvalue,
)
from engine.initializers import INITIALIZERS
from engine.landscape import (
    DIRECTION_KINDS,
    GradientLine,
    Slice2D,
    TrajectoryRecorder,
    session_gradient_line,
    session_interpolation,
    session_slice_2d,
)
from engine.losses import LOSSES
from engine.optimizers import OPTIMIZERS, Optimizer
from engine.schedules import SCHEDULES, lr_at, lr_curve
from engine.session import TrainingSession
from engine.snapshot import Divergence, EvalResult, Snapshot
from engine.surfaces import (
    SURFACES,
    OptimizerPath,
    Surface,
    make_surface,
    run_many,
    run_optimizer,
    slide_presets,
)

__version__ = "0.1.0"


def session_from_dict(data: dict) -> TrainingSession:
    """A session from a nested dict of settings (validated like a TOML file)."""
    return TrainingSession(ExperimentConfig.from_dict(data))


def session_from_toml(path) -> TrainingSession:
    """A session from an experiment TOML file."""
    return TrainingSession(load_config(path))


__all__ = [
    "ACTIVATIONS", "CLIP_KINDS", "DATASETS", "INITIALIZERS", "LOSSES", "OPTIMIZERS",
    "SCHEDULES", "ConfigError", "Dataset", "Divergence", "EvalResult", "ExperimentConfig",
    "Optimizer", "Snapshot", "TrainingSession", "config_from_toml_text", "load_config",
    "lr_at", "lr_curve", "make_dataset", "read_csv", "save_config", "session_from_dict",
    "session_from_toml",
    # learning-rate dynamics and the optimizer playground
    "OptimizerPath", "RangeTestResult", "SURFACES", "SharpnessTracker", "Surface",
    "lr_range_test", "make_surface", "run_many", "run_optimizer", "session_sharpness",
    "slide_presets", "stability_threshold", "top_hessian_eigenvalue",
    # loss landscapes
    "DIRECTION_KINDS", "GradientLine", "Slice2D", "TrajectoryRecorder", "session_gradient_line",
    "session_interpolation", "session_slice_2d",
]
