"""What the worker thread hands the window: run information, history deltas, frames.

All of it is immutable and copied, so the window never reads arrays the worker is writing.
No Qt here: the worker logic and these builders are tested without a display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.config import ExperimentConfig
from engine.snapshot import Snapshot, freeze

GRID = 64  # decision-boundary grid points per axis


@dataclass(frozen=True)
class RunInfo:
    """Facts about a run that change only when it is rebuilt (reset)."""

    config: ExperimentConfig
    layer_names: tuple[str, ...]
    layer_activations: tuple[str, ...]  # hidden activations, then the output's
    layer_shapes: tuple[tuple[int, int], ...]  # (n_in, n_out) per layer
    n_params: int
    task: str  # "classification" or "regression"
    n_classes: int
    feature_names: tuple[str, ...]
    x_train: np.ndarray  # (n, d) model-space inputs, for the data scatter
    y_train: np.ndarray  # (n,) labels or targets
    lr_curve: np.ndarray  # (run.steps,) the schedule's rate for steps 0..steps-1
    extent: tuple[float, float, float, float] | None  # (x0, x1, y0, y1) grid, 2-D data only

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)


@dataclass(frozen=True)
class HistoryDelta:
    """Rows of the per-step history that are new since the last frame."""

    steps: np.ndarray  # (n,) 1-based step numbers
    loss: np.ndarray  # (n,)
    lr: np.ndarray  # (n,)
    grad_norm: np.ndarray  # (n,) before clipping
    grad_layer: np.ndarray  # (n, n_layers) per-layer gradient norms (weights and biases)
    update_ratio: np.ndarray  # (n, n_layers)
    eval_steps: np.ndarray  # (m,) steps of the new evaluations
    train_loss: np.ndarray  # (m,)
    train_accuracy: np.ndarray  # (m,) NaN for regression
    val_loss: np.ndarray  # (m,)
    val_accuracy: np.ndarray  # (m,)

    def __len__(self) -> int:
        return int(self.steps.size)

    @staticmethod
    def empty(n_layers: int) -> HistoryDelta:
        z = np.zeros(0)
        return HistoryDelta(np.zeros(0, np.int64), z, z, z, np.zeros((0, n_layers)),
                            np.zeros((0, n_layers)), np.zeros(0, np.int64), z, z, z, z)

    @staticmethod
    def concat(parts: list[HistoryDelta]) -> HistoryDelta:
        if len(parts) == 1:
            return parts[0]
        fields = HistoryDelta.__dataclass_fields__
        return HistoryDelta(**{f: np.concatenate([getattr(p, f) for p in parts])
                               for f in fields})


@dataclass(frozen=True)
class Boundary:
    """Network outputs on a grid over the data (2-D inputs only)."""

    extent: tuple[float, float, float, float]  # (x0, x1, y0, y1)
    values: np.ndarray  # (GRID, GRID), row = y: P(class 1), or the regression output
    classes: np.ndarray | None  # (GRID, GRID) predicted class (k > 2), else None
    confidence: np.ndarray | None  # (GRID, GRID) probability of the predicted class


@dataclass(frozen=True)
class SharpnessSeries:
    """λmax of the training loss's Hessian measured every few steps, with the rate at which
    a quadratic of that curvature would diverge (2/η for SGD)."""

    steps: np.ndarray  # (m,)
    values: np.ndarray  # (m,) λmax
    thresholds: np.ndarray  # (m,) stability threshold at the rate then in use (NaN: adaptive)


@dataclass(frozen=True)
class Frame:
    """One drain of the mailbox: the newest snapshot and everything since the last one."""

    snapshot: Snapshot
    delta: HistoryDelta
    boundary: Boundary | None
    steps_per_second: float
    running: bool
    sharpness: SharpnessSeries | None = None  # the whole series so far, when tracked
    landscape_path: np.ndarray | None = None  # (T, 2) path in the last slice's plane, current last


def merge_frames(frames: list[Frame]) -> Frame:
    """One frame standing for several in a row: the newest snapshot and boundary, all the
    history rows."""
    if len(frames) == 1:
        return frames[0]
    last = frames[-1]
    boundary = next((f.boundary for f in reversed(frames) if f.boundary is not None), None)
    sharpness = next((f.sharpness for f in reversed(frames) if f.sharpness is not None), None)
    path = next((f.landscape_path for f in reversed(frames) if f.landscape_path is not None),
                None)
    delta = HistoryDelta.concat([f.delta for f in frames])
    return Frame(last.snapshot, delta, boundary, last.steps_per_second, last.running,
                 sharpness, path)


# -- builders (called on the worker thread) --------------------------------------------------
def make_run_info(session) -> RunInfo:
    ds = session.dataset
    layers = session.model.layers()
    x = np.asarray(session.x_train)
    extent = None
    if x.shape[1] == 2 and x.shape[0]:
        lo, hi = x.min(axis=0), x.max(axis=0)
        pad = 0.1 * np.maximum(hi - lo, 1e-9)
        extent = (float(lo[0] - pad[0]), float(hi[0] + pad[0]),
                  float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    return RunInfo(
        config=session.config,
        layer_names=session.layer_names,
        layer_activations=tuple(layer.activation for layer in layers),
        layer_shapes=tuple((layer.n_in, layer.n_out) for layer in layers),
        n_params=session.model.n_params,
        task=ds.task,
        n_classes=ds.n_classes,
        feature_names=tuple(ds.feature_names),
        x_train=freeze(x),
        y_train=np.array(ds.y_train, copy=True),
        lr_curve=freeze(session.lr_curve()),
        extent=extent,
    )


def make_delta(session, after_step: int, after_eval_step: int) -> HistoryDelta:
    """History rows with step > after_step, evaluations with step > after_eval_step."""
    h = session.history
    i = int(np.searchsorted(h.steps, after_step, side="right"))
    j = int(np.searchsorted(h.eval_steps, after_eval_step, side="right"))
    return HistoryDelta(
        steps=h.steps[i:].copy(),
        loss=h.loss[i:].copy(),
        lr=h.lr[i:].copy(),
        grad_norm=h.grad_norm[i:].copy(),
        grad_layer=np.hypot(h.grad_w[i:], h.grad_b[i:]),
        update_ratio=h.update_ratio[i:].copy(),
        eval_steps=h.eval_steps[j:].copy(),
        train_loss=h.eval_train_loss[j:].copy(),
        train_accuracy=h.eval_train_accuracy[j:].copy(),
        val_loss=h.eval_val_loss[j:].copy(),
        val_accuracy=h.eval_val_accuracy[j:].copy(),
    )


def make_boundary(session, info: RunInfo) -> Boundary | None:
    """The network's outputs on a GRID x GRID grid over the training data."""
    if info.extent is None:
        return None
    x0, x1, y0, y1 = info.extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID))
    points = np.column_stack([gx.ravel(), gy.ravel()])
    with np.errstate(all="ignore"):
        out = session.predict(points)  # (GRID*GRID, k)
    if out.shape[1] == 1:
        return Boundary(info.extent, out[:, 0].reshape(GRID, GRID), None, None)
    classes = np.argmax(out, axis=1)
    conf = out[np.arange(out.shape[0]), classes]
    p1 = out[:, 1] if out.shape[1] == 2 else conf
    return Boundary(info.extent, p1.reshape(GRID, GRID), classes.reshape(GRID, GRID),
                    conf.reshape(GRID, GRID))
