"""Optimizer steps against values worked out by hand (sklearn's test_fit), gradient descent
on a quadratic, and per-layer learning-rate multipliers in a training session."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import ExperimentConfig, TrainingSession
from engine.config import OptimizerConfig
from engine.optimizers import OPTIMIZERS, Optimizer

ETA = 0.1
THETA0 = [1.0, -2.0]
GRADS = [[0.5, 1.0], [-0.5, 2.0], [0.25, -1.0]]
EPS = 1e-8
S = math.sqrt

# theta after each of the three steps, from the update formulas (η = 0.1, μ = 0.9, ρ = 0.9,
# β₁ = 0.9, β₂ = 0.999, ε = 1e-8, AdamW λ = 0.01 on index 0 only).
EXPECTED = {
    # θ ← θ − η·g
    "sgd": [[0.95, -2.1], [1.0, -2.3], [0.975, -2.2]],
    # v ← μv + g: v1 = [.5, 1], v2 = [-.05, 2.9], v3 = [.205, 1.61]; θ ← θ − η·v
    "momentum": [[0.95, -2.1], [0.955, -2.39], [0.9345, -2.551]],
    # θ ← θ − η·(g + μ·v): g + μv = [.95, 1.9], [-.545, 4.61], [.4345, .449]
    "nesterov": [[0.905, -2.19], [0.9595, -2.651], [0.91605, -2.6959]],
    # G = [.25, 1], [.5, 5], [.5625, 6]; θ ← θ − η·g / (√G + ε)
    "adagrad": [
        [1 - 0.1 * 0.5 / (0.5 + EPS), -2 - 0.1 * 1 / (1 + EPS)],
        [1 - 0.1 * 0.5 / (0.5 + EPS) + 0.1 * 0.5 / (S(0.5) + EPS),
         -2 - 0.1 / (1 + EPS) - 0.1 * 2 / (S(5) + EPS)],
        [1 - 0.1 * 0.5 / (0.5 + EPS) + 0.1 * 0.5 / (S(0.5) + EPS) - 0.1 * 0.25 / (0.75 + EPS),
         -2 - 0.1 / (1 + EPS) - 0.1 * 2 / (S(5) + EPS) + 0.1 / (S(6) + EPS)],
    ],
    # s = [.025, .1], [.0475, .49], [.04900, .541]; θ ← θ − η·g / (√s + ε)
    "rmsprop": [
        [1 - 0.05 / (S(0.025) + EPS), -2 - 0.1 / (S(0.1) + EPS)],
        [1 - 0.05 / (S(0.025) + EPS) + 0.05 / (S(0.0475) + EPS),
         -2 - 0.1 / (S(0.1) + EPS) - 0.2 / (0.7 + EPS)],
        [1 - 0.05 / (S(0.025) + EPS) + 0.05 / (S(0.0475) + EPS) - 0.025 / (S(0.049) + EPS),
         -2 - 0.1 / (S(0.1) + EPS) - 0.2 / (0.7 + EPS) + 0.1 / (S(0.541) + EPS)],
    ],
}


def _adam(decay: float) -> list[list[float]]:
    """Adam (decay = 0) or AdamW (decay λ on index 0) written out step by step."""
    # m̂_t = m_t / (1 - 0.9^t), v̂_t = v_t / (1 - 0.999^t)
    m1, v1 = [0.05, 0.1], [0.00025, 0.001]  # (1-β)·g
    m2 = [0.9 * 0.05 - 0.05, 0.9 * 0.1 + 0.2]  # [-0.005, 0.29]
    v2 = [0.999 * 0.00025 + 0.00025, 0.999 * 0.001 + 0.004]
    m3 = [0.9 * m2[0] + 0.025, 0.9 * m2[1] - 0.1]
    v3 = [0.999 * v2[0] + 0.0000625, 0.999 * v2[1] + 0.001]
    theta, out = [1.0, -2.0], []
    for t, (m, v) in enumerate([(m1, v1), (m2, v2), (m3, v3)], start=1):
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        new = [theta[i] - ETA * (m[i] / c1) / (S(v[i] / c2) + EPS) for i in range(2)]
        new[0] -= ETA * decay * theta[0]  # decoupled: the θ before this step
        theta = new
        out.append(theta)
    return out


EXPECTED["adam"] = _adam(0.0)
EXPECTED["adamw"] = _adam(0.01)


def make(name: str, n: int = 2, **kw) -> Optimizer:
    config = OptimizerConfig(name=name, learning_rate=ETA, momentum=0.9, rho=0.9, beta1=0.9,
                             beta2=0.999, epsilon=EPS, weight_decay=0.01, **kw)
    return Optimizer(name, config, n)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_steps_by_hand(name):
    opt = make(name)
    theta = np.array(THETA0)
    for step, (g, expected) in enumerate(zip(GRADS, EXPECTED[name], strict=True)):
        before = theta.copy()
        moved = opt.update_params(theta, np.array(g), ETA, decay_hi=1)
        np.testing.assert_allclose(theta, expected, rtol=1e-12, err_msg=f"step {step + 1}")
        assert moved == pytest.approx(np.linalg.norm(theta - before), rel=1e-12)


def test_hand_values_are_not_all_alike():
    """Guard: the table would not catch a swapped optimizer if two rows were equal."""
    finals = {name: tuple(np.round(v[-1], 9)) for name, v in EXPECTED.items()}
    assert len(set(finals.values())) == len(finals)


def test_sgd_first_step_example():
    opt = make("sgd")
    theta = np.array([1.0, -2.0])
    opt.update_params(theta, np.array([0.5, 1.0]))  # lr from the config
    np.testing.assert_allclose(theta, [0.95, -2.1], rtol=1e-15)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_first_step_is_eta_times_sign(name):
    """Bias correction makes the first step ≈ η·sign(g) whatever the gradient's scale."""
    g = np.array([1e-3, -50.0, 7.0, -1e-5])
    theta = np.zeros(4)
    make(name, n=4).update_params(theta, g, ETA)
    np.testing.assert_allclose(theta, -ETA * np.sign(g), rtol=1e-3)


def test_adamw_decays_only_below_decay_hi():
    """With zero gradient Adam does not move; AdamW shrinks θ[:decay_hi] by η·λ·θ."""
    theta = np.array([2.0, -3.0, 4.0, 5.0])
    make("adamw", n=4).update_params(theta, np.zeros(4), ETA, decay_hi=2)
    np.testing.assert_allclose(theta, [2.0 * (1 - 0.001), -3.0 * (1 - 0.001), 4.0, 5.0],
                               rtol=1e-15)
    theta = np.array([2.0, -3.0, 4.0, 5.0])
    make("adam", n=4).update_params(theta, np.zeros(4), ETA, decay_hi=2)
    np.testing.assert_array_equal(theta, [2.0, -3.0, 4.0, 5.0])


def test_state_arrays_hold_the_formula_values():
    opt = make("momentum")
    theta = np.array(THETA0)
    for g in GRADS[:2]:
        opt.update_params(theta, np.array(g), ETA)
    np.testing.assert_allclose(opt.state["velocity"], [-0.05, 2.9], rtol=1e-14)
    adam = make("adam")
    theta = np.array(THETA0)
    adam.update_params(theta, np.array(GRADS[0]), ETA)
    np.testing.assert_allclose(adam.state["m"], [0.05, 0.1], rtol=1e-14)
    np.testing.assert_allclose(adam.state["v"], [0.00025, 0.001], rtol=1e-12)
    assert adam.t[0] == 1


# -- gradient descent on f(θ) = ½·λ·θ² ------------------------------------------------------
LAMBDA = 4.0


def descend(eta_lambda: float, steps: int) -> np.ndarray:
    """Iterates of SGD on ½λθ² (gradient λθ), from θ = 1."""
    opt = make("sgd", n=1)
    theta = np.array([1.0])
    path = [1.0]
    for _ in range(steps):
        opt.update_params(theta, LAMBDA * theta, eta_lambda / LAMBDA)
        path.append(theta[0])
    return np.array(path)


@pytest.mark.parametrize("eta_lambda", [0.1, 0.5, 1.0, 1.5, 1.9])
def test_quadratic_converges_below_two(eta_lambda):
    path = descend(eta_lambda, 300)
    # θ_k = (1 − ηλ)^k θ_0 exactly as the formula says
    np.testing.assert_allclose(path[:50], (1 - eta_lambda) ** np.arange(50), rtol=1e-12,
                               atol=1e-300)
    assert abs(path[-1]) < 1e-12


@pytest.mark.parametrize("eta_lambda", [2.05, 2.5, 3.0])
def test_quadratic_diverges_above_two(eta_lambda):
    path = descend(eta_lambda, 100)
    ratio = np.abs(path[1:] / path[:-1])
    np.testing.assert_allclose(ratio, eta_lambda - 1, rtol=1e-12)  # |θ| grows each step
    assert abs(path[-1]) > 1e2


@pytest.mark.parametrize("eta_lambda", [1.2, 1.5, 1.9])
def test_quadratic_oscillates_between_one_and_two(eta_lambda):
    path = descend(eta_lambda, 40)
    signs = np.sign(path)
    assert np.all(signs[1:] == -signs[:-1])  # alternates every step ...
    assert np.all(np.abs(path[1:]) < np.abs(path[:-1]))  # ... while shrinking


def test_quadratic_no_oscillation_below_one():
    path = descend(0.5, 40)
    assert np.all(path > 0)
    assert np.all(np.diff(path) < 0)


# -- per-layer learning-rate multipliers in a session --------------------------------------
def session(name: str, mults: list[float] | None = None) -> TrainingSession:
    settings = {
        "data.n_samples": 80, "network.hidden_layers": 3, "network.width": 6,
        "network.batch_norm": True, "optimizer.name": name, "optimizer.learning_rate": 0.05,
        "run.batch_size": 16,
    }
    if mults is not None:
        settings["optimizer.layer_lr_multipliers"] = mults
    return TrainingSession(ExperimentConfig().replace(**settings))


def layer_params(s: TrainingSession, l: int) -> np.ndarray:
    lo, hi = s.model.bounds[l], s.model.bounds[l + 1]  # W, b, gamma, beta
    return s.model.theta[lo:hi].copy()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_zero_multiplier_freezes_a_layer(name):
    s = session(name, [0.0, 1.0, 1.0, 1.0])
    before = [layer_params(s, l) for l in range(s.n_layers)]
    s.step(20)
    assert not s.diverged
    np.testing.assert_array_equal(layer_params(s, 0), before[0])
    for l in range(1, s.n_layers):
        assert np.abs(layer_params(s, l) - before[l]).max() > 1e-4, f"layer {l} did not move"


def test_multiplier_scales_the_first_sgd_step():
    base, fast = session("sgd"), session("sgd", [1.0, 2.0, 1.0, 0.5])
    start = [layer_params(base, l) for l in range(base.n_layers)]
    np.testing.assert_array_equal(start[1], layer_params(fast, 1))  # same seeds, same start
    base.step(1)
    fast.step(1)
    for l, m in enumerate([1.0, 2.0, 1.0, 0.5]):
        moved_base = layer_params(base, l) - start[l]
        moved_fast = layer_params(fast, l) - start[l]
        assert np.abs(moved_base).max() > 0
        np.testing.assert_allclose(moved_fast, m * moved_base, rtol=1e-12, atol=1e-18)
