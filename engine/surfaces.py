"""Analytic two-parameter loss surfaces and the paths the engine's optimizers take on them.

The optimizer playground: the same `Optimizer.update_params` kernel and the same clipping
kernel as training, on a 2-element parameter vector p = (x, y), so a path here is what the
optimizer would do on a network whose loss looked like this surface.

>>> s = make_surface("quadratic", lam1=1.0, lam2=10.0)
>>> path = run_optimizer(s, "momentum", lr=0.05, steps=100, momentum=0.9)
>>> path.points.shape, path.diverged           # ((101, 2), False)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.clipping import CLIP_KINDS
from engine.clipping import clip as clip_kernel
from engine.config import ConfigError, OptimizerConfig
from engine.optimizers import Optimizer
from engine.snapshot import freeze

Point = tuple[float, float]
HYPER_FIELDS = ("momentum", "beta1", "beta2", "rho", "epsilon", "weight_decay")


@dataclass(frozen=True)
class Surface:
    """One entry of `SURFACES`.

    Attributes
    ----------
    name, label, description, formula : str
        Registry key, combo-box text, one-line tooltip and the formula in Unicode.
    f : callable
        ``f(p)``: p is (..., 2) (x, y); returns the loss, shape (...). ``float(f(p))`` for
        one point.
    grad : callable
        ``grad(p)``: (..., 2) -> (..., 2), the exact gradient.
    start : (float, float)
        A start point that shows what the surface is about.
    extent : (x_min, x_max, y_min, y_max)
        What to draw.
    minima, saddle_points : tuple of (float, float)
        Known critical points, exact (gradient zero up to rounding).
    curvatures : tuple of float
        The Hessian's eigenvalues where they are constant (quadratic, saddle), else ().
    params : tuple of (str, float)
        The parameters it was made with (`make_surface`).
    """

    name: str
    label: str
    description: str
    formula: str
    f: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    start: Point
    extent: tuple[float, float, float, float]
    minima: tuple[Point, ...] = ()
    saddle_points: tuple[Point, ...] = ()
    curvatures: tuple[float, ...] = ()
    params: tuple[tuple[str, float], ...] = ()


def _xy(p) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    if p.shape[-1:] != (2,):
        raise ValueError(f"points must have shape (..., 2), got {p.shape}")
    return p[..., 0], p[..., 1]


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be > 0, got {value!r}")


# -- the surfaces ----------------------------------------------------------------------------
def quadratic(lam1: float = 1.0, lam2: float = 10.0) -> Surface:
    """Bowl ½(λ₁x² + λ₂y²): Hessian diag(λ₁, λ₂), condition number max(λ)/min(λ)."""
    _check_positive("lam1", lam1)
    _check_positive("lam2", lam2)

    def f(p):
        x, y = _xy(p)
        return 0.5 * (lam1 * x * x + lam2 * y * y)

    def grad(p):
        x, y = _xy(p)
        return np.stack([lam1 * x, lam2 * y], axis=-1)

    return Surface(
        "quadratic", "Quadratic bowl",
        f"An elongated bowl with curvatures {lam1:g} and {lam2:g} (condition number "
        f"{max(lam1, lam2) / min(lam1, lam2):g}): gradient descent zig-zags across it.",
        "L = ½(λ₁x² + λ₂y²)", f, grad, start=(-4.0, 2.0), extent=(-5.0, 5.0, -3.0, 3.0),
        minima=((0.0, 0.0),), curvatures=(float(lam1), float(lam2)),
        params=(("lam1", float(lam1)), ("lam2", float(lam2))),
    )


def saddle() -> Surface:
    """x² − y²: a saddle at the origin; unbounded below along y."""

    def f(p):
        x, y = _xy(p)
        return x * x - y * y

    def grad(p):
        x, y = _xy(p)
        return np.stack([2.0 * x, -2.0 * y], axis=-1)

    return Surface(
        "saddle", "Saddle",
        "Downhill along x towards the origin, then away along y: started near y = 0, "
        "plain gradient descent lingers at the saddle before it escapes.",
        "L = x² − y²", f, grad, start=(-2.0, 1e-3), extent=(-2.5, 2.5, -2.5, 2.5),
        saddle_points=((0.0, 0.0),), curvatures=(2.0, -2.0),
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """(a − x)² + b(y − x²)²: a curved, flat-bottomed valley with its minimum at (a, a²)."""
    _check_positive("b", b)
    if not math.isfinite(a):
        raise ValueError(f"a must be a finite number, got {a!r}")

    def f(p):
        x, y = _xy(p)
        return (a - x) ** 2 + b * (y - x * x) ** 2

    def grad(p):
        x, y = _xy(p)
        r = y - x * x
        return np.stack([-2.0 * (a - x) - 4.0 * b * x * r, 2.0 * b * r], axis=-1)

    return Surface(
        "rosenbrock", "Rosenbrock valley",
        "A narrow curved valley: finding it is easy, following its flat floor to the "
        "minimum is slow.",
        "L = (a − x)² + b(y − x²)²", f, grad, start=(-1.2, 1.0),
        extent=(-2.0, 2.0, -1.0, 3.0), minima=((float(a), float(a * a)),),
        params=(("a", float(a)), ("b", float(b))),
    )


def multi_minima() -> Surface:
    """g(x) + h(y), two tilted double wells: four minima of different depths.

    g'(x) = x(x + 1)(x − 2) and h'(y) = y(y + 1.5)(y − 1), so the minima are exactly at
    x ∈ {−1, 2}, y ∈ {−1.5, 1}; the global one is (2, −1.5), the shallowest (−1, 1).
    """

    def f(p):
        x, y = _xy(p)
        return (x**4 / 4 - x**3 / 3 - x * x) + (y**4 / 4 + y**3 / 6 - 0.75 * y * y)

    def grad(p):
        x, y = _xy(p)
        return np.stack([x * (x + 1.0) * (x - 2.0), y * (y + 1.5) * (y - 1.0)], axis=-1)

    return Surface(
        "multi_minima", "Several minima",
        "Four basins of different depths: where an optimizer ends up depends on the start, "
        "the rate and momentum, not only on where the lowest point is.",
        "L = (x⁴/4 − x³/3 − x²) + (y⁴/4 + y³/6 − ¾y²)", f, grad, start=(-0.2, 0.3),
        extent=(-2.0, 3.0, -2.5, 2.0),
        minima=((2.0, -1.5), (2.0, 1.0), (-1.0, -1.5), (-1.0, 1.0)),
        saddle_points=((0.0, -1.5), (0.0, 1.0), (-1.0, 0.0), (2.0, 0.0)),
    )


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * h))  # no overflow for large |h|


def rnn_cliff(steps: int = 50, h0: float = 0.5, target: float = 0.7) -> Surface:
    """One-unit RNN of Pascanu et al. 2013 ("On the difficulty of training recurrent neural
    networks", the error-surface figure): parameters p = (w, b).

    hₜ = w·σ(hₜ₋₁) + b for t = 1..T (T = `steps`) from h₀, loss (h_T − target)², σ the
    logistic sigmoid; defaults T = 50, h₀ = 0.5, target 0.7. For w > 4 the map
    h ↦ wσ(h) + b has two stable fixed points for b near −w/2; crossing the boundary of
    their basins changes h_T abruptly, so the loss has a steep wall (a "cliff") where the
    gradient is huge. The global minima form a curve; (0, target) is one exact point on it.
    The gradient is back-propagated through time exactly.
    """
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)  # a spin box may hand over 50.0
    if not (isinstance(steps, int | np.integer) and 1 <= steps <= 1000):
        raise ValueError(f"steps must be an integer in 1..1000, got {steps!r}")
    for name, value in (("h0", h0), ("target", target)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    n = int(steps)

    def forward(p) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        w, b = _xy(p)
        h = np.full(np.broadcast(w, b).shape, float(h0))
        hs = [h]
        for _ in range(n):
            h = w * _sigmoid(h) + b
            hs.append(h)
        return w, b, hs

    def f(p):
        _, _, hs = forward(p)
        return (hs[-1] - target) ** 2

    def grad(p):
        w, b, hs = forward(p)
        dh = 2.0 * (hs[-1] - target)  # dL/dh_T
        dw = np.zeros_like(dh)
        db = np.zeros_like(dh)
        for t in range(n, 0, -1):  # h_t = w σ(h_{t-1}) + b
            s = _sigmoid(hs[t - 1])
            dw = dw + dh * s
            db = db + dh
            dh = dh * w * s * (1.0 - s)
        return np.stack([dw, db], axis=-1)

    return Surface(
        "rnn_cliff", "RNN cliff (Pascanu 2013)",
        f"A one-unit recurrent network run for {n} steps: a flat plateau ends in a steep "
        "wall where gradients explode; clipping the gradient norm keeps the step bounded.",
        "hₜ = w·σ(hₜ₋₁) + b,  L = (h_T − target)²,  p = (w, b)", f, grad,
        start=(7.0, -3.9), extent=(-1.0, 10.0, -6.0, 2.0), minima=((0.0, float(target)),),
        params=(("steps", float(n)), ("h0", float(h0)), ("target", float(target))),
    )


_FACTORIES: dict[str, Callable[..., Surface]] = {
    "quadratic": quadratic, "saddle": saddle, "rosenbrock": rosenbrock,
    "multi_minima": multi_minima, "rnn_cliff": rnn_cliff,
}
SURFACES: dict[str, Surface] = {name: make() for name, make in _FACTORIES.items()}


def make_surface(name: str, **params: float) -> Surface:
    """A registry surface with its parameters changed, e.g. ``make_surface("quadratic",
    lam1=1, lam2=100)``. Raises ValueError naming an unknown surface, parameter or value."""
    make = _FACTORIES.get(name)
    if make is None:
        raise ValueError(f"surface must be one of {', '.join(_FACTORIES)}; got {name!r}")
    known = list(inspect.signature(make).parameters)
    for key in params:
        if key not in known:
            has = ", ".join(known) if known else "no parameters"
            raise ValueError(f"surface {name!r} has no parameter {key!r} (it has {has})")
    return make(**params)


# -- optimizer paths -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth
class OptimizerPath:
    """Where one optimizer went on a surface. Arrays are read-only copies.

    points: (k + 1, 2) θ₀..θ_k, all finite; losses: (k + 1,); grad_norms: (k,) ‖g‖ before
    clipping at each step; clipped: (k,) bool, True where the step was clipped. If the run
    diverged, step k + 1 = `divergence_step` produced the first non-finite `divergence_what`
    ("gradient", "parameter" or "loss") and the path ends at the last finite point.
    """

    surface: str
    optimizer: str
    lr: float
    clip: tuple[str, float]
    hyper: tuple[tuple[str, float], ...]
    points: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    clipped: np.ndarray
    diverged: bool
    divergence_step: int  # 0 when the run did not diverge
    divergence_what: str  # "" when the run did not diverge
    message: str

    @property
    def steps(self) -> int:
        """Steps completed (finite)."""
        return int(self.points.shape[0] - 1)


def run_optimizer(
    surface: Surface, optimizer_name: str, lr: float, start: Iterable[float] | None = None,
    steps: int = 100, clip: tuple[str, float] = ("none", 1.0), **hyper: float,
) -> OptimizerPath:
    """Run one of the engine's optimizers for `steps` steps on a surface.

    Parameters
    ----------
    surface : Surface
        From `SURFACES` or `make_surface`.
    optimizer_name : str
        A key of `engine.OPTIMIZERS`.
    lr : float
        Learning rate η (constant).
    start : (2,) or None
        θ₀; default ``surface.start``.
    steps : int
        Steps to take (fewer if the run diverges).
    clip : (kind, threshold)
        A key of `engine.CLIP_KINDS` and τ; with two parameters "layer_norm" is "global_norm"
        (if ‖g‖ > τ: g ← τ·g/‖g‖) and "value" clamps each component to [−τ, τ].
    **hyper
        Optimizer hyper-parameters (`OptimizerConfig` fields: momentum, beta1, beta2, rho,
        epsilon, weight_decay). AdamW's decay applies to both coordinates.

    Returns
    -------
    OptimizerPath
    """
    kind, threshold = clip
    if kind not in CLIP_KINDS:
        raise ValueError(f"clip kind must be one of {', '.join(CLIP_KINDS)}; got {kind!r}")
    _check_positive("clip threshold", float(threshold))
    if not (isinstance(steps, int | np.integer) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    unknown = sorted(set(hyper) - set(HYPER_FIELDS))
    if unknown:
        raise ValueError(f"unknown optimizer hyper-parameter {unknown[0]!r}; the known ones "
                         f"are {', '.join(HYPER_FIELDS)}")
    values: dict[str, Any] = {k: float(v) for k, v in hyper.items()}
    config = OptimizerConfig(name=optimizer_name, learning_rate=float(lr), **values)
    try:
        config.validate()
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    theta = np.array(surface.start if start is None else start, dtype=np.float64)
    if theta.shape != (2,) or not np.all(np.isfinite(theta)):
        raise ValueError(f"start must be 2 finite numbers, got {theta.tolist()!r}")
    opt = Optimizer(optimizer_name, config, 2)
    points, losses, norms, clipped, what = _walk(surface, opt, theta, CLIP_KINDS[kind].code,
                                                 float(threshold), int(steps))
    done = len(norms)
    message = "" if not what else (
        f"{opt.spec.label} at η = {lr:g} diverged at step {done + 1}: the {what} became "
        f"non-finite; the path ends at step {done}.")
    flags = np.array(clipped, dtype=bool)
    flags.flags.writeable = False
    return OptimizerPath(
        surface=surface.name, optimizer=optimizer_name, lr=float(lr),
        clip=(kind, float(threshold)),
        hyper=tuple(sorted((key, float(v)) for key, v in hyper.items())),
        points=freeze(np.array(points).reshape(-1, 2)), losses=freeze(losses),
        grad_norms=freeze(norms), clipped=flags, diverged=bool(what),
        divergence_step=done + 1 if what else 0, divergence_what=what, message=message,
    )


def _walk(surface: Surface, opt: Optimizer, theta: np.ndarray, code: int, tau: float,
          steps: int) -> tuple[list, list, list, list, str]:
    """Step until `steps` or the first non-finite gradient, parameter or loss (named)."""
    bounds = np.array([0, 2], dtype=np.int64)  # one "layer": both parameters
    points, losses = [theta.copy()], [float(surface.f(theta))]
    norms: list[float] = []
    clipped: list[bool] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            g = np.ascontiguousarray(surface.grad(theta), dtype=np.float64)
            norm = float(np.hypot(g[0], g[1]))
            if not math.isfinite(norm):
                return points, losses, norms, clipped, "gradient"
            was_clipped = bool(clip_kernel(code, tau, g, bounds, np.array([norm]), norm))
            opt.update_params(theta, g)
            if not np.all(np.isfinite(theta)):
                return points, losses, norms, clipped, "parameter"
            loss = float(surface.f(theta))
            if not math.isfinite(loss):
                return points, losses, norms, clipped, "loss"
            points.append(theta.copy())
            losses.append(loss)
            norms.append(norm)
            clipped.append(was_clipped)
    return points, losses, norms, clipped, ""


def run_many(surface: Surface, specs: Iterable[Mapping], start: Iterable[float] | None = None,
             steps: int = 100) -> tuple[OptimizerPath, ...]:
    """Several optimizers from the same start.

    specs: mappings with "optimizer" and "lr", optionally "clip" (kind, threshold) and
    hyper-parameters, e.g. ``{"optimizer": "momentum", "lr": 0.05, "momentum": 0.9}``.
    """
    paths = []
    for spec in specs:
        spec = dict(spec)
        name, lr = spec.pop("optimizer"), spec.pop("lr")
        clip_spec = tuple(spec.pop("clip", ("none", 1.0)))
        paths.append(run_optimizer(surface, name, lr, start, steps, clip_spec, **spec))
    return tuple(paths)


def grid(surface: Surface, n: int = 101,
         extent: tuple[float, float, float, float] | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss values for drawing: (xs (n,), ys (n,), values (n, n)) with
    ``values[i, j] = f(xs[j], ys[i])`` (rows follow y, like ``np.meshgrid``)."""
    if not (isinstance(n, int | np.integer) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    x0, x1, y0, y1 = surface.extent if extent is None else extent
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    gx, gy = np.meshgrid(xs, ys)  # (n, n) each
    with np.errstate(over="ignore", invalid="ignore"):
        values = surface.f(np.stack([gx, gy], axis=-1))
    return xs, ys, np.asarray(values, dtype=np.float64)


def slide_presets(surface: Surface | None = None) -> dict[str, dict]:
    """The lecture's first slide as `run_many` specs: plain gradient descent on a quadratic
    with η relative to its largest curvature λmax.

    η·λmax = 0.05 crawls, 1.8 oscillates across the valley but converges, 2.2 diverges, and
    1 lands on the floor of the steepest direction in one step. (In 2-D the rate with the
    best worst-case contraction is 2/(λmin + λmax); 1/λmax is the 1-D picture.)
    """
    surface = SURFACES["quadratic"] if surface is None else surface
    if not surface.curvatures or min(surface.curvatures) <= 0:
        raise ValueError(f"presets need a convex quadratic, got surface {surface.name!r}")
    lam = max(surface.curvatures)
    return {
        "too small: slow": {"optimizer": "sgd", "lr": 0.05 / lam},
        "too large: oscillates": {"optimizer": "sgd", "lr": 1.8 / lam},
        "larger: diverges": {"optimizer": "sgd", "lr": 2.2 / lam},
        "near-optimal": {"optimizer": "sgd", "lr": 1.0 / lam},
    }


__all__ = ["SURFACES", "OptimizerPath", "Surface", "grid", "make_surface", "run_many",
           "run_optimizer", "slide_presets"]
