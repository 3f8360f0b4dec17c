"""Every numba kernel against a plain numpy reference written here (or in the module's
`reference` functions): activations and their derivatives, fast_tanh, losses, the forward
pass with batch norm and residuals, running statistics, histograms, norms, clipping."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from engine import ExperimentConfig, TrainingSession
from engine._jit import CACHE_DIR
from engine.activations import (
    ACTIVATIONS,
    LEAKY_SLOPE,
    SOFTMAX,
    TANH,
    activate,
    fast_tanh,
    multiply_derivative,
    reference,
)
from engine.clipping import CLIP_KINDS, clip
from engine.config import NetworkConfig
from engine.losses import LOSSES, output_loss, reference_loss
from engine.model import Model
from engine.network import forward
from engine.probes import BINS, histogram
from engine.trainer import loss_and_grad, norm_and_check

RNG_SEED = 20240611

# f'(u), written out independently of the kernels (which compute it from the output a).
DERIVATIVE = {
    "sigmoid": lambda u: np.exp(-np.abs(u)) / (1.0 + np.exp(-np.abs(u))) ** 2,
    "tanh": lambda u: 1.0 / np.cosh(u) ** 2,
    "relu": lambda u: np.where(u > 0, 1.0, 0.0),
    "leaky_relu": lambda u: np.where(u > 0, 1.0, LEAKY_SLOPE),
    "elu": lambda u: np.where(u > 0, 1.0, np.exp(np.minimum(u, 0.0))),
    "softsign": lambda u: 1.0 / (1.0 + np.abs(u)) ** 2,
    "linear": lambda u: np.ones_like(u),
}


def wide_inputs() -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    return np.concatenate([
        np.linspace(-30.0, 30.0, 6001),
        rng.normal(0.0, 3.0, 5000),
        [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-8, -1e-8, 700.0, -700.0, 745.0, -745.0,
         1e300, -1e300],
    ])


def ordered(x: np.ndarray) -> np.ndarray:
    """float64 bits mapped to int64 so that adjacent floats differ by 1 (and -0 == +0)."""
    i = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return np.where(i < 0, np.iinfo(np.int64).min - i, i)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(ordered(a) - ordered(b))


def run_activate(name: str, u: np.ndarray) -> np.ndarray:
    a = np.empty_like(u)
    activate(ACTIVATIONS[name].code, u, a)
    return a


def test_kernels_are_cached_in_the_source_hash_folder():
    """Not beside the sources, where numba misses an edit to a kernel in another file that
    a cached kernel calls (the tests would run stale code). pytest imports numba before the
    engine, to resolve the NumbaPerformanceWarning filter."""
    assert CACHE_DIR
    for func in (activate, forward, loss_and_grad):
        assert func.stats.cache_path.startswith(CACHE_DIR), func.stats.cache_path


# -- activations ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activate_matches_reference(name):
    u = wide_inputs()
    with np.errstate(over="ignore"):
        expected = reference(name, u)
    np.testing.assert_allclose(run_activate(name, u), expected, rtol=1e-15, atol=1e-300)
    # in place (u and a the same array), as the docstring allows
    v = u.copy()
    activate(ACTIVATIONS[name].code, v, v)
    np.testing.assert_array_equal(v, run_activate(name, u))


# Where the kernel knowingly differs from plain numpy on infinite inputs.
INF_EXCEPTIONS = {("relu", -np.inf): np.nan}  # 0 * v: a -inf pre-activation stays visible


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activate_non_finite(name):
    out = run_activate(name, np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(out[0]), "a NaN pre-activation must stay NaN (divergence detection)"
    with np.errstate(invalid="ignore"):
        ref = reference(name, np.array([np.inf, -np.inf]))
    for got, want, u in zip(out[1:], ref, (np.inf, -np.inf), strict=True):
        want = INF_EXCEPTIONS.get((name, u), want)
        assert got == want or (np.isnan(got) and np.isnan(want)), (u, got, want)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_multiply_derivative_matches_analytic(name):
    u = wide_inputs()
    u = u[np.abs(u) < 50]  # the derivative is ~0 beyond; tested against the formula below
    d = np.random.default_rng(1).normal(size=u.size)
    got = d.copy()
    multiply_derivative(ACTIVATIONS[name].code, run_activate(name, u), got)
    # computed from a = f(u), the derivative has absolute (not relative) error ~1e-16 where
    # the function saturates (1 - a rounds when a is near 1)
    np.testing.assert_allclose(got, d * DERIVATIVE[name](u), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_analytic_derivative_matches_finite_differences(name):
    """The table above is right: central differences of the numpy reference."""
    u = np.linspace(-6.0, 6.0, 1201)
    u = u[np.abs(u) > 1e-3]  # away from the ReLU kinks
    h = 1e-6
    numeric = (reference(name, u + h) - reference(name, u - h)) / (2 * h)
    np.testing.assert_allclose(DERIVATIVE[name](u), numeric, rtol=1e-7, atol=1e-9)


def test_fast_tanh_within_two_ulp_over_a_wide_range():
    rng = np.random.default_rng(RNG_SEED)
    below, above = np.nextafter(0.625, 0.0), np.nextafter(0.625, 1.0)  # the branch switch
    u = np.concatenate([
        np.linspace(-25.0, 25.0, 2_000_001),
        np.logspace(-320, 308, 20_000), -np.logspace(-320, 308, 20_000),
        rng.normal(0.0, 1.0, 100_000),
        [0.625, -0.625, below, above, -below, -above, 19.99, 20.0, 20.01, 1e-8, 5e-324],
    ])
    got = np.empty_like(u)
    activate(TANH, u, got)
    diff = ulps(got, np.tanh(u))
    assert diff.max() <= 2, f"{diff.max()} ulp at u = {u[diff.argmax()]!r}"
    assert np.all(np.abs(got) <= 1.0)
    # odd, exactly
    neg = np.empty_like(u)
    activate(TANH, -u, neg)
    np.testing.assert_array_equal(neg, -got)


@pytest.mark.parametrize(
    "x, expected",
    [(0.0, 0.0), (-0.0, 0.0), (5e-324, 5e-324), (-5e-324, -5e-324), (1e-300, 1e-300),
     (1e-17, 1e-17), (30.0, 1.0), (-30.0, -1.0), (1e300, 1.0), (-1e300, -1.0),
     (math.inf, 1.0), (-math.inf, -1.0)],
)
def test_fast_tanh_special_values(x, expected):
    # +-0 compare equal; the sign of a zero is not kept (fast-math 'nsz')
    assert fast_tanh(x) == expected == np.tanh(x)


def test_fast_tanh_nan():
    assert math.isnan(fast_tanh(math.nan))
    out = np.empty(1)
    activate(TANH, np.array([math.nan]), out)
    assert math.isnan(out[0])


# -- losses --------------------------------------------------------------------------------
def output_cases():
    """(loss name, output activation name) for every loss, and MSE with every activation."""
    cases = [(name, loss.output_activation) for name, loss in LOSSES.items()]
    cases += [("mse", act) for act in ACTIVATIONS if act != LOSSES["mse"].output_activation]
    return cases


def act_code(name: str) -> int:
    return SOFTMAX if name == "softmax" else ACTIVATIONS[name].code


def expected_outputs(act: str, u: np.ndarray) -> np.ndarray:
    if act == "softmax":
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return reference(act, u)


def targets(loss: str, rng, b: int, k: int) -> np.ndarray:
    if loss == "softmax_ce":
        return np.eye(k)[rng.integers(0, k, b)]
    if loss == "bce":
        return rng.integers(0, 2, (b, k)).astype(float)
    return rng.uniform(0.05, 0.95, (b, k))


@pytest.mark.parametrize("loss, act", output_cases())
def test_output_loss_matches_reference(loss, act):
    rng = np.random.default_rng(5)
    b, k = 9, 1 if loss == "bce" else 3
    u = rng.normal(0.0, 2.0, (b, k))
    u[np.abs(u) < 1e-3] = 0.5  # away from ReLU kinks for the differences below
    y = targets(loss, rng, b, k)
    code = LOSSES[loss].code
    a, du = np.empty_like(u), np.empty_like(u)

    value = output_loss(code, act_code(act), u, a, y, du)

    assert value == pytest.approx(reference_loss(loss, act, u, y), rel=1e-14)
    np.testing.assert_allclose(a, expected_outputs(act, u), rtol=1e-14, atol=1e-300)
    # du is the gradient of the reference loss
    h = 1e-6
    numeric = np.empty_like(u)
    for idx in np.ndindex(u.shape):
        up, down = u.copy(), u.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (reference_loss(loss, act, up, y) - reference_loss(loss, act, down, y)) \
            / (2 * h)
    np.testing.assert_allclose(du, numeric, rtol=1e-6, atol=1e-10)
    # without a gradient buffer: same loss, outputs still written
    a2 = np.empty_like(u)
    assert output_loss(code, act_code(act), u, a2, y, np.zeros((0, 0))) == value
    np.testing.assert_array_equal(a2, a)


def test_softmax_ce_huge_logits_stay_finite():
    u = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [1e4, -1e4, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # wrong, wrong, right
    a, du = np.empty_like(u), np.empty_like(u)
    loss = output_loss(LOSSES["softmax_ce"].code, SOFTMAX, u, a, y, du)
    # per row: logsumexp(u) - u_y = 1e4 - (-1e4), 1e4 - (-1e4), 0
    assert loss == pytest.approx((2e4 + 2e4 + 0.0) / 3, rel=1e-15)
    assert reference_loss("softmax_ce", "softmax", u, y) == pytest.approx(loss, rel=1e-15)
    np.testing.assert_allclose(du, (np.eye(3)[[0, 1, 0]] - y) / 3, atol=1e-300)


def test_bce_huge_logits_stay_finite():
    u = np.array([[1e4], [-1e4], [1e4], [-1e4]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])  # wrong, wrong, right, right
    a, du = np.empty_like(u), np.empty_like(u)
    loss = output_loss(LOSSES["bce"].code, ACTIVATIONS["sigmoid"].code, u, a, y, du)
    assert loss == pytest.approx((1e4 + 1e4 + 0.0 + 0.0) / 4, rel=1e-15)
    assert reference_loss("bce", "sigmoid", u, y) == pytest.approx(loss, rel=1e-15)
    np.testing.assert_array_equal(a[:, 0], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(du[:, 0], [0.25, -0.25, 0.0, 0.0], atol=1e-300)


def test_mse_sigmoid_output_saturates():
    """With a sigmoid output, MSE's gradient vanishes when the output is confidently wrong."""
    u = np.array([[1e4], [-1e4]])
    y = np.array([[0.0], [1.0]])
    a, du = np.empty_like(u), np.empty_like(u)
    loss = output_loss(LOSSES["mse"].code, ACTIVATIONS["sigmoid"].code, u, a, y, du)
    assert loss == 1.0
    np.testing.assert_array_equal(du, 0.0)


# -- forward pass --------------------------------------------------------------------------
def numpy_forward(model: Model, theta, x, training, run_mean, run_var):
    """(logits, [activation input per layer], [pre-batch-norm z per layer]) in plain numpy."""
    cfg = model.config
    h = x
    starts = np.concatenate([[0], np.cumsum([info.n_out for info in model.layers()])])
    pre_bn, act_in = [], []
    for info in model.layers():
        l = info.index
        z = h @ model.weights(l, theta) + model.biases(l, theta)
        pre_bn.append(z)
        bn = model.bn_params(l, theta)
        if bn is not None:
            s = slice(starts[l], starts[l + 1])
            mu, var = (z.mean(axis=0), z.var(axis=0)) if training else (run_mean[s], run_var[s])
            z = bn[0] * (z - mu) / np.sqrt(var + cfg.bn_epsilon) + bn[1]
        act_in.append(z)
        if l == model.n_layers - 1:
            return z, act_in, pre_bn
        a = reference(info.activation, z)
        h = a + h if cfg.residual and h.shape[1] == a.shape[1] else a
    raise AssertionError("unreachable")


def forward_model(batch_norm: bool, residual: bool, momentum: float = 0.1):
    network = NetworkConfig(hidden_layers=3, width=6, activations=("tanh", "relu", "elu"),
                            loss="softmax_ce", batch_norm=batch_norm, residual=residual,
                            bn_momentum=momentum)
    model = Model(network, 6 if residual else 4, 3, "classification")
    rng = np.random.default_rng(9)
    model.theta[:] = rng.normal(0.0, 0.7, model.n_params)
    model.run_mean[:] = rng.normal(0.0, 0.5, model.run_mean.size)
    model.run_var[:] = rng.uniform(0.5, 2.0, model.run_var.size)
    x = rng.normal(size=(11, model.n_inputs))
    return model, x


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["no_bn", "bn"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_forward_matches_numpy(training, batch_norm, residual):
    model, x = forward_model(batch_norm, residual)
    mean0, var0 = model.run_mean.copy(), model.run_var.copy()
    logits, act_in, _ = numpy_forward(model, model.theta, x, training, mean0, var0)

    forward(model.net(), model.work(x.shape[0]), x, training, False)

    rows = x.shape[0]
    for l in range(model.n_layers):
        np.testing.assert_allclose(model.block("z", l, rows), act_in[l], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.block("z", model.n_layers - 1, rows), logits, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(model.run_mean, mean0)  # update_running=False
    np.testing.assert_array_equal(model.run_var, var0)
    if batch_norm and training:  # batch statistics: each unit normalized to mean 0, var 1
        zn = model.block("zn", 0, rows)
        np.testing.assert_allclose(zn.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(zn.var(axis=0), 1.0, rtol=1e-3)  # eps = 1e-5


def test_predict_matches_numpy_in_eval_mode():
    model, x = forward_model(True, True)
    logits, _, _ = numpy_forward(model, model.theta, x, False, model.run_mean, model.run_var)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(x), e / e.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("rows", [11, 1])
def test_batch_norm_running_statistics_update(rows):
    m = 0.3
    model, x = forward_model(True, False, momentum=m)
    x = x[:rows]
    mean0, var0 = model.run_mean.copy(), model.run_var.copy()
    _, _, pre_bn = numpy_forward(model, model.theta, x, True, mean0, var0)

    forward(model.net(), model.work(rows), x, True, True)

    hidden = slice(0, 3 * 6)  # the output layer has no batch norm
    mu = np.concatenate([z.mean(axis=0) for z in pre_bn[:3]])
    # unbiased batch variance, n / (n - 1) (a single row has variance 0)
    var = np.concatenate([z.var(axis=0, ddof=1 if rows > 1 else 0) for z in pre_bn[:3]])
    np.testing.assert_allclose(model.run_mean[hidden], (1 - m) * mean0[hidden] + m * mu,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.run_var[hidden], (1 - m) * var0[hidden] + m * var,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(model.run_mean[18:], mean0[18:])
    np.testing.assert_array_equal(model.run_var[18:], var0[18:])


def test_training_step_updates_running_statistics():
    """Wiring: one full-batch training step moves the running mean by m * batch mean."""
    config = ExperimentConfig().replace(**{
        "data.n_samples": 50, "data.validation_fraction": 0.0, "network.hidden_layers": 2,
        "network.width": 4, "network.batch_norm": True, "network.bn_momentum": 0.25,
        "run.batch_size": 1000,
    })
    session = TrainingSession(config)
    model = session.model
    z0 = session.x_train @ model.weights(0) + model.biases(0)  # initial theta, all rows
    session.step(1)
    np.testing.assert_allclose(model.run_mean[:4], 0.25 * z0.mean(axis=0), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(model.run_var[:4], 0.75 + 0.25 * z0.var(axis=0, ddof=1),
                               rtol=1e-12)


# -- probes --------------------------------------------------------------------------------
def test_histogram_matches_numpy_with_range():
    rng = np.random.default_rng(2)
    v = np.concatenate([rng.normal(0.0, 1.0, 10_000), [np.nan, np.inf, -np.inf, 5.0, -5.0]])
    h = histogram(v, (-2.0, 3.0))
    counts, edges = np.histogram(v[np.isfinite(v)], bins=BINS, range=(-2.0, 3.0))
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges, rtol=1e-15)


def test_histogram_matches_numpy_default_range():
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.exponential(2.0, 5000), [np.nan, -np.inf]])
    h = histogram(v)
    counts, edges = np.histogram(v[np.isfinite(v)], bins=BINS)
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges, rtol=1e-15)
    assert h.counts.sum() == 5000


def test_histogram_bin_edges_like_numpy():
    """Values on the edges go to the bin on their right; the last edge to the last bin."""
    v = np.arange(BINS + 1, dtype=float)
    h = histogram(v, (0.0, float(BINS)))
    np.testing.assert_array_equal(h.counts, np.histogram(v, bins=BINS, range=(0, BINS))[0])
    assert h.counts[-1] == 2 and h.counts[0] == 1


def test_histogram_constant_and_empty():
    h = histogram(np.full(7, 3.0))
    counts, edges = np.histogram(np.full(7, 3.0), bins=BINS)
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges)
    h = histogram(np.array([np.nan, np.inf]))
    assert h.counts.sum() == 0 and h.edges[0] == -1.0 and h.edges[-1] == 1.0


# -- norms ---------------------------------------------------------------------------------
def test_norm_and_check_matches_numpy():
    v = np.random.default_rng(4).normal(size=1000)
    norm, check = norm_and_check(v, 100, 700)
    assert norm == pytest.approx(np.linalg.norm(v[100:700]), rel=1e-14)
    assert check == 0.0


@pytest.mark.parametrize("big", [1e155, 1e200, 1e300, 1.7e308])
def test_norm_and_check_huge_finite_values(big):
    v = np.array([big, -big, big / 2, 3.0, 0.0])
    norm, check = norm_and_check(v, 0, v.size)
    assert check == 0.0
    expected = big * math.sqrt(1 + 1 + 0.25)  # inf for 1.7e308: the norm itself overflows
    if math.isfinite(expected):
        assert norm == pytest.approx(expected, rel=1e-14)
    else:
        assert norm == math.inf


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_norm_and_check_flags_non_finite(bad):
    v = np.array([1.0, 2.0, bad, 1e200, 4.0])
    _, check = norm_and_check(v, 0, v.size)
    assert check != 0.0
    # outside [lo, hi) it is not looked at
    norm, check = norm_and_check(v, 0, 2)
    assert check == 0.0 and norm == pytest.approx(math.sqrt(5.0), rel=1e-15)


# -- clipping ------------------------------------------------------------------------------
def clip_reference(kind: str, tau: float, g: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    g = g.copy()
    if kind == "none":
        return g
    if kind == "global_norm":
        n = np.linalg.norm(g)
        return g * (tau / n) if n > tau else g
    if kind == "layer_norm":
        for lo, hi in pairwise(bounds):
            n = np.linalg.norm(g[lo:hi])
            if n > tau:
                g[lo:hi] *= tau / n
        return g
    if kind == "value":
        return np.clip(g, -tau, tau)
    raise KeyError(kind)


def run_clip(kind: str, tau: float, g: np.ndarray, bounds: np.ndarray):
    g = g.copy()
    layer_norm = np.array([np.linalg.norm(g[lo:hi]) for lo, hi in pairwise(bounds)])
    changed = clip(CLIP_KINDS[kind].code, tau, g, bounds, layer_norm, np.linalg.norm(g))
    return g, changed


BOUNDS = np.array([0, 6, 10, 19], dtype=np.int64)


@pytest.mark.parametrize("tau", [0.5, 2.0, 100.0])
@pytest.mark.parametrize("kind", list(CLIP_KINDS))
def test_clip_matches_numpy(kind, tau):
    g = np.random.default_rng(6).normal(0.0, 1.0, 19)
    g[6:10] *= 0.01  # a layer below every threshold
    got, changed = run_clip(kind, tau, g, BOUNDS)
    expected = clip_reference(kind, tau, g, BOUNDS)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert changed == (not np.array_equal(expected, g))


def test_global_norm_clip_gives_exactly_tau():
    g = np.random.default_rng(7).normal(0.0, 10.0, 19)
    got, changed = run_clip("global_norm", 1.5, g, BOUNDS)
    assert changed
    assert np.linalg.norm(got) == pytest.approx(1.5, rel=1e-15)
    np.testing.assert_allclose(got / np.linalg.norm(got), g / np.linalg.norm(g), rtol=1e-14)
    # below the threshold: untouched, bit for bit
    small = g * (1.0 / np.linalg.norm(g))
    got, changed = run_clip("global_norm", 1.5, small, BOUNDS)
    assert not changed
    np.testing.assert_array_equal(got, small)


def test_layer_norm_clip_per_layer():
    g = np.random.default_rng(8).normal(0.0, 1.0, 19)
    g[6:10] *= 0.01
    got, changed = run_clip("layer_norm", 0.5, g, BOUNDS)
    assert changed
    norms = [np.linalg.norm(got[lo:hi]) for lo, hi in pairwise(BOUNDS)]
    assert norms[0] == pytest.approx(0.5, rel=1e-15)
    assert norms[2] == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(got[6:10], g[6:10])  # the small layer is left alone


def test_value_clip_changes_direction():
    g = np.array([3.0, -0.2, -7.0, 0.5])
    got, changed = run_clip("value", 1.0, g, np.array([0, 4], dtype=np.int64))
    assert changed
    np.testing.assert_array_equal(got, [1.0, -0.2, -1.0, 0.5])
