"""Immutable snapshots of a training session: copied, read-only arrays with a step number."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def freeze(array) -> np.ndarray:
    """A read-only copy."""
    out = np.array(array, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class EvalResult:
    """Loss and accuracy on whole sets, in evaluation mode (accuracy NaN for regression)."""

    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float


@dataclass(frozen=True)
class Divergence:
    """Where and why a run stopped: the first non-finite value."""

    step: int  # the step (1-based) whose computation produced the non-finite value
    layer: int
    layer_name: str
    what: str  # "activation", "loss", "gradient" or "parameter"
    message: str
    grad_norm_before: float  # global gradient norm at the last finite step
    layer_grad_norms_before: np.ndarray | None  # (n_layers,) at the last finite step
    learning_rate: float  # the rate the failing step would have used
    advice: tuple[str, ...]  # what usually helps
    rollback_step: int = 0  # where TrainingSession.rollback() would go back to


@dataclass(frozen=True)
class Snapshot:
    """The state after `step` completed steps. Per-layer arrays are (n_layers,), input side
    first; norms of the last step's gradients (before clipping)."""

    step: int
    epoch: float
    loss: float  # objective of the last step's minibatch (data loss + L2 penalty)
    data_loss: float
    learning_rate: float  # the rate used at the last step
    grad_norm: float  # global L2 norm before clipping
    grad_norm_clipped: float  # ... and after
    clipped: bool
    layer_grad_norm_w: np.ndarray
    layer_grad_norm_b: np.ndarray  # biases and batch-norm parameters
    layer_weight_norm: np.ndarray
    layer_update_ratio: np.ndarray  # ‖Δθ_l‖ / ‖W_l‖
    layer_names: tuple[str, ...]
    diverged: bool
    divergence: Divergence | None
    eval: EvalResult | None  # the latest evaluation (every run.eval_every steps)
    probe: object | None  # the latest engine.probes.Probe

    @property
    def layer_grad_norm(self) -> np.ndarray:
        """Per-layer norm of all of a layer's gradients."""
        return np.hypot(self.layer_grad_norm_w, self.layer_grad_norm_b)
