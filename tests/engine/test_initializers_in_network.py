"""Initialization as a whole network sees it: LSUV on the probe batch, gain, and symmetry."""

from __future__ import annotations

import numpy as np
import pytest

from engine import ExperimentConfig, TrainingSession


def make_session(**settings) -> TrainingSession:
    base = {"data.n_samples": 200, "network.hidden_layers": 4, "network.width": 12,
            "run.batch_size": 32}
    return TrainingSession(ExperimentConfig().replace(**{**base, **settings}))


@pytest.mark.parametrize("gain", [1.0, 3.0])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("tolerance", [0.02, 0.002])
def test_lsuv_gives_unit_pre_activation_variance(activation, tolerance, gain):
    s = make_session(**{"init.weights": "lsuv", "init.gain": gain,
                        "init.lsuv_tolerance": tolerance, "network.activation": activation,
                        "init.lsuv_max_iter": 50})
    model, x = s.model, s.probe_x
    model.forward(x)
    variances = [float(np.var(model.block("z", l, x.shape[0]))) for l in range(model.n_layers)]
    np.testing.assert_allclose(variances, 1.0, atol=tolerance)
    assert max(model.lsuv_iterations) < 50  # converged, not stopped by max_iter
    assert sum(model.lsuv_iterations) > 0


def test_lsuv_without_rescaling_would_not_be_unit_variance():
    """Guard for the test above: the orthogonal start alone is far from unit variance."""
    s = make_session(**{"init.weights": "orthogonal", "network.activation": "relu"})
    s.model.forward(s.probe_x)
    var = float(np.var(s.model.block("z", s.n_layers - 1, s.probe_x.shape[0])))
    assert abs(var - 1.0) > 0.1


@pytest.mark.parametrize("scheme", ["xavier_normal", "he_uniform", "orthogonal", "constant"])
def test_gain_multiplies_the_weights(scheme):
    one = make_session(**{"init.weights": scheme, "init.biases": "normal",
                          "init.bias_scale": 0.1})
    big = make_session(**{"init.weights": scheme, "init.biases": "normal",
                          "init.bias_scale": 0.1, "init.gain": 2.5})
    for l in range(one.n_layers):
        w1, b1 = one.get_layer(l)
        w2, b2 = big.get_layer(l)
        assert np.abs(w1).max() > 0
        np.testing.assert_allclose(w2, 2.5 * w1, rtol=1e-15)
        np.testing.assert_array_equal(b2, b1)  # the gain is for weights only


def test_constant_init_keeps_hidden_units_identical():
    """Symmetry: units that start equal get equal gradients and never become different."""
    s = make_session(**{"init.weights": "constant", "init.weight_scale": 0.1,
                        "network.activation": "tanh", "optimizer.learning_rate": 0.5})
    w0 = [s.get_layer(l)[0] for l in range(s.n_layers)]
    s.step(50)
    assert not s.diverged
    for l in range(s.n_layers - 1):
        w, b = s.get_layer(l)
        assert np.abs(w - w0[l]).max() > 1e-3, f"layer {l} did not train"
        # every column (unit) equal to the first one; the biases too
        np.testing.assert_allclose(w, np.repeat(w[:, :1], w.shape[1], axis=1), rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_allclose(b, b[0], rtol=1e-10, atol=1e-14)
    # the output layer sees identical hidden units, so its rows stay equal
    w_out, _ = s.get_layer(s.n_layers - 1)
    np.testing.assert_allclose(w_out, np.repeat(w_out[:1], w_out.shape[0], axis=0),
                               rtol=1e-10, atol=1e-14)
    assert np.ptp(w_out[0]) > 1e-3  # but its columns (classes) did separate


def test_zero_init_with_tanh_only_trains_output_biases():
    s = make_session(**{"init.weights": "zeros", "network.activation": "tanh",
                        "optimizer.learning_rate": 0.5})
    s.step(50)
    for l in range(s.n_layers):
        w, b = s.get_layer(l)
        np.testing.assert_array_equal(w, 0.0)
        if l < s.n_layers - 1:
            np.testing.assert_array_equal(b, 0.0)
    assert np.abs(s.get_layer(s.n_layers - 1)[1]).max() > 1e-3
