"""Optimizers: the registry, one update kernel, and small objects with verbs.

State lives in two flat arrays the size of the parameter vector (velocity, Adam's m and v,
Adagrad's sum of squares, ...), so a snapshot can show it and a save can store it. The
same kernel serves the fused training loop and the analytic-surface playground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine._jit import kernel

SGD, MOMENTUM, NESTEROV, ADAGRAD, RMSPROP, ADAM, ADAMW = range(7)
# indices into the hyper-parameter vector the kernel reads
H_MOMENTUM, H_BETA1, H_BETA2, H_RHO, H_EPS, H_WD = range(6)
N_HYPER = 6


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    code: int
    label: str
    description: str
    formula: str
    hyper: tuple[str, ...]  # which OptimizerConfig fields it reads


OPTIMIZERS: dict[str, OptimizerSpec] = {
    o.name: o
    for o in [
        OptimizerSpec(
            "sgd", SGD, "SGD", "Plain gradient descent: a step of size η against the gradient.",
            "θ ← θ − η·g", (),
        ),
        OptimizerSpec(
            "momentum", MOMENTUM, "Momentum",
            "Accumulates a velocity, which speeds up along consistent directions and damps "
            "oscillation across a ravine.",
            "v ← μ·v + g;  θ ← θ − η·v", ("momentum",),
        ),
        OptimizerSpec(
            "nesterov", NESTEROV, "Nesterov",
            "Momentum that looks ahead: the step uses the gradient plus the next velocity.",
            "v ← μ·v + g;  θ ← θ − η·(g + μ·v)", ("momentum",),
        ),
        OptimizerSpec(
            "adagrad", ADAGRAD, "Adagrad",
            "Per-parameter rates that shrink with the sum of past squared gradients.",
            "G ← G + g²;  θ ← θ − η·g / (√G + ε)", ("epsilon",),
        ),
        OptimizerSpec(
            "rmsprop", RMSPROP, "RMSProp",
            "Per-parameter rates from a moving average of squared gradients, so layers "
            "with tiny gradients still move.",
            "s ← ρ·s + (1 − ρ)·g²;  θ ← θ − η·g / (√s + ε)", ("rho", "epsilon"),
        ),
        OptimizerSpec(
            "adam", ADAM, "Adam",
            "Momentum and RMSProp together, with bias correction of both averages.",
            "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  "
            "θ ← θ − η·m̂ / (√v̂ + ε),  m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)",
            ("beta1", "beta2", "epsilon"),
        ),
        OptimizerSpec(
            "adamw", ADAMW, "AdamW",
            "Adam with decoupled weight decay: weights shrink by η·λ·θ each step, apart "
            "from the adaptive gradient step.",
            "Adam step, then θ ← θ − η·λ·θ for weights (not biases)",
            ("beta1", "beta2", "epsilon", "weight_decay"),
        ),
    ]
}


def hyper_vector(config) -> np.ndarray:
    """The kernel's hyper-parameter vector from an OptimizerConfig."""
    h = np.zeros(N_HYPER)
    h[H_MOMENTUM] = config.momentum
    h[H_BETA1] = config.beta1
    h[H_BETA2] = config.beta2
    h[H_RHO] = config.rho
    h[H_EPS] = config.epsilon
    h[H_WD] = config.weight_decay
    return h


@kernel
def update_range(code, theta, g, s1, s2, lo, hi, decay_hi, lr, hyper, t):
    """One optimizer step on theta[lo:hi]; returns the squared norm of the change.

    Weight decay (AdamW) applies to theta[lo:decay_hi] only (the weights, not biases).
    t is the 1-based step count for Adam's bias correction.
    """
    sq = 0.0
    if code == SGD:
        for i in range(lo, hi):
            step = -lr * g[i]
            theta[i] += step
            sq += step * step
    elif code == MOMENTUM or code == NESTEROV:
        mu = hyper[H_MOMENTUM]
        nesterov = code == NESTEROV
        for i in range(lo, hi):
            v = mu * s1[i] + g[i]
            s1[i] = v
            step = -lr * (g[i] + mu * v) if nesterov else -lr * v
            theta[i] += step
            sq += step * step
    elif code == ADAGRAD:
        eps = hyper[H_EPS]
        for i in range(lo, hi):
            s = s1[i] + g[i] * g[i]
            s1[i] = s
            step = -lr * g[i] / (math.sqrt(s) + eps)
            theta[i] += step
            sq += step * step
    elif code == RMSPROP:
        rho, eps = hyper[H_RHO], hyper[H_EPS]
        for i in range(lo, hi):
            s = rho * s1[i] + (1.0 - rho) * g[i] * g[i]
            s1[i] = s
            step = -lr * g[i] / (math.sqrt(s) + eps)
            theta[i] += step
            sq += step * step
    else:  # ADAM, ADAMW
        b1, b2, eps = hyper[H_BETA1], hyper[H_BETA2], hyper[H_EPS]
        c1 = 1.0 / (1.0 - b1**t)
        c2 = 1.0 / (1.0 - b2**t)
        wd = lr * hyper[H_WD] if code == ADAMW else 0.0
        for i in range(lo, hi):
            m = b1 * s1[i] + (1.0 - b1) * g[i]
            v = b2 * s2[i] + (1.0 - b2) * g[i] * g[i]
            s1[i] = m
            s2[i] = v
            step = -lr * (m * c1) / (math.sqrt(v * c2) + eps)
            if i < decay_hi:
                step -= wd * theta[i]
            theta[i] += step
            sq += step * step
    return sq


class Optimizer:
    """An optimizer with its state, for any flat parameter vector.

    >>> opt = Optimizer("adam", OptimizerConfig(learning_rate=0.1), n_params=2)
    >>> opt.update_params(theta, grad)        # one step, lr from the config
    """

    def __init__(self, name: str, config, n_params: int):
        self.spec = OPTIMIZERS[name]
        self.config = config
        self.hyper = hyper_vector(config)
        self.s1 = np.zeros(n_params)
        self.s2 = np.zeros(n_params)
        self.t = np.zeros(1, dtype=np.int64)  # steps taken; an array so kernels can count

    @property
    def code(self) -> int:
        return self.spec.code

    def reset_state(self) -> None:
        self.s1[:] = 0.0
        self.s2[:] = 0.0
        self.t[0] = 0

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Named state arrays (velocity, m, v, sum of squares), for display."""
        names = {
            MOMENTUM: ("velocity",), NESTEROV: ("velocity",), ADAGRAD: ("sum_sq",),
            RMSPROP: ("mean_sq",), ADAM: ("m", "v"), ADAMW: ("m", "v"),
        }.get(self.spec.code, ())
        return dict(zip(names, (self.s1, self.s2), strict=False))

    def set_hyper(self, config) -> None:
        """Change hyper-parameters between steps, keeping the state (a different
        optimizer kind starts from zero state)."""
        if config.name != self.spec.name:
            self.spec = OPTIMIZERS[config.name]
            self.reset_state()
        self.config = config
        self.hyper = hyper_vector(config)

    def update_params(
        self, theta: np.ndarray, grad: np.ndarray, lr: float | None = None, decay_hi: int = -1
    ) -> float:
        """One step in place; returns the norm of the change."""
        self.t[0] += 1
        lr = self.config.learning_rate if lr is None else lr
        hi = theta.size
        sq = update_range(
            self.spec.code, theta, grad, self.s1, self.s2, 0, hi,
            hi if decay_hi < 0 else decay_hi, float(lr), self.hyper, int(self.t[0]),
        )
        return math.sqrt(sq)
