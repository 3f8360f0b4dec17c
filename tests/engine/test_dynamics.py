"""Sharpness (power iteration on Hessian-vector products), stability thresholds and the
learning-rate range test."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ExperimentConfig, NetworkConfig, OptimizerConfig
from engine.dynamics import (
    RangeTestCancelled,
    SharpnessTracker,
    hessian_vector_product,
    lr_range_test,
    session_sharpness,
    stability_threshold,
    top_hessian_eigenvalue,
)
from engine.model import Model
from engine.network import W_OFF
from engine.session import TrainingSession
from engine.surfaces import make_surface, run_optimizer


class QuadraticModel:
    """½θᵀHθ with a known spectrum, behind the Model's loss_and_gradients signature."""

    def __init__(self, eigenvalues, seed=0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
        self.eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        self.q = q
        self.h = q @ np.diag(self.eigenvalues) @ q.T

    def loss_and_gradients(self, x, y, l2=0.0, theta=None):
        return 0.5 * theta @ self.h @ theta, self.h @ theta


def numeric_hessian(model, theta, x, y, l2, h=1e-5):
    n = theta.size
    hess = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        _, gp = model.loss_and_gradients(x, y, l2, theta=theta + e)
        _, gm = model.loss_and_gradients(x, y, l2, theta=theta - e)
        hess[:, i] = (gp - gm) / (2 * h)
    return 0.5 * (hess + hess.T)


# -- sharpness ------------------------------------------------------------------------------
@pytest.mark.parametrize("eigenvalues, magnitude, largest", [
    ([5.0, 3.0, 1.0, 0.2, -0.5, -1.0, 0.0, 2.0], 5.0, 5.0),
    ([-7.0, 4.0, 1.0, 0.5, -2.0, 0.1, 3.0, -0.3], -7.0, 4.0),
])
def test_power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic(
        eigenvalues, magnitude, largest):
    model = QuadraticModel(eigenvalues)
    theta = np.random.default_rng(1).standard_normal(len(eigenvalues))
    nothing = np.zeros((1, 1))
    for which, expected in (("magnitude", magnitude), ("largest", largest)):
        lam, vec, used = top_hessian_eigenvalue(model, theta, nothing, nothing, iters=500,
                                                tol=1e-12, which=which)
        assert lam == pytest.approx(expected, rel=1e-6), which
        u = model.q[:, list(model.eigenvalues).index(expected)]
        assert abs(vec @ u) == pytest.approx(1.0, abs=1e-5)
        assert used < 500 * (2 if which == "largest" else 1)
    # the default tolerance is good to a fraction of a percent, in far fewer steps
    lam, _, used = top_hessian_eigenvalue(model, theta, nothing, nothing)
    assert lam == pytest.approx(magnitude, rel=1e-3) and used <= 50


def _least_squares_network(n=300, d=3, seed=0):
    """A linear network ŷ = (xW₁ + b₁)W₂ + b₂ with W₁ = I, b₁ = 0, W₂ = 0, b₂ = mean(y), and
    targets whose residual is orthogonal to [x, 1]: there the MSE Hessian is exactly
    (2/n)·FᵀF on (W₂, b₂), F = [x, 1], and zero elsewhere (plus l2 on the weights)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.array([1.0, 2.0, 3.0])[:d]
    f = np.hstack([x, np.ones((n, 1))])
    y = rng.standard_normal(n) + 5.0
    y = y - f @ np.linalg.lstsq(f, y, rcond=None)[0] + y.mean()  # residual ⟂ [x, 1]
    net = NetworkConfig(hidden_layers=1, width=d, activation="linear", loss="mse")
    model = Model(net, d, 1, "regression")
    model.weights(0)[:] = np.eye(d)
    model.biases(1)[:] = y.mean()
    return model, x, y.reshape(-1, 1), f


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_sharpness_of_a_linear_least_squares_network_is_the_top_eigenvalue_of_its_gram(l2):
    model, x, y, f = _least_squares_network()
    n, d = x.shape
    gram = 2.0 / n * f.T @ f  # the engine's MSE is the mean of squares, not half of it
    gram[:d, :d] += l2 * np.eye(d)  # W₂ are weights, b₂ is not
    expected = np.linalg.eigvalsh(gram).max()
    lam, vec, _ = top_hessian_eigenvalue(model, model.theta, x, y, l2, iters=300, tol=1e-12)
    assert lam == pytest.approx(expected, rel=1e-6)
    # the eigenvector lives on the output layer
    out = np.zeros(model.n_params, dtype=bool)
    out[model.layout[1, W_OFF]:] = True
    assert np.linalg.norm(vec[~out]) < 1e-4


@pytest.mark.parametrize("options", [
    {"network.activation": "tanh"},
    {"network.activation": "relu", "regularization.l2": 0.05},
    {"network.activation": "tanh", "network.batch_norm": True},
    {"network.loss": "bce", "data.dataset": "moons", "network.activation": "sigmoid"},
], ids=["tanh", "relu_l2", "batch_norm", "bce"])
def test_power_iteration_matches_the_full_finite_difference_hessian(options):
    config = ExperimentConfig().replace(**{"network.hidden_layers": 2, "network.width": 4,
                                           **options})
    s = TrainingSession(config)
    s.step(30)
    m, x, y = s.model, s.x_train[:200], s.y_train[:200]
    l2 = config.regularization.l2
    eig = np.linalg.eigvalsh(numeric_hessian(m, m.theta.copy(), x, y, l2))
    lam, _, _ = top_hessian_eigenvalue(m, m.theta, x, y, l2, iters=1000, tol=1e-10,
                                       which="largest")
    assert lam == pytest.approx(eig.max(), rel=1e-4)
    lam, _, _ = top_hessian_eigenvalue(m, m.theta, x, y, l2, iters=1000, tol=1e-10)
    assert lam == pytest.approx(eig[np.argmax(np.abs(eig))], rel=1e-4)


def test_hessian_vector_product_is_linear_in_the_direction():
    s = TrainingSession(ExperimentConfig().replace(**{"network.hidden_layers": 2}))
    m, x, y = s.model, s.probe_x, s.probe_y
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, m.n_params))
    hu, hv = (hessian_vector_product(m, m.theta, d, x, y) for d in (u, v))
    both = hessian_vector_product(m, m.theta, 2 * u - 3 * v, x, y)
    np.testing.assert_allclose(both, 2 * hu - 3 * hv, rtol=1e-4, atol=1e-6)
    assert u @ hv == pytest.approx(v @ hu, rel=1e-4)  # symmetric


def test_measuring_sharpness_leaves_the_run_untouched_and_is_reproducible():
    s = TrainingSession(ExperimentConfig())
    s.step(40)
    before = (s.model.theta.copy(), s.optimizer.s1.copy(), s.model.run_mean.copy())
    rows = len(s.history)
    first = session_sharpness(s)
    assert np.isfinite(first) and first > 0
    assert session_sharpness(s) == first
    assert all(np.array_equal(a, b) for a, b in
               zip(before, (s.model.theta, s.optimizer.s1, s.model.run_mean), strict=True))
    assert len(s.history) == rows and s.step_count == 40
    # the same run continues exactly as without the measurement
    twin = TrainingSession(ExperimentConfig())
    twin.step(40)
    assert np.array_equal(s.step(20).layer_grad_norm, twin.step(20).layer_grad_norm)


def test_tracker_measures_every_k_steps_against_the_stability_threshold():
    s = TrainingSession(ExperimentConfig())
    tracker = SharpnessTracker(every=25)
    for _ in range(4):
        tracker.update(s)
        s.step(25)
    tracker.update(s)
    tracker.update(s)  # already measured at this step
    assert tracker.steps.tolist() == [0, 25, 50, 75, 100]
    assert np.allclose(tracker.thresholds, 2.0 / s.config.optimizer.learning_rate)
    assert tracker.values[-1] == pytest.approx(session_sharpness(s), rel=1e-2)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_stability_threshold_is_where_gradient_descent_on_a_quadratic_diverges(name):
    """Diverges on a quadratic exactly when λ exceeds the threshold: 5 % either side."""
    lam = 10.0
    surface = make_surface("quadratic", lam1=1.0, lam2=lam)
    config = OptimizerConfig(name=name, momentum=0.9)
    critical = stability_threshold(config, lr=1.0) / lam  # threshold ∝ 1/η
    hyper = {} if name == "sgd" else {"momentum": 0.9}
    for factor, grows in ((0.95, False), (1.05, True)):
        lr = factor * critical
        assert (stability_threshold(config, lr) < lam) == grows
        y = run_optimizer(surface, name, lr, (0.0, 1.0), 1500, **hyper).points[:, 1]
        early, late = np.abs(y[:100]).max(), np.abs(y[-100:]).max()
        assert (late > early) == grows, factor
    assert np.isnan(stability_threshold(OptimizerConfig(name="adam")))


# -- learning-rate range test ---------------------------------------------------------------
def relu_regression(**dotted) -> ExperimentConfig:
    base = {"data.dataset": "plane", "network.activation": "relu", "network.loss": "mse"}
    return ExperimentConfig().replace(**{**base, **dotted})


@pytest.fixture(scope="module")
def spiral_test():
    return lr_range_test(ExperimentConfig())  # 200 steps from 1e-7 to 10, seeds 0, 1, 2


def test_range_test_raises_the_rate_exponentially(spiral_test):
    r = spiral_test
    grid = r.grid
    assert grid.shape == (200,) and grid[0] == pytest.approx(1e-7) and grid[-1] == 10.0
    np.testing.assert_allclose(np.diff(np.log(grid)), np.log(1e8) / 199)
    assert [run.seed for run in r.runs] == [0, 1, 2]
    for run in r.runs:
        k = run.lrs.size
        assert run.losses.shape == run.smoothed.shape == (k,) and k > 10
        np.testing.assert_allclose(run.lrs, grid[:k], rtol=1e-12)  # the rates used
        assert np.all(np.diff(run.lrs) > 0)
        assert run.smoothed[0] == run.losses[0]  # bias correction: no pull towards 0


def test_range_test_band_and_suggestions(spiral_test):
    r = spiral_test
    for name in ("median", "low", "high", "count"):
        assert getattr(r, name).shape == (200,), name
    reached = r.count > 0
    assert r.count.max() == 3 and r.count[0] == 3
    assert np.all(r.low[reached] <= r.median[reached])
    assert np.all(r.median[reached] <= r.high[reached])
    assert np.all(np.isnan(r.median[~reached]))
    for lr in (r.steepest, r.min_div_10):
        assert r.lr_min <= lr <= r.lr_max
    # the loss falls fastest at a rate that trains (not at 1e-7, where nothing moves)
    assert 1e-3 < r.steepest < 3.0
    # each run stopped because its smoothed loss blew past 4x its best
    for run in r.runs:
        assert run.stopped == "exceeded" and run.smoothed[-1] > 4 * run.smoothed.min()


def test_range_test_is_deterministic_per_seed(spiral_test):
    again = lr_range_test(ExperimentConfig(), seeds=(2, 0))
    for run, ref in zip(again.runs, (spiral_test.runs[2], spiral_test.runs[0]), strict=True):
        assert run.seed == ref.seed
        assert np.array_equal(run.losses, ref.losses)
        assert np.array_equal(run.smoothed, ref.smoothed)
    assert not np.array_equal(spiral_test.runs[0].losses[:10], spiral_test.runs[1].losses[:10])


def test_range_test_stops_on_divergence():
    r = lr_range_test(relu_regression(), n_steps=100, lr_max=1e4, stop_factor=1e300,
                      seeds=(0, 1))
    for run in r.runs:
        assert run.stopped == "diverged" and run.lrs.size < 100
        assert np.all(np.isfinite(run.losses)) and np.all(np.isfinite(run.smoothed))
    assert r.lr_min <= r.steepest <= r.lr_max and r.lr_min <= r.min_div_10 <= r.lr_max


def test_range_test_without_seeds_starts_from_the_configs_own_initialization():
    config = ExperimentConfig().replace(**{
        "run.seed": 7, "schedule.name": "cosine", "schedule.warmup_steps": 50})
    r = lr_range_test(config, n_steps=30, seeds=None)
    (run,) = r.runs
    assert run.seed is None
    assert run.losses[0] == TrainingSession(config).step(1).loss
    np.testing.assert_allclose(run.lrs, r.grid[: run.lrs.size])  # schedule set aside


def test_range_test_can_be_cancelled_and_checks_its_arguments():
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(RangeTestCancelled):
        lr_range_test(ExperimentConfig(), n_steps=50, cancel=cancel)
    assert len(calls) == 6
    for bad, match in (({"lr_min": 1.0, "lr_max": 0.1}, "lr_min"), ({"smooth": 1.0}, "smooth"),
                       ({"stop_factor": 1.0}, "stop_factor"), ({"n_steps": 1}, "n_steps"),
                       ({"seeds": ()}, "seeds")):
        with pytest.raises(ValueError, match=match):
            lr_range_test(ExperimentConfig(), **bad)
