"""Analytic surfaces and optimizer paths: exact gradients, critical points, the quadratic's
convergence and oscillation limits, clipping on the RNN cliff, divergence."""

from __future__ import annotations

import numpy as np
import pytest

from engine.optimizers import OPTIMIZERS
from engine.surfaces import (
    SURFACES,
    grid,
    make_surface,
    run_many,
    run_optimizer,
    slide_presets,
)


def sample_points(surface, n=25, seed=0):
    x0, x1, y0, y1 = surface.extent
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])


@pytest.mark.parametrize("name", list(SURFACES))
def test_gradient_matches_central_finite_differences(name):
    s = SURFACES[name]
    points = np.vstack([sample_points(s), [s.start]])
    h = 1e-6
    for p in points:
        fd = [(float(s.f(p + e)) - float(s.f(p - e))) / (2 * h) for e in np.eye(2) * h]
        np.testing.assert_allclose(s.grad(p), fd, rtol=1e-5, atol=1e-5 * (1 + abs(s.f(p))))


@pytest.mark.parametrize("name", list(SURFACES))
def test_known_critical_points_have_zero_gradient_and_minima_are_minima(name):
    s = SURFACES[name]
    assert s.minima or s.saddle_points
    for p in (*s.minima, *s.saddle_points):
        np.testing.assert_allclose(s.grad(np.array(p)), 0.0, atol=1e-12)
    ring = 1e-3 * np.column_stack([np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                                   np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))])
    for p in s.minima:
        assert np.all(s.f(np.array(p) + ring) >= s.f(np.array(p)))
    for p in s.saddle_points:  # higher in some directions, lower in others
        values = s.f(np.array(p) + ring) - s.f(np.array(p))
        assert values.max() > 0 > values.min()


@pytest.mark.parametrize("name", list(SURFACES))
def test_surfaces_are_vectorized_and_the_grid_is_row_major_in_y(name):
    s = SURFACES[name]
    xs, ys, values = grid(s, 7)
    assert xs.shape == ys.shape == (7,) and values.shape == (7, 7)
    assert (xs[0], xs[-1], ys[0], ys[-1]) == s.extent
    for i, j in ((0, 6), (3, 2), (6, 0)):
        assert values[i, j] == pytest.approx(float(s.f(np.array([xs[j], ys[i]]))), rel=1e-12)
    pts = sample_points(s, 6).reshape(2, 3, 2)
    assert s.f(pts).shape == (2, 3) and s.grad(pts).shape == (2, 3, 2)
    np.testing.assert_allclose(s.grad(pts)[1, 2], s.grad(pts[1, 2]))
    assert s.label and s.description and s.formula


@pytest.mark.parametrize("which", [0, 1], ids=["lam1", "lam2"])
def test_gd_on_a_quadratic_converges_iff_eta_lambda_below_2_oscillates_iff_above_1(which):
    lams = (1.0, 10.0)
    surface = make_surface("quadratic", lam1=lams[0], lam2=lams[1])
    lam = lams[which]
    start = np.zeros(2)
    start[which] = 1.0  # only this eigen-direction: the other coordinate stays exactly 0
    for eta_lam in (0.5, 0.99, 1.01, 1.5, 1.99, 2.01, 2.5):
        path = run_optimizer(surface, "sgd", eta_lam / lam, start, steps=60)
        c = path.points[:, which]
        assert np.all(path.points[:, 1 - which] == 0.0)
        np.testing.assert_allclose(c, (1 - eta_lam) ** np.arange(61), rtol=1e-9, atol=1e-15)
        shrinks = np.all(np.abs(c[1:]) < np.abs(c[:-1]))
        grows = np.all(np.abs(c[1:]) > np.abs(c[:-1]))
        alternates = np.all(np.sign(c[1:]) == -np.sign(c[:-1]))
        same_sign = np.all(np.sign(c) == 1.0)
        assert shrinks == (0 < eta_lam < 2) and grows == (eta_lam > 2), eta_lam
        assert alternates == (eta_lam > 1) and same_sign == (eta_lam < 1), eta_lam


def test_slide_presets_show_slow_oscillating_diverging_and_near_optimal():
    surface = SURFACES["quadratic"]
    presets = slide_presets(surface)
    assert list(presets) == ["too small: slow", "too large: oscillates", "larger: diverges",
                             "near-optimal"]
    paths = dict(zip(presets, run_many(surface, presets.values(), steps=40), strict=True))
    y = {name: p.points[:, 1] for name, p in paths.items()}  # the steep direction
    assert abs(y["too small: slow"][-1]) > 0.1 * abs(y["too small: slow"][0])
    assert abs(y["too large: oscillates"][-1]) < abs(y["too large: oscillates"][0])
    assert np.all(np.diff(np.sign(y["too large: oscillates"])) != 0)
    assert abs(y["larger: diverges"][-1]) > 10 * abs(y["larger: diverges"][0])
    assert abs(y["near-optimal"][1]) < 1e-12  # one step to the floor of the steep direction
    assert paths["near-optimal"].losses[-1] < paths["too small: slow"].losses[-1]
    with pytest.raises(ValueError, match="quadratic"):
        slide_presets(SURFACES["saddle"])


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_run_optimizer_is_deterministic_and_uses_the_engines_update(optimizer):
    s = SURFACES["rosenbrock"]
    a = run_optimizer(s, optimizer, 1e-3, steps=50)
    b = run_optimizer(s, optimizer, 1e-3, steps=50)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.losses, b.losses)
    assert a.points.shape == (51, 2) and a.losses.shape == (51,) and a.steps == 50
    assert a.grad_norms.shape == a.clipped.shape == (50,) and not a.diverged
    assert tuple(a.points[0]) == s.start and not a.points.flags.writeable
    np.testing.assert_allclose(a.losses, s.f(a.points))


def test_one_momentum_step_by_hand():
    s = make_surface("quadratic", lam1=2.0, lam2=4.0)
    path = run_optimizer(s, "momentum", 0.1, (1.0, 1.0), steps=2, momentum=0.5)
    # v1 = g0 = (2, 4); θ1 = (0.8, 0.6); v2 = 0.5 v1 + g1 = (1 + 1.6, 2 + 2.4); θ2 = θ1 − 0.1 v2
    np.testing.assert_allclose(path.points, [[1.0, 1.0], [0.8, 0.6], [0.54, 0.16]])
    assert path.hyper == (("momentum", 0.5),)


def test_clipping_bounds_the_step_at_the_rnn_cliff():
    s = SURFACES["rnn_cliff"]
    lr, tau = 0.01, 1.0
    free = run_optimizer(s, "sgd", lr, steps=200)
    clipped = run_optimizer(s, "sgd", lr, steps=200, clip=("global_norm", tau))
    jump = np.linalg.norm(np.diff(free.points, axis=0), axis=1)
    assert free.grad_norms.max() > 100 and jump.max() > 1.0  # thrown off the wall
    step = np.linalg.norm(np.diff(clipped.points, axis=0), axis=1)
    assert np.all(step <= lr * tau * (1 + 1e-12))
    assert clipped.clipped.any() and np.all(clipped.clipped == (clipped.grad_norms > tau))
    # the unclipped norms are what the surface's gradient says
    np.testing.assert_allclose(clipped.grad_norms,
                               np.linalg.norm(s.grad(clipped.points[:-1]), axis=1))


def test_divergence_is_reported_with_the_last_finite_point():
    s = SURFACES["rosenbrock"]
    path = run_optimizer(s, "sgd", 0.1, steps=500)
    assert path.diverged and 1 < path.divergence_step < 500
    assert path.steps == path.divergence_step - 1
    assert path.divergence_what in ("gradient", "parameter", "loss")
    assert f"step {path.divergence_step}" in path.message
    assert np.all(np.isfinite(path.points)) and np.all(np.isfinite(path.losses))
    calm = run_optimizer(s, "sgd", 1e-4, steps=500)
    assert not calm.diverged and calm.divergence_step == 0 and calm.message == ""


def test_run_many_starts_every_optimizer_at_the_same_point():
    s = SURFACES["multi_minima"]
    specs = [{"optimizer": "sgd", "lr": 0.05}, {"optimizer": "momentum", "lr": 0.05,
                                                  "momentum": 0.9},
             {"optimizer": "adam", "lr": 0.1, "clip": ("global_norm", 0.5)}]
    paths = run_many(s, specs, start=(0.5, -0.2), steps=300)
    assert [p.optimizer for p in paths] == ["sgd", "momentum", "adam"]
    assert all(tuple(p.points[0]) == (0.5, -0.2) for p in paths)
    assert paths[2].clip == ("global_norm", 0.5)
    ends = [min(s.minima, key=lambda m, p=p: np.hypot(*(p.points[-1] - m))) for p in paths]
    for p, m in zip(paths, ends, strict=True):
        np.testing.assert_allclose(p.points[-1], m, atol=0.05)  # each settles in a basin


def test_make_surface_and_run_optimizer_name_bad_input():
    assert make_surface("quadratic", lam1=2.0, lam2=50.0).curvatures == (2.0, 50.0)
    assert make_surface("rnn_cliff", steps=10).params[0] == ("steps", 10.0)
    with pytest.raises(ValueError, match="surface must be one of"):
        make_surface("bowl")
    with pytest.raises(ValueError, match="no parameter 'lam3'"):
        make_surface("quadratic", lam3=1.0)
    with pytest.raises(ValueError, match="lam1 must be > 0, got -1"):
        make_surface("quadratic", lam1=-1.0)
    s = SURFACES["quadratic"]
    with pytest.raises(ValueError, match="optimizer.name"):
        run_optimizer(s, "lbfgs", 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        run_optimizer(s, "sgd", -0.1)
    with pytest.raises(ValueError, match="momentum"):
        run_optimizer(s, "momentum", 0.1, momentum=1.5)
    with pytest.raises(ValueError, match="hyper-parameter 'gamma'"):
        run_optimizer(s, "momentum", 0.1, gamma=0.5)
    with pytest.raises(ValueError, match="clip kind"):
        run_optimizer(s, "sgd", 0.1, clip=("norm", 1.0))
    with pytest.raises(ValueError, match="start"):
        run_optimizer(s, "sgd", 0.1, start=(1.0, np.nan))
