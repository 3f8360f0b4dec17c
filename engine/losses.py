"""Loss functions: the registry and one kernel that computes outputs, loss and its gradient.

Cross-entropies are computed from the logits with log-sum-exp, so they stay finite where a
naive log(softmax) would give -inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine._jit import kernel
from engine.activations import SIGMOID, SOFTMAX, activate, multiply_derivative

MSE, BCE, SOFTMAX_CE = range(3)


@dataclass(frozen=True)
class Loss:
    name: str
    code: int
    label: str
    description: str
    formula: str
    output_activation: str  # what "auto" means for this loss


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in [
        Loss(
            "softmax_ce", SOFTMAX_CE, "Softmax cross-entropy",
            "Softmax outputs, one per class; the gradient at the logits is p − y, so it "
            "does not vanish when the output is confidently wrong.",
            "L = −(1/B) Σ log softmax(u)_y", "softmax",
        ),
        Loss(
            "bce", BCE, "Binary cross-entropy",
            "One sigmoid output for two classes; gradient p − y at the logit.",
            "L = −(1/B) Σ [y log p + (1 − y) log(1 − p)],  p = σ(u)", "sigmoid",
        ),
        Loss(
            "mse", MSE, "Mean squared error",
            "Squared error, averaged over samples and outputs. With a sigmoid output its "
            "gradient has a factor σ'(u) and vanishes when the output saturates.",
            "L = (1/(B·k)) Σ (a − y)²", "linear",
        ),
    ]
}


@kernel
def output_loss(loss_code, act_code, u, a, y, du):
    """Outputs, mean loss over the batch and (if du.size) its gradient at the logits.

    u: (batch, k) logits; a: (batch, k) written with the outputs; y: (batch, k) targets
    (one-hot for softmax_ce, 0/1 for bce, values for mse); du: (batch, k) or empty.
    Returns the loss (a float; non-finite if the logits are).
    """
    b, k = u.shape
    total = 0.0
    if loss_code == SOFTMAX_CE:
        for i in range(b):
            m = u[i, 0]
            for j in range(1, k):
                m = max(m, u[i, j])
            s = 0.0
            for j in range(k):
                s += math.exp(u[i, j] - m)
            lse = m + math.log(s)
            for j in range(k):
                a[i, j] = math.exp(u[i, j] - lse)
                total += y[i, j] * (lse - u[i, j])
        if du.size:
            for i in range(b):
                for j in range(k):
                    du[i, j] = (a[i, j] - y[i, j]) / b
        return total / b
    if loss_code == BCE:
        activate(SIGMOID, u.ravel(), a.ravel())
        for i in range(b):
            for j in range(k):
                v = u[i, j]
                total += max(v, 0.0) - v * y[i, j] + math.log1p(math.exp(-abs(v)))
        if du.size:
            for i in range(b):
                for j in range(k):
                    du[i, j] = (a[i, j] - y[i, j]) / b
        return total / b
    # MSE with any output activation
    activate(act_code, u.ravel(), a.ravel())
    scale = 2.0 / (b * k)
    for i in range(b):
        for j in range(k):
            e = a[i, j] - y[i, j]
            total += e * e
            if du.size:
                du[i, j] = scale * e
    if du.size:
        multiply_derivative(act_code, a.ravel(), du.ravel())
    return total / (b * k)


def reference_loss(name: str, act: str, u: np.ndarray, y: np.ndarray) -> float:
    """Plain numpy loss, for tests."""
    from engine.activations import reference

    if name == "softmax_ce":
        m = u.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(u - m).sum(axis=1, keepdims=True))
        return float(np.mean(np.sum(y * (lse - u), axis=1)))
    if name == "bce":
        return float(np.mean(np.maximum(u, 0) - u * y + np.log1p(np.exp(-np.abs(u)))))
    a = reference(act, u)
    return float(np.mean((a - y) ** 2))


__all__ = ["LOSSES", "Loss", "output_loss", "reference_loss", "MSE", "BCE", "SOFTMAX_CE", "SOFTMAX"]
