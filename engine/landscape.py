"""Loss landscapes: 2-D slices of the training loss around the weights, and 1-D slices.

The loss shown is the training objective in evaluation mode: the mean data loss on the
whole set, batch norm using its running statistics (so a point's loss does not depend on
how the set is split into batches), plus the L2 term l2/2·ΣW² as in training. Grids are
evaluated in parallel over points (landscape_kernels.py), one grid row per call, and the
caller's `cancel` is checked between rows so that a newer request can win: a cancelled
computation returns None.

>>> d1, d2 = random_directions(model, theta, np.random.default_rng(0))
>>> grid = slice_2d(model, theta, x, y, d1, d2, alphas, betas, l2=1e-4)
>>> s = session_slice_2d(session, kind="random", n=41, span=1.0)   # a frozen Slice2D
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.landscape_kernels import PointEvaluator, full_batch_gradient
from engine.snapshot import Snapshot, freeze

Cancel = Callable[[], bool] | threading.Event | None

# How the two directions of a 2-D slice are chosen (keys are Slice2D.kind).
DIRECTION_KINDS = {
    "random": "Two random directions, filter-normalized (Li et al. 2018)",
    "pca": "The two principal directions of the recorded parameter trajectory",
}
MAX_GRID = 101  # points per axis session_slice_2d accepts
PCA_MARGIN = 1.25  # the PCA grid reaches this far beyond the farthest trajectory point


# -- directions ---------------------------------------------------------------------------
def random_directions(model, theta: np.ndarray, rng: np.random.Generator,
                      filter_normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian directions (n_params,) each, filter-normalized to the weights theta.

    A filter is the weights feeding one output unit: column j of a layer's (n_in, n_out)
    weight matrix (a row of PyTorch's (out, in) Linear weight, as in Li et al. 2018). Each
    direction's filter is scaled to the norm of the same filter of theta, so a step of 1
    along it is as large as the weights themselves in every unit, whatever the layer's
    scale. Bias and batch-norm parts are zero. Without `filter_normalize` the weight parts
    are plain N(0, 1). d1 is drawn before d2; the result depends only on rng's state.
    """
    mask = model.weight_mask()
    out = []
    for _ in range(2):
        d = rng.standard_normal(model.n_params)
        d[~mask] = 0.0
        if filter_normalize:
            for l in range(model.n_layers):
                dw, w = model.weights(l, d), model.weights(l, theta)  # (n_in, n_out) views
                d_norm = np.linalg.norm(dw, axis=0)  # (n_out,)
                scale = np.divide(np.linalg.norm(w, axis=0), d_norm,
                                  out=np.zeros_like(d_norm), where=d_norm > 0)
                dw *= scale
        out.append(d)
    return out[0], out[1]


def pca_directions(trajectory: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """The two principal directions of a parameter trajectory, as in Li et al. 2018.

    trajectory: (T, n_params), T >= 3, oldest first. Its points are taken relative to the
    final one, M = θ_t − θ_T, and M's principal components (PCA, i.e. after centring M)
    give the directions. Returns (d1, d2, coords, explained_variance_ratio): d1, d2
    (n_params,) orthonormal; coords (T, 2) the projections (θ_t − θ_T)·d, so the final
    point is at (0, 0); explained_variance_ratio (2,) the share of M's variance along each.
    Signs: the first point has coordinates <= 0 (the path arrives from the lower left).
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[0] < 3:
        raise ValueError(f"trajectory must have shape (T >= 3, n_params), got {traj.shape}")
    m = traj - traj[-1]  # (T, n_params)
    centred = m - m.mean(axis=0)
    # eigenvectors of the small (T, T) Gram matrix rather than an SVD of M: n_params >> T
    gram = centred @ centred.T
    eigval, eigvec = np.linalg.eigh(gram)  # ascending
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    directions: list[np.ndarray] = []
    noise = 1e-10 * max(float(np.linalg.norm(centred)), 1e-300)  # below: rounding, no path
    for k in range(2):
        d = centred.T @ eigvec[:, k]  # (n_params,)
        for prev in directions:  # re-orthogonalize (degenerate or rank-1 paths)
            d -= (d @ prev) * prev
        norm = np.linalg.norm(d)
        if norm <= noise:  # a straight path: any unit vector orthogonal to the first
            d = np.zeros(m.shape[1])
            d[np.argmin(np.abs(directions[0])) if directions else 0] = 1.0
            for prev in directions:
                d -= (d @ prev) * prev
            norm = np.linalg.norm(d)
        d /= norm
        if m[0] @ d > 0:
            d = -d
        directions.append(d)
    d1, d2 = directions
    coords = np.stack([m @ d1, m @ d2], axis=1)  # (T, 2)
    total = float(np.sum(eigval))
    ratio = eigval[:2] / total if total > 0 else np.zeros(2)
    return d1, d2, coords, ratio


def project_onto(points: np.ndarray, center: np.ndarray, d1: np.ndarray,
                 d2: np.ndarray) -> np.ndarray:
    """Coordinates (T, 2) of points (T, n_params) in the plane center + α d1 + β d2
    (least squares, so d1 and d2 need not be orthogonal)."""
    basis = np.stack([d1, d2], axis=1)  # (n_params, 2)
    rel = np.atleast_2d(points) - center
    return np.linalg.solve(basis.T @ basis, basis.T @ rel.T).T


# -- slices -------------------------------------------------------------------------------
def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def _axis(values, name: str) -> np.ndarray:
    a = np.ascontiguousarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers, got "
                         f"shape {a.shape}")
    return a


def _basis(model, *vectors: np.ndarray) -> np.ndarray:
    basis = np.stack([np.asarray(v, dtype=np.float64) for v in vectors])  # (3, n_params)
    if basis.shape != (3, model.n_params):
        raise ValueError(f"parameter vectors must have shape ({model.n_params},), got "
                         f"{[np.shape(v) for v in vectors]}")
    return basis


def slice_2d(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, d1: np.ndarray,
             d2: np.ndarray, alphas, betas, l2: float = 0.0,
             cancel: Cancel = None) -> np.ndarray | None:
    """Loss at θ + α d1 + β d2 on a grid: (len(betas), len(alphas)), or None if cancelled.

    theta, d1, d2: (n_params,); x: (n, n_inputs); y: (n, n_outputs) encoded targets (a
    session's y_train); alphas, betas: 1-D. Row i is β = betas[i]. The loss is the
    evaluation-mode objective (module docstring); non-finite where the network overflows.
    cancel: a callable returning True, or a threading.Event, checked before each row.
    """
    alphas, betas = _axis(alphas, "alphas"), _axis(betas, "betas")
    basis = _basis(model, theta, d1, d2)
    evaluate = PointEvaluator(model, x, y, l2, alphas.size)
    grid = np.empty((betas.size, alphas.size))
    coef = np.empty((alphas.size, 2))
    coef[:, 0] = alphas
    for i, beta in enumerate(betas):
        if _is_cancelled(cancel):
            return None
        coef[:, 1] = beta
        grid[i] = evaluate(basis, coef)
    return grid


def loss_at(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float = 0.0) -> float:
    """The objective a slice shows, at one point theta (n_params,)."""
    zero = np.zeros(model.n_params)
    grid = slice_2d(model, theta, x, y, zero, zero, [0.0], [0.0], l2)
    assert grid is not None  # nothing can cancel it
    return float(grid[0, 0])


def interpolation_path(model, theta0: np.ndarray, theta1: np.ndarray, x: np.ndarray,
                       y: np.ndarray, ts, l2: float = 0.0,
                       cancel: Cancel = None) -> np.ndarray | None:
    """Loss (len(ts),) along (1 − t)·theta0 + t·theta1, e.g. initial → current weights.

    Exactly theta0 at t = 0 and theta1 at t = 1; t outside [0, 1] extrapolates. Evaluated
    in blocks of points with `cancel` checked between them; None if cancelled.
    """
    ts = _axis(ts, "ts")
    basis = _basis(model, np.zeros(model.n_params), theta0, theta1)
    return _path(model, basis, np.stack([1.0 - ts, ts], axis=1), x, y, l2, cancel)


def _path(model, basis, coef, x, y, l2, cancel) -> np.ndarray | None:
    evaluate = PointEvaluator(model, x, y, l2, coef.shape[0])
    per_call = 4 * evaluate.thetas.shape[0]
    out = np.empty(coef.shape[0])
    for start in range(0, coef.shape[0], per_call):
        if _is_cancelled(cancel):
            return None
        out[start : start + per_call] = evaluate(basis, coef[start : start + per_call])
    return out


@dataclass(frozen=True)
class GradientLine:
    """Loss along the negative full-batch gradient against the step size η.

    Where the curve has its minimum is the best plain gradient step; the loss at the current
    learning rate says whether a step lands short (still falling), at the bottom, or on
    the far wall (higher than at η = 0 means the step overshoots: oscillation or worse).
    """

    etas: np.ndarray  # (n,) step sizes, the x axis
    loss: np.ndarray  # (n,) loss at θ − η·g
    center_loss: float  # at η = 0
    grad_norm: float  # ‖g‖; the slope at η = 0 is −‖g‖²
    learning_rate: float  # NaN if none was given
    loss_at_lr: float  # loss at θ − lr·g (NaN if no lr)


def gradient_line(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, etas,
                  l2: float = 0.0, lr: float | None = None,
                  cancel: Cancel = None) -> GradientLine | None:
    """Loss at θ − η·g for each η in etas (1-D), g the full-batch gradient at θ.

    g is the gradient of the same objective (data loss + l2 term) in training mode, i.e.
    the step plain gradient descent with learning rate η takes on the whole set (momentum
    and adaptive optimizers step elsewhere). With batch norm, g uses batch statistics
    while the line is evaluated with running ones, so the slope at 0 is only close to
    −‖g‖². None if cancelled.
    """
    etas = _axis(etas, "etas")
    extra = [] if lr is None else [float(lr)]
    coef = np.zeros((etas.size + 1 + len(extra), 2))
    coef[1:, 0] = np.concatenate([etas, extra])  # point 0: θ itself
    _, grad = full_batch_gradient(model, theta, x, y, l2)
    basis = _basis(model, theta, -grad, np.zeros(model.n_params))
    losses = _path(model, basis, coef, x, y, l2, cancel)
    if losses is None:
        return None
    nan = float("nan")
    return GradientLine(freeze(etas), freeze(losses[1 : etas.size + 1]), float(losses[0]),
                        float(np.linalg.norm(grad)), nan if lr is None else float(lr),
                        float(losses[-1]) if extra else nan)


# -- a session's trajectory and slices -----------------------------------------------------
class TrajectoryRecorder:
    """Copies of a session's parameters every `every` steps, oldest first, for PCA slices.

    Step the session through it (`recorder.step(n)`), or step the session yourself and call
    `record()` after each chunk: it keeps θ when at least `every` steps passed since the last
    kept point. Memory stays bounded: past `max_points` points (or `max_bytes`), every other
    point is dropped (the first and last kept) and `every` doubles. A rollback drops the
    points after the step rolled back to; a reset (a new model) starts a new trajectory.
    """

    def __init__(self, session, every: int = 10, max_points: int = 400,
                 max_bytes: int = 256 * 2**20):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if max_points < 3:
            raise ValueError(f"max_points must be >= 3, got {max_points}")
        self.session = session
        self.every = int(every)
        self._max_points, self._max_bytes = int(max_points), int(max_bytes)
        self._model = None
        self._steps: list[int] = []
        self._thetas: list[np.ndarray] = []
        self.record()

    @property
    def steps(self) -> np.ndarray:
        """(T,) the step of each kept point."""
        return np.array(self._steps, dtype=np.int64)

    @property
    def trajectory(self) -> np.ndarray:
        """(T, n_params) a copy of the kept parameter vectors."""
        return np.array(self._thetas)

    def record(self) -> bool:
        """Keep the current θ if `every` steps passed since the last point; True if kept."""
        s = self.session
        if s.model is not self._model:  # built or reset: a new run
            self._model, self._steps, self._thetas = s.model, [], []
        while self._steps and self._steps[-1] > s.step_count:  # rolled back
            self._steps.pop()
            self._thetas.pop()
        if self._steps and s.step_count - self._steps[-1] < self.every:
            return False
        self._steps.append(s.step_count)
        self._thetas.append(s.model.theta.copy())
        limit = max(3, min(self._max_points, self._max_bytes // (8 * s.model.n_params)))
        if len(self._steps) > limit:
            keep = sorted({*range(0, len(self._steps), 2), len(self._steps) - 1})
            self._steps = [self._steps[i] for i in keep]
            self._thetas = [self._thetas[i] for i in keep]
            self.every *= 2
        return True

    def step(self, n: int) -> Snapshot:
        """session.step(n) in pieces that end where a point is due, recording each."""
        s = self.session
        remaining = int(n)
        snap = s.snapshot()
        while remaining > 0 and not s.diverged:
            due = self.every - (s.step_count - self._steps[-1]) if self._steps else 1
            before = s.step_count
            snap = s.step(min(remaining, max(due, 1)))
            self.record()
            if s.step_count == before:
                break
            remaining -= s.step_count - before
        return snap


@dataclass(frozen=True)
class Slice2D:
    """A 2-D slice of the training loss around a session's weights at `step`."""

    kind: str  # a key of DIRECTION_KINDS
    step: int
    alphas: np.ndarray  # (n,) coordinate along d1
    betas: np.ndarray  # (n,) coordinate along d2
    loss: np.ndarray  # (n, n): loss[i, j] at θ + alphas[j]·d1 + betas[i]·d2
    center_loss: float  # at θ itself (α = β = 0)
    path: np.ndarray | None = None  # pca: (T, 2) the trajectory's coordinates, (0, 0) last
    explained_variance: np.ndarray | None = None  # pca: (2,) share of the path's variance


def session_slice_2d(session, kind: str = "random", n: int = 41, span: float = 1.0,
                     seed: int = 0, trajectory=None, cancel: Cancel = None) -> Slice2D | None:
    """A 2-D slice around the session's current weights on its whole training set.

    kind "random": filter-normalized random directions from `seed`; α, β in [−span, span]
    (span 1 = a step as large as the weights). kind "pca": the principal directions of
    `trajectory` (a TrajectoryRecorder or a (T, n_params) array, oldest first; the current
    θ is appended as its final point if it is not already); d1, d2 are unit vectors, and α,
    β span ±span·PCA_MARGIN times the farthest point of the path (same range on both axes,
    so contours keep their shape). n: points per axis (2-101). None if cancelled.
    """
    if kind not in DIRECTION_KINDS:
        raise ValueError(f"kind must be one of {', '.join(DIRECTION_KINDS)}, got {kind!r}")
    if not 2 <= n <= MAX_GRID:
        raise ValueError(f"n must be between 2 and {MAX_GRID}, got {n}")
    if not span > 0:
        raise ValueError(f"span must be > 0, got {span}")
    model = session.model
    theta = model.theta.copy()
    path = ratio = None
    if kind == "random":
        d1, d2 = random_directions(model, theta, np.random.default_rng(seed))
        half = float(span)
    else:
        if trajectory is None:
            raise ValueError("kind 'pca' needs a trajectory (a TrajectoryRecorder or an "
                             "array of parameter vectors)")
        traj = trajectory.trajectory if isinstance(trajectory, TrajectoryRecorder) \
            else np.asarray(trajectory, dtype=np.float64)
        if traj.ndim == 2 and traj.shape[0] and not np.array_equal(traj[-1], theta):
            traj = np.vstack([traj, theta])
        d1, d2, path, ratio = pca_directions(traj)
        half = float(span) * PCA_MARGIN * max(float(np.max(np.abs(path))), 1e-12)
    axis = np.linspace(-half, half, n)
    l2 = session.config.regularization.l2
    grid = slice_2d(model, theta, session.x_train, session.y_train, d1, d2, axis, axis, l2,
                    cancel)
    if grid is None:
        return None
    center = loss_at(model, theta, session.x_train, session.y_train, l2)
    return Slice2D(kind, session.step_count, freeze(axis), freeze(axis), freeze(grid), center,
                   None if path is None else freeze(path),
                   None if ratio is None else freeze(ratio))


def session_interpolation(session, n: int = 51, cancel: Cancel = None
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    """(ts (n,), loss (n,)) from the initial (t = 0) to the current weights (t = 1)."""
    ts = np.linspace(0.0, 1.0, n)
    loss = interpolation_path(session.model, session.initial_theta, session.model.theta,
                              session.x_train, session.y_train, ts,
                              session.config.regularization.l2, cancel)
    return None if loss is None else (freeze(ts), freeze(loss))


def session_gradient_line(session, n: int = 41, max_factor: float = 3.0,
                          cancel: Cancel = None) -> GradientLine | None:
    """The gradient line for η in [0, max_factor·lr], lr the rate of the next step."""
    lr = float(session.lr_curve_range(session.step_count, 1)[0])
    etas = np.linspace(0.0, max_factor * lr, n)
    return gradient_line(session.model, session.model.theta, session.x_train,
                         session.y_train, etas, session.config.regularization.l2, lr, cancel)
