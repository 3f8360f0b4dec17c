"""Backpropagation against central finite differences (sklearn's test_gradient).

Every activation x every loss x batch norm on/off x residual off/hidden-only/all layers,
with an L2 penalty, on a small network (3 hidden layers of 5 units, a batch of 7).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import ExperimentConfig, TrainingSession
from engine.activations import ACTIVATIONS
from engine.config import NetworkConfig
from engine.losses import LOSSES
from engine.model import Model, encode_targets, output_units

H = 1e-6  # finite-difference step
RTOL = 1e-6  # relative error allowed between backprop and finite differences
KINK = 1e-4  # no pre-activation closer than this to 0 (ReLU-like kinks)
BATCH, WIDTH, HIDDEN = 7, 5, 3
L2 = 0.03

# residual: "off"; "hidden" (4 inputs, so layer 0 has no skip); "all" (5 inputs = width)
N_INPUTS = {"off": 4, "hidden": 4, "all": WIDTH}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


def numeric_gradient(model: Model, x, y, l2: float, theta: np.ndarray) -> np.ndarray:
    out = np.empty_like(theta)
    t = theta.copy()
    for i in range(t.size):
        t[i] = theta[i] + H
        up, _ = model.loss_and_gradients(x, y, l2, t)
        t[i] = theta[i] - H
        down, _ = model.loss_and_gradients(x, y, l2, t)
        t[i] = theta[i]
        out[i] = (up - down) / (2 * H)
    return out


def smallest_pre_activation(model: Model, x: np.ndarray, theta: np.ndarray) -> float:
    """min |z| over every layer's activation input (after batch norm), training mode."""
    model.forward(x, training=True, theta=theta)
    return min(float(np.abs(model.block("z", l, x.shape[0])).min())
               for l in range(model.n_layers))


def draw_problem(model: Model, task: str, n_classes: int, loss: str, seed: int):
    """(x, y, theta) with theta ~ N(0, 0.5²) and no pre-activation within KINK of 0.

    Seeds are tried in order, so the problem is the same on every run."""
    for attempt in range(50):
        rng = np.random.default_rng([seed, attempt])
        x = rng.normal(size=(BATCH, model.n_inputs))
        if task == "regression":
            labels = rng.uniform(0.05, 0.95, size=BATCH)
        else:
            labels = np.arange(BATCH) % n_classes  # every class present
            rng.shuffle(labels)
        y = encode_targets(loss, task, n_classes, labels)
        theta = rng.normal(0.0, 0.5, size=model.n_params)
        if smallest_pre_activation(model, x, theta) > KINK:
            return x, y, theta
    raise AssertionError("no draw kept the pre-activations away from the kinks")


def check_gradient(network: NetworkConfig, n_inputs: int, task: str, n_classes: int,
                   l2: float, seed: int) -> None:
    k = output_units(network.loss, task, n_classes)
    model = Model(network, n_inputs, k, task)
    x, y, theta = draw_problem(model, task, n_classes, network.loss, seed)
    before = (theta.copy(), model.run_mean.copy(), model.run_var.copy())

    loss, grad = model.loss_and_gradients(x, y, l2, theta)
    numeric = numeric_gradient(model, x, y, l2, theta)

    assert np.isfinite(loss) and loss > 0
    assert np.linalg.norm(grad) > 1e-3  # a vanishing gradient would pass trivially
    err = relative_error(grad, numeric)
    assert err < RTOL, f"relative error {err:.3g}"
    # no state changed: parameters, running statistics
    np.testing.assert_array_equal(theta, before[0])
    np.testing.assert_array_equal(model.run_mean, before[1])
    np.testing.assert_array_equal(model.run_var, before[2])


@pytest.mark.parametrize("residual", ["off", "hidden", "all"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradient(activation, loss, batch_norm, residual):
    network = NetworkConfig(hidden_layers=HIDDEN, width=WIDTH, activation=activation,
                            loss=loss, batch_norm=batch_norm, residual=residual != "off")
    n_classes = 2 if loss == "bce" else 3
    seed = sorted(ACTIVATIONS).index(activation) * 100 + sorted(LOSSES).index(loss)
    check_gradient(network, N_INPUTS[residual], "classification", n_classes, L2, seed)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("output_activation", list(ACTIVATIONS))
def test_gradient_mse_output_activation(output_activation, batch_norm):
    """Regression with MSE through an output non-linearity (sigmoid: the saturating case)."""
    network = NetworkConfig(hidden_layers=HIDDEN, width=WIDTH, activation="tanh", loss="mse",
                            output_activation=output_activation, batch_norm=batch_norm)
    check_gradient(network, 3, "regression", 0, L2, seed=7)


def test_gradient_mixed_activations_per_layer():
    network = NetworkConfig(hidden_layers=HIDDEN, width=WIDTH, activations=("elu", "sigmoid",
                            "leaky_relu"), loss="softmax_ce", batch_norm=True, residual=True)
    check_gradient(network, WIDTH, "classification", 3, L2, seed=11)


def test_l2_penalty_is_half_l2_sum_of_squared_weights():
    """The L2 term covers weights only: not biases, not batch-norm gamma/beta."""
    network = NetworkConfig(hidden_layers=2, width=4, activation="tanh", batch_norm=True)
    model = Model(network, 3, 3, "classification")
    rng = np.random.default_rng(3)
    theta = rng.normal(0.0, 0.5, size=model.n_params)
    x = rng.normal(size=(6, 3))
    y = encode_targets("softmax_ce", "classification", 3, np.arange(6) % 3)
    loss0, grad0 = model.loss_and_gradients(x, y, 0.0, theta)
    loss1, grad1 = model.loss_and_gradients(x, y, 0.5, theta)
    mask = model.weight_mask()
    assert loss1 - loss0 == pytest.approx(0.25 * np.sum(theta[mask] ** 2), rel=1e-12)
    np.testing.assert_allclose(grad1[mask] - grad0[mask], 0.5 * theta[mask], rtol=1e-9)
    np.testing.assert_array_equal(grad1[~mask], grad0[~mask])


@pytest.mark.parametrize(
    "settings",
    [
        {"data.dataset": "spiral", "network.loss": "softmax_ce", "network.batch_norm": True},
        {"data.dataset": "moons", "network.loss": "bce", "network.residual": True},
        {"data.dataset": "plane", "network.loss": "mse"},
    ],
    ids=["softmax_ce-bn", "bce-residual", "mse-regression"],
)
def test_session_loss_and_gradients_matches_flat(settings):
    config = ExperimentConfig().replace(**{
        "data.n_samples": 60, "network.hidden_layers": HIDDEN, "network.width": WIDTH,
        "regularization.l2": L2, **settings,
    })
    session = TrainingSession(config)
    ds, model = session.dataset, session.model
    x, labels = session.x_train[:BATCH], ds.y_train[:BATCH]

    loss, grads = session.loss_and_gradients(x, labels)
    y = encode_targets(config.network.loss, ds.task, ds.n_classes, labels)
    flat_loss, flat = model.loss_and_gradients(x, y, L2)

    assert loss == flat_loss
    assert len(grads) == model.n_layers == HIDDEN + 1
    for l, (dw, db) in enumerate(grads):
        assert dw.shape == model.weights(l).shape and db.shape == model.biases(l).shape
        np.testing.assert_array_equal(dw, model.weights(l, flat))
        np.testing.assert_array_equal(db, model.biases(l, flat))
    # and the flat gradient is the true one (first hidden layer's weights, by differences)
    w_off = int(model.layout[0, 2])
    theta = model.theta.copy()
    for i in range(w_off, w_off + 3):
        t = theta.copy()
        t[i] += H
        up, _ = model.loss_and_gradients(x, y, L2, t)
        t[i] -= 2 * H
        down, _ = model.loss_and_gradients(x, y, L2, t)
        assert flat[i] == pytest.approx((up - down) / (2 * H), rel=1e-5, abs=1e-9)
    # already-encoded targets give the same answer
    if ds.task == "classification":
        loss2, grads2 = session.loss_and_gradients(x, y)
        assert loss2 == loss
        np.testing.assert_array_equal(grads2[0][0], grads[0][0])
