"""Learning-rate dynamics: sharpness (top Hessian eigenvalue) and the learning-rate range test.

Sharpness says in advance when a rate is too large. On a quadratic ½θᵀHθ gradient descent
multiplies the component along an eigenvector of H with eigenvalue λ by (1 − ηλ) each step:
it oscillates (changes sign) once ηλ > 1 and diverges once ηλ > 2. So the largest eigenvalue
λmax against 2/η tells how close a run is to blowing up; Cohen et al. 2021 ("Gradient
descent on neural networks typically occurs at the edge of stability") observed full-batch
training drive λmax up to about 2/η and hover there. With momentum μ the limit is
2(1 + μ)/η (heavy ball) and (2 + 2μ)/((1 + 2μ)η) (Nesterov); see `stability_threshold`.

The range test (Smith 2017, "Cyclical learning rates"; fastai's ``lr_find``) raises the rate
exponentially over a short run and suggests one from where the smoothed loss falls fastest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from engine.config import ExperimentConfig, OptimizerConfig
from engine.session import TrainingSession
from engine.snapshot import freeze

HVP_STEP = 1e-5  # finite-difference step of the Hessian-vector product, relative to 1 + ‖θ‖
SHARPNESS_SEED = 0  # the power iteration's start vector, so a measurement is reproducible


class HessianEigen(NamedTuple):
    """Result of `top_hessian_eigenvalue`; unpacks as ``lam, vector, iterations``."""

    value: float  # the eigenvalue (signed)
    vector: np.ndarray  # (n_params,) unit eigenvector estimate
    iterations: int  # Hessian-vector products used


# -- sharpness ------------------------------------------------------------------------------
def hessian_vector_product(model, theta: np.ndarray, v: np.ndarray, x: np.ndarray,
                           y: np.ndarray, l2: float = 0.0, eps: float | None = None
                           ) -> np.ndarray:
    """Hv ≈ (g(θ + εv) − g(θ − εv)) / 2ε for the training objective (data loss + l2/2·ΣW²).

    ε = HVP_STEP·(1 + ‖θ‖)/‖v‖ unless given: central differences are accurate to O(ε²), and
    scaling with ‖θ‖ keeps the perturbation above rounding for large weights. Batch norm is
    in training mode (batch statistics), like the gradient the optimizer sees.

    Parameters
    ----------
    model
        Anything with ``loss_and_gradients(x, y, l2, theta=...) -> (loss, grad)`` such as
        `engine.model.Model`.
    theta, v : (n_params,)
        Parameters and direction. x: (rows, n_in); y: (rows, n_out) encoded targets.
    """
    vnorm = float(np.linalg.norm(v))
    if eps is None:
        eps = HVP_STEP * (1.0 + float(np.linalg.norm(theta))) / max(vnorm, 1e-300)
    _, g_plus = model.loss_and_gradients(x, y, l2, theta=np.ascontiguousarray(theta + eps * v))
    _, g_minus = model.loss_and_gradients(x, y, l2, theta=np.ascontiguousarray(theta - eps * v))
    return (g_plus - g_minus) / (2.0 * eps)


def top_hessian_eigenvalue(
    model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float = 0.0, iters: int = 50,
    tol: float = 1e-4, rng: np.random.Generator | None = None, start: np.ndarray | None = None,
    which: str = "magnitude",
) -> HessianEigen:
    """Largest Hessian eigenvalue of the training objective at θ, by power iteration.

    Parameters
    ----------
    model
        `engine.model.Model` (or anything with its ``loss_and_gradients``).
    theta : (n_params,)
        Where to measure (not changed).
    x : (rows, n_in)
        Inputs; y : (rows, n_out) encoded targets (`engine.model.encode_targets`).
    l2 : float
        The L2 coefficient of the objective (adds l2 to the weights' curvature).
    iters : int
        At most this many power steps (each costs two gradients).
    tol : float
        Stop when the estimate changes by less than tol relative to its size.
    rng, start
        Random start vector (default generator seeded with SHARPNESS_SEED) or an explicit one
        (e.g. the previous measurement's vector: a warm start converges in a few steps).
    which : {"magnitude", "largest"}
        "magnitude": the eigenvalue of largest |λ|, with its sign (negative where a negative
        direction dominates). "largest": the largest algebraic λ, found by a second power
        iteration on H − λ₁I when the first gave λ₁ < 0 (what the 2/η comparison needs).

    Returns
    -------
    HessianEigen
        ``(value, vector, iterations)``; value NaN if a gradient was not finite.
    """
    if which not in ("magnitude", "largest"):
        raise ValueError(f"which must be 'magnitude' or 'largest', got {which!r}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    rng = np.random.default_rng(SHARPNESS_SEED) if rng is None else rng
    v0 = rng.standard_normal(theta.size) if start is None else np.array(start, dtype=np.float64)

    def hvp(v: np.ndarray) -> np.ndarray:
        return hessian_vector_product(model, theta, v, x, y, l2)

    lam, vec, used = _power(hvp, v0, iters, tol)
    if which == "largest" and lam < 0:
        shift = lam  # H − λ₁I is positive semi-definite; its top eigenvalue is λmax − λ₁
        mu, vec2, used2 = _power(lambda v: hvp(v) - shift * v, rng.standard_normal(theta.size),
                                 iters, tol)
        if math.isfinite(mu):
            lam, vec = mu + shift, vec2
        used += used2
    return HessianEigen(float(lam), vec, used)


def _power(matvec: Callable[[np.ndarray], np.ndarray], v: np.ndarray, iters: int, tol: float
           ) -> tuple[float, np.ndarray, int]:
    """Power iteration; the Rayleigh quotient vᵀAv of unit v is the estimate."""
    v = v / np.linalg.norm(v)
    lam = float("nan")
    for k in range(1, iters + 1):
        w = matvec(v)
        new = float(v @ w)
        norm = float(np.linalg.norm(w))
        if not (math.isfinite(new) and math.isfinite(norm)):
            return float("nan"), v, k
        if norm == 0.0:
            return 0.0, v, k
        done = k > 1 and abs(new - lam) <= tol * max(abs(new), 1e-12)
        lam, v = new, w / norm
        if done:
            return lam, v, k
    return lam, v, iters


def session_sharpness(session: TrainingSession, rows: int = 512, iters: int = 50,
                      tol: float = 1e-4) -> float:
    """λmax (largest algebraic Hessian eigenvalue) of the session's training objective at
    its current parameters, on the first `rows` training points (the probe batch with the
    default 512). Call it from the thread that owns the session, between steps."""
    return _measure(session, rows, iters, tol, None).value


def _measure(session: TrainingSession, rows: int, iters: int, tol: float,
             start: np.ndarray | None) -> HessianEigen:
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    m = session.model
    return top_hessian_eigenvalue(
        m, m.theta.copy(), session.x_train[:rows], session.y_train[:rows],
        session.config.regularization.l2, iters, tol, start=start, which="largest",
    )


def stability_threshold(optimizer: OptimizerConfig, lr: float | None = None) -> float:
    """The sharpness above which the optimizer diverges on a quadratic: 2/η for SGD,
    2(1 + μ)/η with momentum, (2 + 2μ)/((1 + 2μ)η) for Nesterov; NaN for the adaptive
    optimizers (their limit depends on the preconditioner, not on λmax alone)."""
    eta = optimizer.learning_rate if lr is None else lr
    mu = optimizer.momentum
    if optimizer.name == "sgd":
        return 2.0 / eta
    if optimizer.name == "momentum":
        return 2.0 * (1.0 + mu) / eta
    if optimizer.name == "nesterov":
        return (2.0 + 2.0 * mu) / ((1.0 + 2.0 * mu) * eta)
    return float("nan")


class SharpnessTracker:
    """λmax every `every` steps, warm-started from the previous eigenvector.

    >>> tracker = SharpnessTracker(every=50)
    >>> tracker.update(session)      # after each chunk of steps; measures when due
    >>> tracker.steps, tracker.values, tracker.thresholds   # plot λmax against 2/η
    """

    def __init__(self, every: int = 50, rows: int = 512, iters: int = 30, tol: float = 1e-3):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.rows, self.iters, self.tol = every, rows, iters, tol
        self.reset()

    def reset(self) -> None:
        self._steps: list[int] = []
        self._values: list[float] = []
        self._thresholds: list[float] = []
        self._vector: np.ndarray | None = None

    def due(self, step: int) -> bool:
        """True when `step` is a multiple of `every` not measured yet."""
        return step % self.every == 0 and (not self._steps or self._steps[-1] != step)

    def update(self, session: TrainingSession) -> float | None:
        """Measure if due at the session's step; returns λmax or None."""
        if not self.due(session.step_count) or session.diverged:
            return None
        return self.measure(session)

    def measure(self, session: TrainingSession) -> float:
        """Measure now and record (step, λmax, stability threshold at the current rate)."""
        start = self._vector
        if start is not None and start.size != session.model.n_params:
            start = None
        result = _measure(session, self.rows, self.iters, self.tol, start)
        if math.isfinite(result.value):
            self._vector = result.vector
        c = session.config
        lr = float(session.lr_curve_range(session.step_count, 1)[0])  # the next step's rate
        self._steps.append(session.step_count)
        self._values.append(result.value)
        self._thresholds.append(stability_threshold(c.optimizer, lr))
        return result.value

    @property
    def steps(self) -> np.ndarray:
        return np.array(self._steps, dtype=np.int64)

    @property
    def values(self) -> np.ndarray:
        return np.array(self._values)

    @property
    def thresholds(self) -> np.ndarray:
        return np.array(self._thresholds)


# -- learning-rate range test ---------------------------------------------------------------
class RangeTestCancelled(Exception):
    """`lr_range_test` was cancelled through its `cancel` callback."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth
class RangeTestRun:
    """One seed's range test. lrs, losses and smoothed are (k,), k <= n_steps."""

    seed: int | None
    lrs: np.ndarray  # the rate of each completed step (increasing)
    losses: np.ndarray  # minibatch objective of each step
    smoothed: np.ndarray  # exponential moving average with bias correction
    stopped: str  # "completed", "exceeded" (smoothed > stop_factor × best) or "diverged"


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth
class RangeTestResult:
    """Range tests over several seeds, their band and the suggested rates.

    grid: (n_steps,) the rates tried; median, low, high: (n_steps,) the median, minimum and
    maximum smoothed loss over the seeds that reached each rate (NaN where none did);
    count: (n_steps,) how many did. Suggestions are read from the median over the rates
    every seed reached, without the first tenth and the last 5 points (as fastai does); the
    slope is taken over windows of 1/20 of those points (0.4 decades at the defaults).
    """

    runs: tuple[RangeTestRun, ...]
    grid: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray
    steepest: float  # rate where the median smoothed loss falls fastest per decade of rate
    min_div_10: float  # rate of the lowest smoothed loss ÷ 10 (at least lr_min)
    lr_min: float
    lr_max: float


def lr_range_test(
    config: ExperimentConfig, n_steps: int = 200, lr_min: float = 1e-7, lr_max: float = 10.0,
    seeds: Sequence[int] | None = (0, 1, 2), smooth: float = 0.98, stop_factor: float = 4.0,
    cancel: Callable[[], bool] | None = None,
) -> RangeTestResult:
    """Learning-rate range test (Smith 2017; fastai ``lr_find``).

    For each seed, a fresh session from its initialization takes up to `n_steps` minibatch
    steps with the rate raised exponentially, η_k = lr_min·(lr_max/lr_min)^(k/(n_steps−1)).
    The loss is smoothed, a_k = β·a_{k−1} + (1 − β)·L_k, and bias-corrected, a_k/(1 − β^(k+1)).
    A run stops when the smoothed loss exceeds `stop_factor` × its best, or diverges.

    Parameters
    ----------
    config : ExperimentConfig
        The run to test. Its schedule is replaced by a constant one (the test sets the rate
        at every step); optimizer, clipping, L2 and batch size are kept.
    seeds : sequence of int or None
        Each seed replaces the initialization and minibatch-order seeds (the data stay those
        of `config`). None: one run with `config`'s own seeds.
    smooth : float
        β in [0, 1).
    cancel : callable or None
        Called before every step; returning True raises `RangeTestCancelled`.

    Returns
    -------
    RangeTestResult
    """
    _check_range_args(n_steps, lr_min, lr_max, smooth, stop_factor, seeds)
    grid = lr_min * (lr_max / lr_min) ** (np.arange(n_steps) / (n_steps - 1))
    data_seed = config.run.derived_seeds()[0]
    base = config.replace(**{"schedule.name": "constant", "schedule.warmup_steps": 0,
                             "run.eval_every": n_steps + 1})
    runs, dataset = [], None
    for seed in [None] if seeds is None else list(seeds):
        cfg = base if seed is None else base.replace(**{
            "run.seed": int(seed), "run.data_seed": data_seed, "run.init_seed": None,
            "run.batch_seed": None})
        session = TrainingSession(cfg, dataset=dataset, auto_probe=False)
        dataset = session.dataset  # the same data for every seed: generate it once
        runs.append(_one_run(session, seed, grid, smooth, stop_factor, cancel))
    return _summarize(tuple(runs), grid, lr_min, lr_max)


def _check_range_args(n_steps, lr_min, lr_max, smooth, stop_factor, seeds) -> None:
    if not (isinstance(n_steps, int) and n_steps >= 2):
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if not (0 < lr_min < lr_max <= 1e6):
        raise ValueError(f"need 0 < lr_min < lr_max <= 1e6, got lr_min={lr_min!r}, "
                         f"lr_max={lr_max!r}")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    if not stop_factor > 1.0:
        raise ValueError(f"stop_factor must be > 1, got {stop_factor!r}")
    if seeds is not None and len(seeds) == 0:
        raise ValueError("seeds must name at least one seed (or be None), got ()")


def _one_run(session: TrainingSession, seed: int | None, grid: np.ndarray, smooth: float,
             stop_factor: float, cancel: Callable[[], bool] | None) -> RangeTestRun:
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, "completed"
    for k, lr in enumerate(grid):
        if cancel is not None and cancel():
            raise RangeTestCancelled(f"range test cancelled at step {k}")
        session.set_learning_rate(float(lr))
        snap = session.step(1)
        if snap.diverged or not math.isfinite(snap.loss):
            stopped = "diverged"
            break
        avg = smooth * avg + (1.0 - smooth) * snap.loss
        value = avg / (1.0 - smooth ** (k + 1))
        lrs.append(snap.learning_rate)  # the rate the session actually used
        losses.append(snap.loss)
        smoothed.append(value)
        best = min(best, value)
        if value > stop_factor * best:
            stopped = "exceeded"
            break
    return RangeTestRun(seed, freeze(lrs), freeze(losses), freeze(smoothed), stopped)


def _summarize(runs: tuple[RangeTestRun, ...], grid: np.ndarray, lr_min: float,
               lr_max: float) -> RangeTestResult:
    n = grid.size
    table = np.full((len(runs), n), np.nan)  # (seeds, n_steps)
    for i, run in enumerate(runs):
        table[i, : run.smoothed.size] = run.smoothed
    count = np.sum(np.isfinite(table), axis=0)
    median, low, high = (np.full(n, np.nan) for _ in range(3))
    some = count > 0
    if some.any():
        cols = table[:, some]
        median[some] = np.nanmedian(cols, axis=0)
        low[some] = np.nanmin(cols, axis=0)
        high[some] = np.nanmax(cols, axis=0)
    common = int(min(run.smoothed.size for run in runs))  # every seed got this far
    steepest, min_div_10 = _suggest(grid[:common], median[:common], lr_min)
    return RangeTestResult(
        runs=runs, grid=freeze(grid), median=freeze(median), low=freeze(low),
        high=freeze(high), count=freeze(count), steepest=float(min(steepest, lr_max)),
        min_div_10=float(min(max(min_div_10, lr_min), lr_max)), lr_min=lr_min, lr_max=lr_max,
    )


def _suggest(lrs: np.ndarray, losses: np.ndarray, lr_min: float) -> tuple[float, float]:
    """(steepest, minimum ÷ 10) like fastai: skip the first tenth and the last 5 points."""
    lo, hi = lrs.size // 10, lrs.size - 5
    if hi - lo < 2:  # too short to trim
        lo, hi = 0, lrs.size
    if hi - lo < 2:
        return lr_min, lr_min
    lrs, losses = lrs[lo:hi], losses[lo:hi]
    # slope per unit of log rate over `w` points: neighbouring differences are mostly
    # minibatch noise while the rate is still too small to matter
    w = max(1, min(lrs.size // 20, lrs.size - 1))
    log_lr = np.log(lrs)
    slope = (losses[w:] - losses[:-w]) / (log_lr[w:] - log_lr[:-w])
    i = int(np.argmin(slope))
    steepest = math.exp(0.5 * (log_lr[i] + log_lr[i + w]))  # the window's middle
    return steepest, float(lrs[int(np.argmin(losses))] / 10.0)


__all__ = ["HVP_STEP", "HessianEigen", "RangeTestCancelled", "RangeTestResult",
           "RangeTestRun", "SharpnessTracker", "hessian_vector_product", "lr_range_test",
           "session_sharpness", "stability_threshold", "top_hessian_eigenvalue"]
