"""Loss landscapes: slices against the session's objective and a numpy reference, filter
normalization, PCA directions of a known planar path, 1-D slices, cancellation, trajectory
recording and determinism."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

from engine import ExperimentConfig, TrainingSession
from engine.activations import reference
from engine.landscape import (
    DIRECTION_KINDS,
    MAX_GRID,
    TrajectoryRecorder,
    gradient_line,
    interpolation_path,
    loss_at,
    pca_directions,
    project_onto,
    random_directions,
    session_gradient_line,
    session_interpolation,
    session_slice_2d,
    slice_2d,
)
from engine.landscape_kernels import full_batch_gradient, parallel_region
from engine.losses import reference_loss
from engine.network import A_OFF

SEED = 20240611

CONFIGS = {
    "tanh": {},
    "relu-bn-residual": {"network.activation": "relu", "network.batch_norm": True,
                         "network.residual": True},
    "sigmoid-bce": {"network.activation": "sigmoid", "network.loss": "bce",
                    "data.dataset": "moons"},
    "elu-mse-regression": {"network.activation": "elu", "network.loss": "mse",
                           "data.dataset": "plane"},
}


def trained(name: str = "tanh", steps: int = 30, **dotted) -> TrainingSession:
    """A small session (4 x 16, L2 1e-3) a few steps into training."""
    base = {"network.hidden_layers": 3, "network.width": 12, "regularization.l2": 1e-3,
            "data.n_samples": 300, **CONFIGS[name], **dotted}
    session = TrainingSession(ExperimentConfig().replace(**base))
    session.step(steps)
    return session


def objective(session: TrainingSession, theta: np.ndarray | None = None) -> float:
    """The session's evaluation-mode objective: Model.evaluate's data loss + l2/2·ΣW²."""
    m = session.model
    theta = m.theta if theta is None else theta
    data_loss, _ = m.evaluate(session.x_train, session.y_train, theta=theta)
    w = theta[m.weight_mask()]
    return data_loss + 0.5 * session.config.regularization.l2 * float(w @ w)


def numpy_objective(session: TrainingSession, theta: np.ndarray) -> float:
    """The same objective written in plain numpy (evaluation-mode batch norm)."""
    m, cfg = session.model, session.config.network
    h = session.x_train
    for l, info in enumerate(m.layers()):
        z = h @ m.weights(l, theta) + m.biases(l, theta)
        bn = m.bn_params(l, theta)
        if bn is not None:
            s0 = int(m.layout[l, A_OFF])
            mean, var = m.run_mean[s0 : s0 + info.n_out], m.run_var[s0 : s0 + info.n_out]
            z = bn[0] * (z - mean) / np.sqrt(var + cfg.bn_epsilon) + bn[1]
        if l == m.n_layers - 1:
            h = z
            break
        a = reference(info.activation, z)
        h = a + h if info.residual else a
    data = reference_loss(cfg.loss, m.output_activation, h, session.y_train)
    w = theta[m.weight_mask()]
    return data + 0.5 * session.config.regularization.l2 * float(w @ w)


def directions(session: TrainingSession, seed: int = SEED):
    return random_directions(session.model, session.model.theta, np.random.default_rng(seed))


# -- 2-D slices ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_slice_at_the_origin_is_the_sessions_objective(name):
    session = trained(name)
    m = session.model
    d1, d2 = directions(session)
    axis = np.array([-0.5, 0.0, 0.25])
    grid = slice_2d(m, m.theta, session.x_train, session.y_train, d1, d2, axis, axis,
                    session.config.regularization.l2)
    assert grid.shape == (3, 3)
    assert abs(grid[1, 1] - objective(session)) <= 1e-12 * abs(objective(session))
    assert abs(loss_at(m, m.theta, session.x_train, session.y_train,
                       session.config.regularization.l2) - objective(session)) <= 1e-12
    result = session_slice_2d(session, n=5)
    assert abs(result.center_loss - objective(session)) <= 1e-12
    assert abs(result.loss[2, 2] - result.center_loss) <= 1e-12


@pytest.mark.parametrize("name", CONFIGS)
def test_slice_matches_a_numpy_reference_at_random_points(name):
    session = trained(name)
    m = session.model
    d1, d2 = directions(session)
    rng = np.random.default_rng(SEED)
    alphas, betas = rng.uniform(-1.0, 1.0, 3), rng.uniform(-1.0, 1.0, 2)
    grid = slice_2d(m, m.theta, session.x_train, session.y_train, d1, d2, alphas, betas,
                    session.config.regularization.l2)
    for i, beta in enumerate(betas):
        for j, alpha in enumerate(alphas):
            expected = numpy_objective(session, m.theta + alpha * d1 + beta * d2)
            assert grid[i, j] == pytest.approx(expected, rel=1e-10), (i, j)


def test_slice_is_the_same_on_one_thread_and_on_many():
    session = trained()
    m = session.model
    d1, d2 = directions(session)
    axis = np.linspace(-1.0, 1.0, 7)
    args = (m, m.theta, session.x_train, session.y_train, d1, d2, axis, axis, 1e-3)
    many = slice_2d(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = slice_2d(*args)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(one, many)


def test_slicing_leaves_the_model_alone():
    session = trained("relu-bn-residual")
    m = session.model
    before = (m.theta.copy(), m.run_mean.copy(), m.run_var.copy())
    session_slice_2d(session, n=3)
    session_gradient_line(session, n=3)
    for a, b in zip(before, (m.theta, m.run_mean, m.run_var), strict=True):
        np.testing.assert_array_equal(a, b)


def test_blas_is_pinned_only_while_slicing_and_never_warns(capfd):
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    session = trained(**{"network.width": 64, "data.n_samples": 1000})  # BLAS-sized matrices
    before = blas_threads()
    with parallel_region():
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
    session_slice_2d(session, n=5)
    assert blas_threads() == before
    assert "OpenBLAS Warning" not in capfd.readouterr().err


def test_session_slice_is_deterministic_given_the_seed():
    session = trained()
    a, b = session_slice_2d(session, n=5, seed=3), session_slice_2d(session, n=5, seed=3)
    c = session_slice_2d(session, n=5, seed=4)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss, c.loss)
    assert a.kind == "random" and a.step == session.step_count and a.path is None
    np.testing.assert_array_equal(a.alphas, np.linspace(-1.0, 1.0, 5))
    assert not a.loss.flags.writeable


def test_cancelling_stops_between_rows():
    session = trained()
    m = session.model
    d1, d2 = directions(session)
    axis = np.linspace(-1.0, 1.0, 9)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 3

    args = (m, m.theta, session.x_train, session.y_train, d1, d2, axis, axis)
    assert slice_2d(*args, cancel=cancel) is None
    assert len(calls) == 3  # two rows computed, then stopped: not all nine
    event = threading.Event()
    event.set()
    assert slice_2d(*args, cancel=event) is None
    assert session_slice_2d(session, n=9, cancel=event) is None
    assert interpolation_path(m, session.initial_theta, m.theta, session.x_train,
                              session.y_train, axis, cancel=event) is None
    assert slice_2d(*args, cancel=threading.Event()).shape == (9, 9)


def test_bad_requests_name_the_argument():
    session = trained()
    with pytest.raises(ValueError, match="kind"):
        session_slice_2d(session, kind="hessian")
    with pytest.raises(ValueError, match="n must be"):
        session_slice_2d(session, n=MAX_GRID + 1)
    with pytest.raises(ValueError, match="trajectory"):
        session_slice_2d(session, kind="pca")
    m = session.model
    with pytest.raises(ValueError, match="alphas"):
        slice_2d(m, m.theta, session.x_train, session.y_train, m.theta, m.theta, [np.nan],
                 [0.0])
    assert set(DIRECTION_KINDS) == {"random", "pca"}


# -- directions ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "relu-bn-residual"])
def test_filter_normalized_directions_have_the_weights_filter_norms(name):
    session = trained(name)
    m = session.model
    d1, d2 = directions(session)
    mask = m.weight_mask()
    for d in (d1, d2):
        assert np.all(d[~mask] == 0.0)  # biases and batch-norm parameters
        for l in range(m.n_layers):
            expected = np.linalg.norm(m.weights(l), axis=0)  # one norm per output unit
            np.testing.assert_allclose(np.linalg.norm(m.weights(l, d), axis=0), expected,
                                       rtol=1e-12, atol=0.0)
    assert not np.array_equal(d1, d2)
    again = directions(session)
    np.testing.assert_array_equal(d1, again[0])
    raw, _ = random_directions(m, m.theta, np.random.default_rng(SEED), filter_normalize=False)
    assert np.all(raw[~mask] == 0.0) and 0.5 < np.std(raw[mask]) < 1.5


def planar_path(n_params: int = 300, steps: int = 40):
    """θ_t = θ_T + a_t u + b_t v with orthonormal u, v: a spiral arriving at θ_T."""
    rng = np.random.default_rng(SEED)
    u, v = np.linalg.qr(rng.standard_normal((n_params, 2)))[0].T
    t = np.linspace(0.0, 1.0, steps)
    a = (1.0 - t) * 3.0 * np.cos(4.0 * t)
    b = (1.0 - t) * 1.0 * np.sin(4.0 * t)
    end = rng.standard_normal(n_params)
    return end + np.outer(a, u) + np.outer(b, v), u, v, np.stack([a, b], axis=1)


def test_pca_directions_are_orthonormal_and_recover_a_planar_path():
    traj, u, v, ab = planar_path()
    d1, d2, coords, ratio = pca_directions(traj)
    basis = np.stack([d1, d2])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    # span(d1, d2) == span(u, v): the projections of u and v onto it keep their length
    np.testing.assert_allclose(np.linalg.svd(basis @ np.stack([u, v]).T)[1], 1.0, atol=1e-10)
    # coordinates are (a, b) up to a rotation or reflection
    r, *_ = np.linalg.lstsq(ab, coords, rcond=None)
    np.testing.assert_allclose(r.T @ r, np.eye(2), atol=1e-10)
    np.testing.assert_allclose(ab @ r, coords, atol=1e-10)
    np.testing.assert_allclose(coords[-1], 0.0, atol=1e-12)
    assert np.all(coords[0] <= 0.0)
    assert ratio.sum() == pytest.approx(1.0, abs=1e-10) and ratio[0] >= ratio[1]
    np.testing.assert_allclose(project_onto(traj, traj[-1], d1, d2), coords, atol=1e-10)


def test_pca_of_a_straight_path_still_gives_orthonormal_directions():
    rng = np.random.default_rng(SEED)
    line = np.outer(np.linspace(1.0, 0.0, 10), rng.standard_normal(50))
    d1, d2, coords, ratio = pca_directions(line)
    np.testing.assert_allclose(np.stack([d1, d2]) @ np.stack([d1, d2]).T, np.eye(2),
                               atol=1e-12)
    np.testing.assert_allclose(np.abs(coords[:, 1]), 0.0, atol=1e-12)
    assert ratio[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="T >= 3"):
        pca_directions(line[:2])


# -- trajectories and PCA slices ------------------------------------------------------------
def test_trajectory_recorder_keeps_every_k_steps_and_follows_rollbacks():
    session = trained(steps=0, **{"run.eval_every": 20})
    recorder = TrajectoryRecorder(session, every=5)
    recorder.step(23)
    np.testing.assert_array_equal(recorder.steps, [0, 5, 10, 15, 20])
    np.testing.assert_array_equal(recorder.trajectory[0], session.initial_theta)
    session.step(1)
    assert not recorder.record()  # only 4 steps since the last point
    session.step(1)
    assert recorder.record()
    np.testing.assert_array_equal(recorder.steps[-1], 25)
    np.testing.assert_array_equal(recorder.trajectory[-1], session.model.theta)
    session.rollback(20)
    recorder.record()
    np.testing.assert_array_equal(recorder.steps, [0, 5, 10, 15, 20])
    session.reset()
    recorder.record()
    np.testing.assert_array_equal(recorder.steps, [0])


def test_trajectory_recorder_thins_itself_to_stay_bounded():
    session = trained(steps=0)
    recorder = TrajectoryRecorder(session, every=1, max_points=8)
    recorder.step(40)
    assert len(recorder.steps) <= 8 and recorder.every > 1
    assert recorder.steps[0] == 0 and recorder.steps[-1] == session.step_count
    assert np.all(np.diff(recorder.steps) > 0)


def test_pca_slice_carries_the_path_ending_at_the_center():
    session = trained(steps=0)
    recorder = TrajectoryRecorder(session, every=10)
    recorder.step(60)
    session.step(3)  # the current θ is appended to the path
    result = session_slice_2d(session, kind="pca", n=5, trajectory=recorder)
    assert result.kind == "pca" and result.path.shape == (len(recorder.steps) + 1, 2)
    np.testing.assert_allclose(result.path[-1], 0.0, atol=1e-12)
    assert np.max(np.abs(result.path)) < result.alphas[-1]  # the whole path is on the grid
    assert 0.0 <= result.explained_variance.sum() <= 1.0 + 1e-12
    assert abs(result.loss[2, 2] - objective(session)) <= 1e-12
    same = session_slice_2d(session, kind="pca", n=5, trajectory=recorder.trajectory)
    np.testing.assert_array_equal(same.loss, result.loss)


# -- 1-D slices -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "relu-bn-residual"])
def test_interpolation_ends_at_the_initial_and_current_losses(name):
    session = trained(name)
    m = session.model
    ts = np.array([0.0, 0.3, 1.0, 1.5])
    loss = interpolation_path(m, session.initial_theta, m.theta, session.x_train,
                              session.y_train, ts, session.config.regularization.l2)
    assert abs(loss[0] - objective(session, session.initial_theta)) <= 1e-12
    assert abs(loss[2] - objective(session)) <= 1e-12
    middle = 0.7 * session.initial_theta + 0.3 * m.theta
    assert loss[1] == pytest.approx(numpy_objective(session, middle), rel=1e-10)
    ts2, loss2 = session_interpolation(session, n=5)
    assert ts2[0] == 0.0 and ts2[-1] == 1.0
    assert loss2[0] == loss[0] and loss2[-1] == loss[2]


def test_full_batch_gradient_is_the_models_gradient_on_the_whole_set():
    session = trained()
    m = session.model
    l2 = session.config.regularization.l2
    loss, grad = full_batch_gradient(m, m.theta, session.x_train, session.y_train, l2)
    expected_loss, expected = m.loss_and_gradients(session.x_train, session.y_train, l2)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)


def test_gradient_line_starts_at_the_loss_and_falls_with_slope_minus_grad_squared():
    session = trained()
    m = session.model
    l2 = session.config.regularization.l2
    h = 1e-5
    line = gradient_line(m, m.theta, session.x_train, session.y_train, [0.0, h, -h, 0.05],
                         l2, lr=0.05)
    assert abs(line.loss[0] - objective(session)) <= 1e-12
    assert line.center_loss == line.loss[0]
    slope = (line.loss[1] - line.loss[2]) / (2.0 * h)
    assert slope == pytest.approx(-line.grad_norm**2, rel=1e-6)
    assert line.learning_rate == 0.05 and line.loss_at_lr == line.loss[3]
    auto = session_gradient_line(session, n=4, max_factor=3.0)
    np.testing.assert_allclose(auto.etas, [0.0, 0.05, 0.1, 0.15])
    assert auto.loss_at_lr == pytest.approx(line.loss_at_lr, rel=1e-12)
    assert gradient_line(m, m.theta, session.x_train, session.y_train, [0.0],
                         cancel=lambda: True) is None
