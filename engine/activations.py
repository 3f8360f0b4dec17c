"""Activation functions: the registry, and kernels for the forward pass and derivatives.

Every derivative is computed from the activation's *output* a = f(u), so the backward pass
needs no stored pre-activations: tanh' = 1 - a², sigmoid' = a(1 - a), relu' = [a > 0], ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine._jit import inline, kernel

# Integer codes the kernels branch on (once per layer, outside the inner loops).
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTSIGN, SOFTMAX = range(8)
LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    label: str
    description: str
    formula: str
    saturation: str  # how "saturated" is measured for this activation, or "" if never
    relu_like: bool  # has dead units (no gradient for inputs below 0)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation(
            "sigmoid", SIGMOID, "Sigmoid",
            "Squashes to (0, 1); saturates for large |u|, and its slope is at most 1/4, "
            "so gradients shrink layer by layer.",
            "σ(u) = 1 / (1 + e^(−u)),  σ' = σ(1 − σ) ≤ 1/4",
            "a < 0.01 or a > 0.99", False,
        ),
        Activation(
            "tanh", TANH, "Tanh",
            "Zero-centred squashing to (−1, 1); saturates for large |u|.",
            "tanh(u),  tanh' = 1 − tanh²(u) ≤ 1",
            "|a| > 0.99", False,
        ),
        Activation(
            "relu", RELU, "ReLU",
            "Identity for u > 0, zero otherwise: no saturation for positive inputs, but "
            "units whose input stays negative die.",
            "max(0, u),  relu' = [u > 0]",
            "", True,
        ),
        Activation(
            "leaky_relu", LEAKY_RELU, "Leaky ReLU",
            "Like ReLU with a small slope (0.01) for u < 0, so no unit is fully dead.",
            "max(0.01·u, u)",
            "", True,
        ),
        Activation(
            "elu", ELU, "ELU",
            "Identity for u > 0, smooth exponential approach to −1 for u < 0.",
            "u if u > 0 else e^u − 1",
            "", True,
        ),
        Activation(
            "softsign", SOFTSIGN, "Softsign",
            "Like tanh but approaches ±1 polynomially, so it saturates more gently.",
            "u / (1 + |u|),  softsign' = 1 / (1 + |u|)²",
            "|a| > 0.99", False,
        ),
        Activation(
            "linear", LINEAR, "Linear",
            "No non-linearity: a deep linear network is still a linear map.",
            "u",
            "", False,
        ),
    ]
}

# Cephes tanh coefficients for |x| < 0.625; the exp-based formula is exact enough above.
_P0, _P1, _P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_Q0, _Q1, _Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@inline
def fast_tanh(x):
    """tanh within 2 ulp, branch-free so that loops over it vectorize.

    numba's scalar np.tanh calls libm (~16-26 ns/element); this is ~5 ns. For |x| >= 0.625:
    1 - 2 / (e^(2|x|) + 1) with e^t computed by range reduction, a degree-12 Taylor
    polynomial and 2^n built from the bits of n (t is clamped to 40: tanh(20) == 1.0).
    """
    a = abs(x)
    t = min(2.0 * a, 40.0)
    ni = np.int32(t * _LOG2E + 0.5)
    n = np.float64(ni)
    r = (t - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    s = (1.0 + np.float64(ni & 1)) * (1.0 + 3.0 * np.float64((ni >> 1) & 1))
    s *= (1.0 + 15.0 * np.float64((ni >> 2) & 1)) * (1.0 + 255.0 * np.float64((ni >> 3) & 1))
    s *= (1.0 + 65535.0 * np.float64((ni >> 4) & 1)) * (
        1.0 + 4294967295.0 * np.float64((ni >> 5) & 1)
    )
    big = 1.0 - 2.0 / (p * s + 1.0)
    z = x * x
    small = a + a * z * (((_P0 * z + _P1) * z + _P2) / (((z + _Q0) * z + _Q1) * z + _Q2))
    y = small if a < 0.625 else big
    y = y if a == a else a  # NaN stays NaN
    return -y if x < 0.0 else y


@inline
def _sigmoid(u):
    # Two forms so that exp never overflows: e^(-|u|) <= 1.
    e = math.exp(-abs(u))
    return 1.0 / (1.0 + e) if u >= 0.0 else e / (1.0 + e)


@kernel
def activate(code, u, a):
    """a = f(u) elementwise. u, a: 1-D (may be the same array)."""
    n = u.size
    if code == TANH:
        for i in range(n):
            a[i] = fast_tanh(u[i])
    elif code == SIGMOID:
        for i in range(n):
            a[i] = _sigmoid(u[i])
    elif code == RELU:
        for i in range(n):
            v = u[i]
            a[i] = v if v > 0.0 else 0.0 * v  # 0 * NaN keeps a NaN visible
    elif code == LEAKY_RELU:
        for i in range(n):
            v = u[i]
            a[i] = v if v > 0.0 else LEAKY_SLOPE * v
    elif code == ELU:
        for i in range(n):
            v = u[i]
            a[i] = v if v > 0.0 else ELU_ALPHA * (math.exp(min(v, 0.0)) - 1.0)
    elif code == SOFTSIGN:
        for i in range(n):
            v = u[i]
            a[i] = v / (1.0 + abs(v))
    else:  # LINEAR
        for i in range(n):
            a[i] = u[i]


@kernel
def multiply_derivative(code, a, d):
    """d *= f'(u), with f' written in terms of the output a = f(u). a, d: 1-D."""
    n = a.size
    if code == TANH:
        for i in range(n):
            d[i] *= 1.0 - a[i] * a[i]
    elif code == SIGMOID:
        for i in range(n):
            d[i] *= a[i] * (1.0 - a[i])
    elif code == RELU:
        for i in range(n):
            d[i] = d[i] if a[i] > 0.0 else 0.0
    elif code == LEAKY_RELU:
        for i in range(n):
            d[i] *= 1.0 if a[i] > 0.0 else LEAKY_SLOPE
    elif code == ELU:
        for i in range(n):
            d[i] *= 1.0 if a[i] > 0.0 else a[i] + ELU_ALPHA
    elif code == SOFTSIGN:
        for i in range(n):
            s = 1.0 - abs(a[i])
            d[i] *= s * s


def reference(name: str, u: np.ndarray) -> np.ndarray:
    """Plain numpy f(u), for tests and for drawing the function in the window."""
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-u))
    if name == "tanh":
        return np.tanh(u)
    if name == "relu":
        return np.maximum(u, 0.0)
    if name == "leaky_relu":
        return np.where(u > 0, u, LEAKY_SLOPE * u)
    if name == "elu":
        return np.where(u > 0, u, ELU_ALPHA * (np.exp(np.minimum(u, 0.0)) - 1.0))
    if name == "softsign":
        return u / (1.0 + np.abs(u))
    if name == "linear":
        return u.copy()
    raise KeyError(name)


def saturated_fraction(name: str, a: np.ndarray) -> float:
    """Share of activations in the flat regions where the derivative is ~0."""
    if a.size == 0:
        return 0.0
    if name == "sigmoid":
        return float(np.mean((a < 0.01) | (a > 0.99)))
    if name in ("tanh", "softsign"):
        return float(np.mean(np.abs(a) > 0.99))
    return 0.0


def dead_fraction(name: str, a: np.ndarray) -> float:
    """Share of ReLU-like units that output <= 0 for every sample in `a` (batch, width)."""
    if a.size == 0 or not ACTIVATIONS[name].relu_like:
        return 0.0
    return float(np.mean(np.all(a <= 0.0, axis=0)))
