"""Initialization schemes: shapes, reproducibility, moments against the formulas, LSUV."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.initializers import BIAS_SCHEMES, INITIALIZERS, init_layer, lsuv_scale

FAN_IN, FAN_OUT = 1000, 800
SCALE = 0.3

# Written out here, independently of the module: (mean, variance) for fan_in, fan_out, scale.
# The variance of U(-a, a) is a²/3.
EXPECTED = {
    "zeros": lambda fi, fo, s: (0.0, 0.0),
    "constant": lambda fi, fo, s: (s, 0.0),
    "uniform": lambda fi, fo, s: (0.0, s**2 / 3),
    "normal": lambda fi, fo, s: (0.0, s**2),
    "xavier_uniform": lambda fi, fo, s: (0.0, (6 / (fi + fo)) / 3),
    "xavier_normal": lambda fi, fo, s: (0.0, 2 / (fi + fo)),
    "lecun_uniform": lambda fi, fo, s: (0.0, (3 / fi) / 3),
    "lecun_normal": lambda fi, fo, s: (0.0, 1 / fi),
    "he_normal": lambda fi, fo, s: (0.0, 2 / fi),
    "he_uniform": lambda fi, fo, s: (0.0, (6 / fi) / 3),
    # unit-norm columns (tall) or rows (wide): each entry has variance 1/max(fi, fo)
    "orthogonal": lambda fi, fo, s: (0.0, 1 / max(fi, fo)),
    "lsuv": lambda fi, fo, s: (0.0, 1 / max(fi, fo)),
}
UNIFORM_BOUND = {
    "uniform": lambda fi, fo, s: s,
    "xavier_uniform": lambda fi, fo, s: math.sqrt(6 / (fi + fo)),
    "lecun_uniform": lambda fi, fo, s: math.sqrt(3 / fi),
    "he_uniform": lambda fi, fo, s: math.sqrt(6 / fi),
}
NORMAL = ["normal", "xavier_normal", "lecun_normal", "he_normal"]
RANDOM = [n for n in INITIALIZERS if n not in ("zeros", "constant")]


def _weights(name: str, seed: int = 0, n_in: int = FAN_IN, n_out: int = FAN_OUT, **kw):
    kw.setdefault("weight_scale", SCALE)
    w, _ = init_layer(np.random.default_rng(seed), n_in, n_out, name, "zeros", **kw)
    return w


def test_registry_order_and_bias_schemes():
    assert list(INITIALIZERS) == [
        "zeros",
        "constant",
        "uniform",
        "normal",
        "xavier_uniform",
        "xavier_normal",
        "lecun_uniform",
        "lecun_normal",
        "he_normal",
        "he_uniform",
        "orthogonal",
        "lsuv",
    ]
    assert BIAS_SCHEMES == [n for n in INITIALIZERS if n not in ("orthogonal", "lsuv")]
    assert set(EXPECTED) == set(INITIALIZERS)  # a new scheme needs its expected moments


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_entry_is_described(name):
    init = INITIALIZERS[name]
    assert init.name == name
    assert init.label.strip() and len(init.label) <= 30
    assert init.description.strip() and "\n" not in init.description
    assert init.formula.strip() and "\n" not in init.formula
    assert init.uses_scale == (name in ("constant", "uniform", "normal"))


@pytest.mark.parametrize("name", list(INITIALIZERS))
@pytest.mark.parametrize(("n_in", "n_out"), [(3, 5), (5, 3), (1, 1), (7, 1), (1, 7)])
def test_weight_shape_dtype_finite(name, n_in, n_out):
    w = _weights(name, n_in=n_in, n_out=n_out)
    assert w.shape == (n_in, n_out)
    assert w.dtype == np.float64
    assert w.flags.c_contiguous
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("name", BIAS_SCHEMES)
def test_bias_shape_dtype_finite(name):
    w, b = init_layer(np.random.default_rng(1), 4, 6, "he_normal", name, bias_scale=0.5)
    assert b.shape == (6,)
    assert b.dtype == np.float64
    assert b.flags.c_contiguous
    assert np.all(np.isfinite(b))


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_reproducible_from_seed(name):
    a, b = _weights(name, seed=7, n_in=30, n_out=20), _weights(name, seed=7, n_in=30, n_out=20)
    np.testing.assert_array_equal(a, b)
    c = _weights(name, seed=8, n_in=30, n_out=20)
    assert np.array_equal(a, c) == (name not in RANDOM)


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_weight_moments_match_formula(name):
    w = _weights(name)
    mean, var = EXPECTED[name](FAN_IN, FAN_OUT, SCALE)
    if var == 0.0:
        np.testing.assert_array_equal(w, np.full_like(w, mean))
        return
    # mean within 5 standard errors; variance within 2 % (the estimate's error is ~0.2 %,
    # while the nearest wrong formula, e.g. 1/fan_in for 2/(fan_in + fan_out), is 11 % off)
    assert abs(w.mean() - mean) < 5 * math.sqrt(var / w.size)
    assert w.var() == pytest.approx(var, rel=0.02)


@pytest.mark.parametrize("name", BIAS_SCHEMES)
def test_bias_moments_use_the_layer_fans(name):
    n_in, n_out, scale = 50, 200_000, -0.4  # constant biases may be negative
    _, b = init_layer(np.random.default_rng(2), n_in, n_out, "zeros", name, bias_scale=scale)
    mean, var = EXPECTED[name](n_in, n_out, scale)
    if var == 0.0:
        np.testing.assert_array_equal(b, np.full_like(b, mean))
        return
    assert abs(b.mean() - mean) < 5 * math.sqrt(var / b.size)
    assert b.var() == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("name", list(UNIFORM_BOUND))
def test_uniform_schemes_fill_their_interval(name):
    w = _weights(name)
    a = UNIFORM_BOUND[name](FAN_IN, FAN_OUT, SCALE)
    assert np.abs(w).max() <= a
    assert np.abs(w).max() > 0.999 * a


@pytest.mark.parametrize("name", NORMAL + list(UNIFORM_BOUND))
def test_normal_and_uniform_schemes_have_their_shape(name):
    # excess kurtosis: 0 for a Gaussian, -1.2 for a uniform distribution
    w = _weights(name)
    z = (w - w.mean()) / w.std()
    kurtosis = (z**4).mean() - 3.0
    assert kurtosis == pytest.approx(0.0 if name in NORMAL else -1.2, abs=0.05)


@pytest.mark.parametrize("name", list(INITIALIZERS))
@pytest.mark.parametrize("gain", [0.0, 0.5, math.sqrt(2.0), 3.0])
def test_gain_multiplies_weights_not_biases(name, gain):
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    w1, b1 = init_layer(rng1, 40, 30, name, "normal", gain=1.0, weight_scale=SCALE, bias_scale=1)
    wg, bg = init_layer(rng2, 40, 30, name, "normal", gain=gain, weight_scale=SCALE, bias_scale=1)
    np.testing.assert_array_equal(wg, gain * w1)
    assert wg.std() == pytest.approx(
        gain * w1.std(), rel=1e-12, abs=1e-12
    )  # abs: a constant's std is ~1e-16
    np.testing.assert_array_equal(bg, b1)


@pytest.mark.parametrize("name", ["orthogonal", "lsuv"])
@pytest.mark.parametrize(
    ("n_in", "n_out"), [(1, 1), (64, 64), (50, 20), (20, 50), (7, 1), (1, 7), (1000, 800)]
)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_orthonormal(name, n_in, n_out, gain):
    w = _weights(name, seed=4, n_in=n_in, n_out=n_out, gain=gain)
    k = min(n_in, n_out)
    gram = w.T @ w if n_in >= n_out else w @ w.T  # (k, k)
    np.testing.assert_allclose(gram, gain**2 * np.eye(k), rtol=0, atol=1e-12 * gain**2)


def test_orthogonal_signs_are_unbiased():
    # Householder QR alone makes Q[0, 0] negative every time; the sign fix of Saxe et al.
    # (and torch.nn.init.orthogonal_) makes the matrix Haar-distributed, so either sign.
    rng = np.random.default_rng(5)
    first = [INITIALIZERS["orthogonal"].sample(rng, 4, 4, (4, 4), 0.0)[0, 0] for _ in range(400)]
    assert 0.4 < np.mean(np.array(first) > 0) < 0.6


@pytest.mark.parametrize("name", ["orthogonal", "lsuv"])
def test_matrix_schemes_refuse_bias(name):
    with pytest.raises(ValueError, match=f"init.biases: '{name}' needs a matrix"):
        init_layer(np.random.default_rng(0), 3, 4, "he_normal", name)


def test_unknown_names_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"init.weights .*'he_norml'.*did you mean 'he_normal'"):
        init_layer(rng, 3, 4, "he_norml", "zeros")
    with pytest.raises(ValueError, match=r"init.biases .*'nope'"):
        init_layer(rng, 3, 4, "he_normal", "nope")


# -- LSUV ----------------------------------------------------------------------------------
def _linear_layer(n_in=20, n_out=10, batch=500, x_std=3.0, seed=6):
    rng = np.random.default_rng(seed)
    x = x_std * rng.standard_normal((batch, n_in))  # (batch, n_in)
    w, b = init_layer(rng, n_in, n_out, "lsuv", "zeros")
    return x, w, b


def test_lsuv_brings_output_to_unit_variance():
    x, w, b = _linear_layer()
    w_id = id(w)
    assert (x @ w + b).var() > 4.0  # orthogonal start on inputs with std 3
    iterations = lsuv_scale(w, b, lambda: x @ w + b, tolerance=0.02, max_iter=20)
    assert id(w) == w_id  # rescaled in place
    assert iterations == 1  # a linear layer without bias is exact after one rescaling
    assert abs((x @ w + b).var() - 1.0) < 0.02


def test_lsuv_with_bias_takes_several_iterations():
    x, w, b = _linear_layer()
    b += np.linspace(-1.0, 1.0, b.size)  # adds ~0.4 of fixed variance across units
    tolerance = 1e-6
    iterations = lsuv_scale(w, b, lambda: x @ w + b, tolerance=tolerance, max_iter=50)
    assert 2 <= iterations < 50
    assert abs((x @ w + b).var() - 1.0) < tolerance


def test_lsuv_already_unit_variance_does_nothing():
    x, w, b = _linear_layer(x_std=1.0, n_in=10, n_out=10, batch=20_000)
    w *= 1.0 / math.sqrt((x @ w).var())
    w0 = w.copy()
    assert lsuv_scale(w, b, lambda: x @ w + b, tolerance=0.02, max_iter=20) == 0
    np.testing.assert_array_equal(w, w0)


def test_lsuv_stubborn_layer_stops_at_max_iter():
    # biases spread over ±3.5 give the pre-activations a variance > 1 whatever W is
    x, w, b = _linear_layer()
    b += np.linspace(-3.5, 3.5, b.size)
    calls = []

    def forward():
        calls.append(1)
        return x @ w + b

    assert lsuv_scale(w, b, forward, tolerance=0.02, max_iter=7) == 7
    assert len(calls) == 7
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("output", [0.0, np.nan, np.inf])
def test_lsuv_stops_on_zero_or_non_finite_variance(output):
    x, w, b = _linear_layer()
    w0 = w.copy()
    iterations = lsuv_scale(w, b, lambda: np.full((5, 10), output), 0.02, 20)
    assert iterations == 0
    np.testing.assert_array_equal(w, w0)
