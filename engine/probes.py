"""Layer probes: what each layer's units and weights look like on a fixed data batch.

Computed every `eval_every` steps or on request (not every step): activation and
pre-activation statistics, saturated and dead fractions, and histograms of activations,
pre-activations, weights and weight gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine._jit import kernel, nonfinite
from engine.activations import dead_fraction, saturated_fraction
from engine.snapshot import freeze

BINS = 40
FIXED_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0),
                "softmax": (0.0, 1.0)}


@dataclass(frozen=True)
class Histogram:
    counts: np.ndarray  # (BINS,)
    edges: np.ndarray  # (BINS + 1,)


@dataclass(frozen=True)
class LayerProbe:
    name: str
    activation: str
    act_mean: float
    act_std: float
    pre_mean: float
    pre_std: float
    saturated: float  # share of activations in the flat regions (sigmoid, tanh, softsign)
    dead: float  # share of ReLU-like units inactive for every probe sample
    activations: Histogram
    pre_activations: Histogram
    weights: Histogram
    gradients: Histogram  # of the weights, on the probe batch


@dataclass(frozen=True)
class Probe:
    step: int
    rows: int
    layers: tuple[LayerProbe, ...]

    @property
    def saturated(self) -> np.ndarray:
        return np.array([p.saturated for p in self.layers])

    @property
    def dead(self) -> np.ndarray:
        return np.array([p.dead for p in self.layers])


@kernel
def finite_range(v):
    """(min, max) of the finite values of a 1-D array; (inf, -inf) if there are none."""
    lo, hi = np.inf, -np.inf
    for x in v:
        if not nonfinite(x):
            lo = min(lo, x)
            hi = max(hi, x)
    return lo, hi


@kernel
def bin_counts(v, lo, hi, counts):
    """counts[k] += number of finite v in bin k of len(counts) equal bins over [lo, hi]
    (the last bin includes hi, like np.histogram)."""
    n = counts.size
    scale = n / (hi - lo)
    for x in v:
        if x >= lo and x <= hi:
            k = int((x - lo) * scale)
            counts[min(k, n - 1)] += 1


def histogram(values: np.ndarray, value_range: tuple[float, float] | None = None) -> Histogram:
    """Counts over BINS equal bins; non-finite values are left out."""
    v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if value_range is None:
        lo, hi = finite_range(v)
        if lo > hi:
            lo, hi = -1.0, 1.0
        if hi - lo < 1e-12 * max(1.0, abs(lo)):
            lo, hi = lo - 0.5, hi + 0.5
        value_range = (lo, hi)
    counts = np.zeros(BINS, dtype=np.int64)
    bin_counts(v, float(value_range[0]), float(value_range[1]), counts)
    edges = np.linspace(value_range[0], value_range[1], BINS + 1)
    return Histogram(freeze(counts), freeze(edges))


def make_probe(model, x: np.ndarray, y: np.ndarray, l2: float, step: int) -> Probe:
    """Probe every layer on (x, y): a training-mode pass that changes no state."""
    rows = x.shape[0]
    _, grad = model.loss_and_gradients(x, y, l2)  # leaves this batch's forward in the buffers
    layers = []
    for info in model.layers():
        l = info.index
        pre = model.block("z", l, rows).copy()
        if l == model.n_layers - 1:
            act = model._outputs(rows)
        else:
            act = model.block("a", l, rows).copy()
        name = info.activation
        with np.errstate(all="ignore"):
            layers.append(LayerProbe(
                name=info.name,
                activation=name,
                act_mean=float(np.mean(act)),
                act_std=float(np.std(act)),
                pre_mean=float(np.mean(pre)),
                pre_std=float(np.std(pre)),
                saturated=saturated_fraction(name, act) if name != "softmax" else 0.0,
                dead=dead_fraction(name, act) if l < model.n_layers - 1 else 0.0,
                activations=histogram(act, FIXED_RANGES.get(name)),
                pre_activations=histogram(pre),
                weights=histogram(model.weights(l)),
                gradients=histogram(model.weights(l, grad)),
            ))
    return Probe(step, rows, tuple(layers))
