"""Learning-rate schedules: pure, vectorized functions of the step, with linear warmup.

A schedule depends on nothing but the step number, the optimizer's base rate and a
`ScheduleConfig` (nanoGPT's `get_lr`), so the window can draw the whole curve before
training starts and the trainer asks `lr_at(step, ...)` for the same numbers. Steps are
0-based: step 0 is the first update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.config import ScheduleConfig

# steps: (n,) int64, base_lr, config -> (n,) float64
CurveFn = Callable[[np.ndarray, float, ScheduleConfig], np.ndarray]


@dataclass(frozen=True)
class Schedule:
    """One entry of `SCHEDULES`: what the window shows and the curve itself.

    Attributes
    ----------
    name : str
        The registry key.
    label : str
        Short name for a combo box.
    description : str
        One line for a tooltip.
    formula : str
        Unicode formula shown next to the curve; η is the base rate, t the step after warmup.
    curve : CurveFn
        ``curve(steps, base_lr, config)``; steps: (n,) int64 >= 0, returns (n,) float64.
        Warmup is not part of the curve; `lr_curve` adds it.
    """

    name: str
    label: str
    description: str
    formula: str
    curve: CurveFn


def _constant(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    return np.full(steps.shape, base_lr, dtype=np.float64)


def _step(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    drops = steps // config.step_size  # integer division: the drop happens exactly on the step
    return base_lr * np.power(float(config.gamma), drops.astype(np.float64))


def _exponential(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    return base_lr * np.power(float(config.decay_rate), steps / config.decay_steps)


def _cosine(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    total = config.total_steps
    progress = np.minimum(steps, total) / total  # holds at min_lr after total_steps
    return config.min_lr + 0.5 * (base_lr - config.min_lr) * (1.0 + np.cos(np.pi * progress))


def _cyclic(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    low = base_lr
    high = config.max_lr if config.max_lr > 0 else 10.0 * base_lr
    half = config.cycle_steps
    # Position in the cycle in integers, so the peaks and troughs land on exact steps.
    phase = steps % (2 * half)
    height = 1.0 - np.abs(phase - half) / half  # 0 at the low, 1 at the high
    return low + (high - low) * height


def _cos_between(start: float, end: float, pct: np.ndarray) -> np.ndarray:
    """Cosine from `start` (pct = 0) to `end` (pct = 1), like torch's `_annealing_cos`."""
    return end + 0.5 * (start - end) * (1.0 + np.cos(np.pi * pct))


def _one_cycle(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    peak = config.max_lr if config.max_lr > 0 else base_lr
    start = peak / config.div_factor
    end = start / config.final_div_factor
    total = config.total_steps
    rise = config.pct_start * total  # 0 < rise < total: validated pct_start is in (0, 1)
    t = np.minimum(steps, total).astype(np.float64)  # holds at `end` after total_steps
    up = _cos_between(start, peak, np.minimum(t / rise, 1.0))
    down = _cos_between(peak, end, np.maximum(t - rise, 0.0) / (total - rise))
    return np.where(t <= rise, up, down)


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule(
            "constant",
            "Constant",
            "The same rate at every step.",
            "η(t) = η",
            _constant,
        ),
        Schedule(
            "step",
            "Step decay",
            "Multiply the rate by γ every step_size steps.",
            "η(t) = η · γ^⌊t / step_size⌋",
            _step,
        ),
        Schedule(
            "exponential",
            "Exponential decay",
            "Smooth decay: the rate is multiplied by decay_rate every decay_steps steps.",
            "η(t) = η · decay_rate^(t / decay_steps)",
            _exponential,
        ),
        Schedule(
            "cosine",
            "Cosine annealing",
            "Half a cosine from η down to min_lr over total_steps, then min_lr.",
            "η(t) = η_min + ½(η − η_min)(1 + cos(π · min(t, T) / T))",
            _cosine,
        ),
        Schedule(
            "cyclic",
            "Cyclic (triangular)",
            "Up and down linearly between η and max_lr (0 = 10 η); cycle_steps each way.",
            "η(t) = η + (η_max − η) · (1 − |(t mod 2c) / c − 1|)",
            _cyclic,
        ),
        Schedule(
            "one_cycle",
            "One cycle",
            "Cosine up from max_lr/div_factor to max_lr (0 = η), then down to almost 0.",
            "η_max/div → η_max over pct_start · T (cos), → η_max/(div · final_div) at T (cos)",
            _one_cycle,
        ),
    )
}

WARMUP_FORMULA = "t < W: η(0) · (t + 1) / W;  t ≥ W: η(t − W)"


def lr_curve(steps: np.ndarray, base_lr: float, config: ScheduleConfig) -> np.ndarray:
    """Learning rate at each of `steps`, warmup included.

    With ``W = config.warmup_steps > 0`` the rate rises linearly as
    ``schedule(0) * (t + 1) / W`` for ``t < W`` and is ``schedule(t - W)`` afterwards: the
    schedule starts when warmup ends.

    Parameters
    ----------
    steps : np.ndarray
        (n,) integer steps, 0-based (step 0 is the first update); any shape works.
    base_lr : float
        The optimizer's learning rate η.
    config : ScheduleConfig
        Which schedule (``config.name``, a key of `SCHEDULES`) and its parameters.

    Returns
    -------
    np.ndarray
        float64 rates, the shape of `steps`.

    Raises
    ------
    ValueError
        If `config.name` is not a schedule or a step is negative.
    """
    schedule = SCHEDULES.get(config.name)
    if schedule is None:
        raise ValueError(
            f"schedule.name must be one of {', '.join(SCHEDULES)}; got {config.name!r}"
        )
    t = np.asarray(steps, dtype=np.int64)
    if t.size and t.min() < 0:
        raise ValueError(f"steps must be >= 0, got {int(t.min())}")
    warmup = config.warmup_steps
    if warmup <= 0:
        return schedule.curve(t, base_lr, config)
    after = schedule.curve(np.maximum(t - warmup, 0), base_lr, config)
    first = schedule.curve(np.zeros(1, dtype=np.int64), base_lr, config)[0]
    # (t + 1) / W first, so the last warmup step is schedule(0) * 1.0, exactly schedule(0).
    ramp = first * ((t + 1) / warmup)
    return np.where(t < warmup, ramp, after)


def lr_at(step: int, base_lr: float, config: ScheduleConfig) -> float:
    """Learning rate at one step; exactly ``lr_curve([step], ...)[0]``.

    Parameters
    ----------
    step : int
        0-based step (step 0 is the first update).
    base_lr : float
        The optimizer's learning rate η.
    config : ScheduleConfig
        Which schedule and its parameters.

    Returns
    -------
    float
        The rate for that step's update.
    """
    return float(lr_curve(np.array([step], dtype=np.int64), base_lr, config)[0])
