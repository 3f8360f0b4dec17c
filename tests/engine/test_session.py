"""TrainingSession: snapshots, bit-for-bit determinism, save/resume, divergence, settings
changed between steps, bounded history, layer access, evaluations and probes, CSV data."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import session as session_module
from engine.config import ConfigError, ExperimentConfig
from engine.history import PER_LAYER, SCALARS, History
from engine.optimizers import OPTIMIZERS
from engine.probes import BINS
from engine.session import TrainingSession
from engine.snapshot import Snapshot

EXPERIMENTS = Path(__file__).resolve().parents[2] / "resources" / "experiments"


def experiment(name: str) -> TrainingSession:
    return engine.session_from_toml(EXPERIMENTS / f"{name}.toml")


def small(**dotted) -> ExperimentConfig:
    """The default spiral run (4 x 16 tanh), with dotted fields replaced."""
    return ExperimentConfig().replace(**dotted)


def relu_regression(**dotted) -> ExperimentConfig:
    base = {"data.dataset": "plane", "network.activation": "relu", "network.loss": "mse"}
    return ExperimentConfig().replace(**{**base, **dotted})


def assert_same_history(a: History, b: History) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert np.array_equal(sa[key], sb[key], equal_nan=True), key


def assert_same_state(a: TrainingSession, b: TrainingSession) -> None:
    """Bit-identical parameters, optimizer state, batch-norm statistics and history."""
    assert a.step_count == b.step_count
    assert np.array_equal(a.model.theta, b.model.theta)
    assert np.array_equal(a.optimizer.s1, b.optimizer.s1)
    assert np.array_equal(a.optimizer.s2, b.optimizer.s2)
    assert int(a.optimizer.t[0]) == int(b.optimizer.t[0])
    assert np.array_equal(a.model.run_mean, b.model.run_mean)
    assert np.array_equal(a.model.run_var, b.model.run_var)
    assert_same_history(a.history, b.history)
    ea, eb = dataclasses.astuple(a.last_eval), dataclasses.astuple(b.last_eval)
    assert np.array_equal(ea, eb, equal_nan=True)  # NaN accuracy for regression


def snapshot_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    return {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)
            if isinstance(getattr(snap, f.name), np.ndarray)}


# -- snapshots ----------------------------------------------------------------------------
def test_step_returns_an_immutable_snapshot_of_copies():
    s = TrainingSession(small())
    snap = s.step(37)
    assert snap.step == 37 == s.step_count
    arrays = snapshot_arrays(snap)
    assert set(arrays) == {"layer_grad_norm_w", "layer_grad_norm_b", "layer_weight_norm",
                           "layer_update_ratio"}
    for name, array in arrays.items():
        assert array.shape == (s.n_layers,), name
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0
    assert len(snap.layer_names) == s.n_layers == 5
    assert snap.layer_grad_norm.shape == (5,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.step = 3
    kept = {k: v.copy() for k, v in arrays.items()}
    s.step(10)
    for name, array in snapshot_arrays(snap).items():  # later steps leave it alone
        assert np.array_equal(array, kept[name])


def test_snapshot_of_a_healthy_run_is_finite_and_consistent():
    s = TrainingSession(small())
    snap = s.step(120)
    for name in ("loss", "data_loss", "learning_rate", "grad_norm", "grad_norm_clipped",
                 "epoch"):
        assert np.isfinite(getattr(snap, name)), name
    for name, array in snapshot_arrays(snap).items():
        assert np.all(np.isfinite(array)) and np.all(array >= 0), name
    assert np.all(snap.layer_grad_norm > 0) and np.all(snap.layer_weight_norm > 0)
    assert not snap.diverged and snap.divergence is None and not snap.clipped
    assert snap.grad_norm == pytest.approx(np.linalg.norm(snap.layer_grad_norm), rel=1e-12)
    assert snap.grad_norm_clipped == snap.grad_norm
    assert snap.loss == snap.data_loss  # no L2 penalty
    assert snap.learning_rate == 0.05
    assert snap.epoch == pytest.approx(120 * 32 / len(s.x_train))
    assert snap.eval.step == 100 and snap.probe.step == 100
    assert snap.loss == s.history.loss[-1] and s.history.steps[-1] == 120


def test_snapshot_before_any_step():
    s = TrainingSession(small())
    snap = s.snapshot()
    assert snap.step == 0 and np.isnan(snap.loss) and not snap.diverged
    assert snap.learning_rate == 0.05 and snap.eval.step == 0
    assert np.all(snap.layer_weight_norm > 0)


def test_step_zero_does_nothing_and_negative_is_an_error():
    s = TrainingSession(small())
    theta = s.model.theta.copy()
    assert s.step(0).step == 0 and np.array_equal(s.model.theta, theta)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        s.step(-1)


def test_loss_falls_on_the_tanh_spiral():
    s = experiment("spiral_tanh")
    initial = s.last_eval.train_loss
    snap = s.step(1500)
    assert snap.eval.step == 1500
    assert snap.eval.train_loss < 0.5 * initial
    assert snap.eval.train_accuracy > 0.6


# -- determinism --------------------------------------------------------------------------
def test_same_config_gives_a_bit_identical_run():
    a, b = TrainingSession(small()), TrainingSession(small())
    a.step(300)
    b.step(300)
    assert_same_state(a, b)
    assert np.array_equal(a.dataset.x_train, b.dataset.x_train)


@pytest.mark.parametrize("chunks", [[100, 200], [1] * 30 + [7, 250, 13], [299, 1]])
def test_run_does_not_depend_on_how_steps_are_chunked(chunks):
    a, b = TrainingSession(small()), TrainingSession(small())
    a.step(300)
    for n in chunks:
        b.step(n)
    assert b.step_count == 300
    assert_same_state(a, b)


def test_each_seed_drives_its_own_part():
    base = TrainingSession(small())
    base.step(50)
    other = TrainingSession(small(**{"run.seed": 1}))
    other.step(50)
    assert not np.array_equal(base.dataset.x_train, other.dataset.x_train)
    assert not np.array_equal(base.initial_theta, other.initial_theta)
    assert not np.array_equal(base.history.loss, other.history.loss)

    data_seed, init_seed, batch_seed = base.config.run.derived_seeds()
    pinned = {"run.seed": 1, "run.data_seed": data_seed, "run.init_seed": init_seed}
    only_batches = TrainingSession(small(**pinned))
    only_batches.step(50)
    assert np.array_equal(only_batches.dataset.x_train, base.dataset.x_train)
    assert np.array_equal(only_batches.initial_theta, base.initial_theta)
    assert not np.array_equal(only_batches.history.loss, base.history.loss)
    explicit = TrainingSession(small(**pinned, **{"run.batch_seed": batch_seed}))
    explicit.step(50)
    assert_same_state(explicit, base)


# -- saving and resuming ------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_save_load_resumes_bit_for_bit(tmp_path, optimizer, batch_norm):
    config = small(**{"optimizer.name": optimizer, "optimizer.learning_rate": 0.01,
                      "network.batch_norm": batch_norm})
    a = TrainingSession(config)
    a.step(130)  # not a multiple of eval_every: paused between evaluations
    path = tmp_path / "run.npz"
    a.save(path)
    b = TrainingSession.load(path)
    assert b.config == a.config
    assert_same_state(a, b)
    assert b.snapshot().loss == a.snapshot().loss
    assert np.array_equal(b.initial_theta, a.initial_theta)
    if optimizer != "sgd":
        assert np.any(b.optimizer.s1 != 0)
    if batch_norm:
        assert np.any(b.model.run_mean != 0)
    a.step(200)
    b.step(200)
    assert_same_state(a, b)
    assert a.snapshot().loss == b.snapshot().loss


def test_state_dict_in_memory_resumes_and_rewinds():
    config = small(**{"optimizer.name": "adam", "optimizer.learning_rate": 0.01})
    a = TrainingSession(config)
    a.step(77)
    state = a.state_dict()
    b = TrainingSession(config)
    b.load_state_dict(state)
    assert_same_state(a, b)
    a.step(150)
    later = TrainingSession(config)
    later.load_state_dict(a.state_dict())
    a.load_state_dict(state)  # rewind to step 77 ...
    assert_same_state(a, b)
    a.step(150)  # ... and the same 150 steps again
    b.step(150)
    assert_same_state(a, b)
    assert_same_state(a, later)


def test_loaded_session_keeps_its_data_even_if_generation_changed(tmp_path):
    a = TrainingSession(small())
    a.step(10)
    a.save(tmp_path / "run.npz")
    b = TrainingSession.load(tmp_path / "run.npz")
    assert np.array_equal(b.x_train, a.x_train) and np.array_equal(b.y_val, a.y_val)
    assert b.dataset.class_names == a.dataset.class_names


def _corrupt_files(tmp_path: Path) -> dict[str, Path]:
    s = TrainingSession(small())
    s.step(20)
    good = tmp_path / "good.npz"
    s.save(good)
    data = good.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "experiment_toml": (EXPERIMENTS / "spiral_tanh.toml").read_bytes(),
    }
    flipped = bytearray(data)
    flipped[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    files["zeroed_middle"] = bytes(flipped)
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.npz"
        out[name].write_bytes(content)
    out["npy_array"] = tmp_path / "array.npz"
    with open(out["npy_array"], "wb") as fh:
        np.save(fh, np.zeros(3))
    out["other_npz"] = tmp_path / "other.npz"
    np.savez(out["other_npz"], a=np.zeros(3))
    state = s.state_dict()
    del state["perm"]
    out["missing_part"] = tmp_path / "missing_part.npz"
    np.savez(out["missing_part"], **{k: np.asarray(v) for k, v in state.items()})
    state = s.state_dict()
    state["theta"] = state["theta"][:-1]
    out["wrong_shape"] = tmp_path / "wrong_shape.npz"
    np.savez(out["wrong_shape"], **{k: np.asarray(v) for k, v in state.items()})
    out["missing_file"] = tmp_path / "nothing.npz"
    out["folder"] = tmp_path / "folder.npz"
    out["folder"].mkdir()
    return out


def test_bad_session_files_are_config_errors_naming_the_file(tmp_path):
    for name, path in _corrupt_files(tmp_path).items():
        with pytest.raises(ConfigError) as info:
            TrainingSession.load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: "), name
        assert "\n" not in message, name


def test_session_save_is_atomic(tmp_path, monkeypatch):
    s = TrainingSession(small())
    path = tmp_path / "run.npz"
    s.save(path)
    before = path.read_bytes()
    s.step(10)

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        s.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
    assert TrainingSession.load(path).step_count == 0


# -- divergence ---------------------------------------------------------------------------
def _replayed_sgd(session: TrainingSession, n_steps: int) -> list[bool]:
    """Plain SGD done by hand with the session's public loss_and_gradients and set_layer,
    on the batches the session draws (one permutation of the training set per epoch from
    the batch seed). Returns, per step, whether its loss and gradients were finite."""
    n_train, b = session.x_train.shape[0], session.batch_size
    assert n_steps * b <= n_train  # one epoch is enough here
    order = np.random.default_rng(session.batch_seed).permutation(n_train)
    lr = session.config.optimizer.learning_rate
    x, y = session.dataset.x_train, session.dataset.y_train
    finite = []
    for k in range(n_steps):
        rows = order[k * b : (k + 1) * b]
        loss, grads = session.loss_and_gradients(x[rows], y[rows])
        finite.append(bool(np.isfinite(loss))
                      and all(np.all(np.isfinite(g)) for pair in grads for g in pair))
        if not finite[-1]:
            break
        for l, (dw, db) in enumerate(grads):
            w, bias = session.get_layer(l)
            session.set_layer(l, w - lr * dw, bias - lr * db)
    return finite


def test_exploding_learning_rate_stops_at_the_first_non_finite_step():
    s = experiment("exploding_lr")
    snap = s.step(500)
    d = snap.divergence
    assert snap.diverged and s.diverged and d is not None
    assert 1 < d.step <= 20
    assert snap.step == s.step_count == d.step - 1
    assert 0 <= d.layer < s.n_layers and d.layer_name == s.layer_names[d.layer]
    assert d.what in ("activation", "loss", "gradient", "parameter")
    assert f"step {d.step}" in d.message and repr(d.layer_name) in d.message
    assert d.learning_rate == 1.0 and d.advice
    assert np.isfinite(d.grad_norm_before) and d.grad_norm_before > 0
    assert d.layer_grad_norms_before.shape == (s.n_layers,)
    assert not d.layer_grad_norms_before.flags.writeable
    # the history holds exactly the finite steps, and the parameters are the last finite ones
    h = s.history
    assert len(h) == d.step - 1 and h.steps.tolist() == list(range(1, d.step))
    for name in (*SCALARS, *PER_LAYER):
        assert np.all(np.isfinite(getattr(h, name))), name
    assert np.all(np.isfinite(s.model.theta))
    fresh = experiment("exploding_lr")
    fresh.step(d.step - 1)
    assert not fresh.diverged
    assert np.array_equal(fresh.model.theta, s.model.theta)
    assert_same_history(fresh.history, s.history)
    # independently: SGD by hand on the same batches is finite up to d.step - 1, not after
    by_hand = experiment("exploding_lr")
    assert _replayed_sgd(by_hand, d.step) == [True] * (d.step - 1) + [False]
    np.testing.assert_allclose(by_hand.model.theta, s.model.theta, rtol=1e-9)


def test_stepping_one_at_a_time_finds_the_same_divergence():
    whole = experiment("exploding_lr")
    d = whole.step(500).divergence
    single = experiment("exploding_lr")
    snaps = [single.step(1) for _ in range(d.step + 3)]
    assert [sn.diverged for sn in snaps[: d.step - 1]] == [False] * (d.step - 1)
    assert all(sn.diverged for sn in snaps[d.step - 1 :])
    d1 = single.divergence
    assert (d1.step, d1.layer, d1.what, d1.message) == (d.step, d.layer, d.what, d.message)
    assert_same_state(single, whole)


def test_after_divergence_step_does_nothing_until_cleared():
    s = experiment("exploding_lr")
    d = s.step(500).divergence
    theta, rows = s.model.theta.copy(), len(s.history)
    for n in (1, 10, 1000):
        snap = s.step(n)
        assert snap.diverged and snap.step == d.step - 1 and snap.divergence is d
    assert np.array_equal(s.model.theta, theta) and len(s.history) == rows
    # cleared without changes, the run replays the same failing step
    assert not s.clear_divergence().diverged
    again = s.step(10).divergence
    assert (again.step, again.layer, again.what) == (d.step, d.layer, d.what)
    assert np.array_equal(s.model.theta, theta) and len(s.history) == rows


def test_clear_divergence_lets_the_run_go_on_with_new_settings():
    s = experiment("exploding_lr")
    d = s.step(500).divergence
    s.update_config(s.config.replace(**{"optimizer.learning_rate": 1e-3}))
    s.clear_divergence()
    retry = s.step(10)
    # the last finite state is far gone (weights ~1e48), so the retried step may fail
    # again, but it was taken with the new rate
    assert retry.step > d.step - 1 or retry.divergence.learning_rate == 1e-3
    # with sane weights put back, training goes on
    fresh = experiment("exploding_lr")
    for l in range(s.n_layers):
        s.set_layer(l, *fresh.get_layer(l))
    s.clear_divergence()
    snap = s.step(100)
    assert not snap.diverged and snap.step == d.step - 1 + 100
    assert snap.learning_rate == 1e-3 and np.isfinite(snap.loss)


def test_a_huge_learning_rate_on_relu_regression_diverges_within_a_few_steps():
    s = TrainingSession(relu_regression(**{"optimizer.learning_rate": 1e3}))
    snap = s.step(100)
    assert snap.diverged and snap.divergence.step <= 5
    assert snap.step == snap.divergence.step - 1


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_sessions_never_raise_on_divergence(optimizer, batch_norm):
    s = TrainingSession(relu_regression(**{
        "optimizer.name": optimizer, "optimizer.learning_rate": 1e6,
        "network.batch_norm": batch_norm}))
    for n in (300, 1, 1, 256):
        snap = s.step(n)
    if optimizer in ("sgd", "momentum", "nesterov", "adamw"):
        assert snap.diverged  # these blow up at this rate; the adaptive ones may not
    if snap.diverged:
        assert snap.step == snap.divergence.step - 1 == len(s.history)
        assert np.all(np.isfinite(s.model.theta)) and np.all(np.isfinite(s.history.loss))
        s.evaluate()
        s.probe()


# -- changing settings between steps ------------------------------------------------------
def test_learning_rate_change_takes_effect_at_the_next_step():
    s = TrainingSession(small())
    s.step(10)
    s.update_config(s.config.replace(**{"optimizer.learning_rate": 0.2}))
    assert s.snapshot().learning_rate == 0.05  # the rate the last step used
    assert s.step(1).learning_rate == 0.2
    s.set_learning_rate(0.01)
    s.step(5)
    assert s.history.lr.tolist() == [0.05] * 10 + [0.2] + [0.01] * 5
    assert s.config.optimizer.learning_rate == 0.01


def test_clipping_change_takes_effect_at_the_next_step():
    s = TrainingSession(small())
    s.step(10)
    threshold = 1e-3
    s.update_config(s.config.replace(**{"clip.kind": "global_norm",
                                        "clip.threshold": threshold}))
    snap = s.step(5)
    assert snap.clipped and snap.grad_norm > threshold
    assert snap.grad_norm_clipped == pytest.approx(threshold, rel=1e-9)
    assert s.history.clipped.tolist() == [0.0] * 10 + [1.0] * 5
    s.update_config(s.config.replace(**{"clip.kind": "none"}))
    snap = s.step(1)
    assert not snap.clipped and snap.grad_norm_clipped == snap.grad_norm


def test_schedule_change_takes_effect_at_the_next_step():
    s = TrainingSession(small())
    s.step(12)
    schedule = {"schedule.name": "step", "schedule.step_size": 5, "schedule.gamma": 0.1}
    s.update_config(s.config.replace(**schedule))
    snap = s.step(1)
    expected = engine.lr_at(12, 0.05, s.config.schedule)  # the 13th step has index 12
    assert snap.learning_rate == pytest.approx(expected, rel=1e-12)
    assert snap.learning_rate == pytest.approx(0.05 * 0.1**2, rel=1e-12)


def test_hot_changes_keep_the_run_going():
    s = TrainingSession(small())
    s.step(20)
    theta = s.model.theta.copy()
    hot = s.config.replace(**{
        "optimizer.name": "adam", "optimizer.beta1": 0.8, "schedule.name": "cosine",
        "clip.kind": "value", "regularization.l2": 1e-3, "run.batch_size": 16,
        "run.eval_every": 10, "run.steps": 100,
    })
    assert s.changes_need_reset(hot) == []
    s.update_config(hot)
    assert s.step_count == 20 and np.array_equal(s.model.theta, theta)
    seen = s.samples_seen
    snap = s.step(10)
    assert snap.step == 30 and s.samples_seen == seen + 10 * 16
    assert snap.eval.step == 30 and snap.loss > snap.data_loss  # L2 penalty now counted


def test_structural_changes_need_a_reset():
    s = TrainingSession(small())
    s.step(20)
    theta = s.model.theta.copy()
    cold = s.config.replace(**{"network.width": 8, "data.noise": 0.3, "init.gain": 2.0,
                               "run.seed": 4, "run.init_seed": 9})
    assert s.changes_need_reset(cold) == ["data", "init", "network", "run.init_seed",
                                          "run.seed"]
    with pytest.raises(ConfigError, match=r"changing .*network.* needs a reset"):
        s.update_config(s.config.replace(**{"network.width": 8}))
    assert s.config.network.width == 16 and np.array_equal(s.model.theta, theta)
    assert s.step(1).step == 21  # the session is still usable


def test_reset_with_a_new_config_starts_at_step_zero():
    s = TrainingSession(small())
    s.step(120)
    new = small(**{"network.width": 8, "run.seed": 5})
    snap = s.reset(new)
    assert snap.step == 0 and s.step_count == 0 and len(s.history) == 0
    assert s.history.eval_steps.tolist() == [0] and snap.eval.step == 0
    assert not snap.diverged and s.config == new
    fresh = TrainingSession(new)
    assert s.model.n_params == fresh.model.n_params
    assert np.array_equal(s.model.theta, fresh.model.theta)
    s.step(50)
    fresh.step(50)
    assert_same_state(s, fresh)


def test_reset_with_the_same_config_replays_the_run():
    s = experiment("exploding_lr")
    initial = s.model.theta.copy()
    s.step(100)
    first = s.history.state_dict()
    assert s.diverged
    snap = s.reset()
    assert not snap.diverged and snap.step == 0
    assert np.array_equal(s.model.theta, initial)
    s.step(100)
    assert all(np.array_equal(v, s.history.state_dict()[k], equal_nan=True)
               for k, v in first.items())


# -- history ------------------------------------------------------------------------------
def _columns(first: int, n: int, n_layers: int) -> dict[str, np.ndarray]:
    """Every column holds its row's step number, so moved rows can be recognized."""
    steps = np.arange(first + 1, first + n + 1, dtype=np.float64)
    cols = {name: steps.copy() for name in SCALARS}
    cols.update({name: np.repeat(steps[:, None], n_layers, axis=1) for name in PER_LAYER})
    return cols


def test_history_memory_stays_bounded_over_a_million_steps():
    h = History(n_layers=3, max_rows=256)
    chunk, total = 1000, 10**6
    for first in range(0, total, chunk):
        h.append(first, chunk, _columns(first, chunk, 3))
        assert len(h) <= 256
    steps = h.steps
    assert 128 <= len(h) <= 256
    assert np.all(np.diff(steps) > 0)
    assert steps[-1] == total and steps[0] == 1  # older steps decimated, not dropped
    assert np.all(np.diff(steps[-128:]) == 1)  # the recent past at full resolution
    for name in SCALARS:
        assert np.array_equal(getattr(h, name), steps.astype(float)), name
    for name in PER_LAYER:
        assert np.array_equal(getattr(h, name)[:, 2], steps.astype(float)), name
    # the memory itself, not only the filled rows, stays within the budget
    assert h._steps.shape[0] <= 256 and all(c.shape[0] <= 256 for c in h._cols.values())


def test_history_evaluations_stay_bounded_too():
    h = History(n_layers=2, max_rows=256)
    for k in range(20_000):
        h.append_eval(50 * k, {"train_loss": float(k)})
    assert len(h.eval_steps) <= 256
    assert np.all(np.diff(h.eval_steps) > 0) and h.eval_steps[-1] == 50 * 19_999
    assert np.array_equal(h.eval_train_loss, h.eval_steps / 50)
    assert np.all(np.isnan(h.eval_val_loss))


@pytest.mark.parametrize("max_rows", [256, 2100, 3000])
def test_history_resumed_from_its_state_thins_like_the_original(max_rows):
    a = History(n_layers=2, max_rows=max_rows)
    step = 0
    for _ in range(25):
        a.append(step, 100, _columns(step, 100, 2))
        step += 100
        a.append_eval(step, {"train_loss": float(step)})
    b = History(n_layers=2, max_rows=max_rows)
    b.load_state_dict(a.state_dict())
    assert_same_history(a, b)
    for _ in range(300):
        for h in (a, b):
            h.append(step, 100, _columns(step, 100, 2))
            h.append_eval(step + 100, {"train_loss": float(step)})
        step += 100
        assert len(b) <= max_rows
    assert_same_history(a, b)


def test_session_history_with_a_small_budget(monkeypatch):
    monkeypatch.setattr(session_module, "History", functools.partial(History, max_rows=64))
    s = TrainingSession(small())
    snap = s.step(3000)
    h = s.history
    assert len(h) <= 64 and h.steps[-1] == 3000 and h.steps[0] == 1
    assert np.all(np.diff(h.steps[-32:]) == 1)
    assert h.loss[-1] == snap.loss and h.lr[-1] == snap.learning_rate
    assert np.array_equal(h.grad_w[-1], snap.layer_grad_norm_w)


# -- layers, predictions, schedule --------------------------------------------------------
def test_get_and_set_layer_round_trip():
    s = TrainingSession(small())
    for l in range(s.n_layers):
        w, b = s.get_layer(l)
        n_in = 2 if l == 0 else 16
        n_out = 3 if l == s.n_layers - 1 else 16
        assert w.shape == (n_in, n_out) and b.shape == (n_out,)
        w[:] = 7.0  # a copy: the model is unchanged
        assert not np.any(s.get_layer(l)[0] == 7.0)
    x = s.x_val[:10]
    before = s.predict(x)
    w, b = s.get_layer(1)
    new_w, new_b = np.arange(w.size, dtype=float).reshape(w.shape) / w.size, b + 1.0
    s.set_layer(1, new_w, new_b)
    got_w, got_b = s.get_layer(1)
    assert np.array_equal(got_w, new_w) and np.array_equal(got_b, new_b)
    assert not np.allclose(s.predict(x), before)
    s.set_layer(1, w)  # biases left alone
    assert np.array_equal(s.get_layer(1)[0], w) and np.array_equal(s.get_layer(1)[1], new_b)


def test_set_layer_shape_errors():
    s = TrainingSession(small())
    w, b = s.get_layer(0)
    with pytest.raises(ValueError, match=r"layer 0 weights must have shape \(2, 16\), got "
                                         r"\(16, 2\)"):
        s.set_layer(0, w.T)
    with pytest.raises(ValueError, match=r"layer 0 biases must have shape \(16,\), got \(15,\)"):
        s.set_layer(0, w, b[:-1])
    with pytest.raises(ValueError, match="weights must have shape"):
        s.set_layer(4, np.zeros(3))


@pytest.mark.parametrize(
    ("dotted", "n_out"),
    [({}, 3), ({"data.dataset": "circle", "network.loss": "bce"}, 1),
     ({"data.dataset": "ripple", "network.loss": "mse"}, 1)],
    ids=["softmax", "bce", "regression"],
)
def test_predict_shapes(dotted, n_out):
    s = TrainingSession(small(**dotted))
    for n in (1, 7, 5000):
        x = np.random.default_rng(n).standard_normal((n, 2))
        out = s.predict(x)
        assert out.shape == (n, n_out) and np.all(np.isfinite(out))
    if n_out == 3:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
    elif "bce" in dotted.values():
        assert np.all((out > 0) & (out < 1))


@pytest.mark.parametrize("name", list(engine.SCHEDULES))
def test_lr_curve_matches_the_schedule_function(name):
    config = small(**{"schedule.name": name, "schedule.warmup_steps": 10,
                      "schedule.total_steps": 300, "run.steps": 400})
    s = TrainingSession(config)
    expected = engine.lr_curve(np.arange(250, dtype=np.int64), 0.05, config.schedule)
    assert np.array_equal(s.lr_curve(250), expected)
    assert s.lr_curve().shape == (400,)
    s.step(40)
    assert np.array_equal(s.history.lr, expected[:40])


# -- evaluations and probes ---------------------------------------------------------------
def test_evaluation_every_eval_every_steps():
    s = TrainingSession(small(**{"run.eval_every": 25}))
    assert s.snapshot().eval.step == 0
    seen = []
    for n in (10, 14, 1, 30, 20, 100):
        snap = s.step(n)
        seen.append(snap.eval.step)
        assert snap.eval.step == snap.step - snap.step % 25
        assert snap.probe is None or snap.probe.step == snap.eval.step
    assert seen == [0, 0, 25, 50, 75, 175]
    assert s.history.eval_steps.tolist() == list(range(0, 176, 25))
    ev = s.history
    assert np.all(np.isfinite(ev.eval_train_loss)) and np.all(ev.eval_val_accuracy <= 1)


def test_probe_has_a_layer_probe_per_layer_with_full_histograms():
    s = TrainingSession(small(**{"network.activations": ["relu", "tanh", "sigmoid", "elu"]}))
    snap = s.step(50)
    probe = snap.probe
    assert probe is not None and probe.step == 50 and len(probe.layers) == s.n_layers
    rows = probe.rows
    assert rows == min(512, len(s.x_train))
    for l, lp in enumerate(probe.layers):
        assert lp.name == s.layer_names[l]
        w, _ = s.get_layer(l)
        n_out = w.shape[1]
        expected = {"activations": rows * n_out, "pre_activations": rows * n_out,
                    "weights": w.size, "gradients": w.size}
        for name, count in expected.items():
            hist = getattr(lp, name)
            assert hist.counts.shape == (BINS,) and hist.edges.shape == (BINS + 1,)
            assert hist.counts.sum() == count, (l, name)
            assert np.all(np.diff(hist.edges) > 0)
            assert not hist.counts.flags.writeable
        assert 0.0 <= lp.saturated <= 1.0 and 0.0 <= lp.dead <= 1.0
    assert [lp.activation for lp in probe.layers[:4]] == ["relu", "tanh", "sigmoid", "elu"]


def test_deep_sigmoid_gradients_vanish():
    g = experiment("sigmoid_deep").step(200).layer_grad_norm
    assert g[0] < 1e-3 * g[-1]


def test_relu_with_he_init_keeps_gradients_alive():
    g = experiment("relu_he").step(200).layer_grad_norm
    assert g[0] > 1e-2 * g[-1]


def test_large_negative_biases_kill_relu_units():
    def dead(bias_scale: float) -> np.ndarray:
        s = TrainingSession(small(**{"network.activation": "relu", "init.biases": "constant",
                                     "init.bias_scale": bias_scale}))
        return s.step(50).probe.dead[:-1]  # hidden layers

    assert np.all(dead(-5.0) > 0.9)
    assert np.all(dead(0.0) < 0.5)


# -- CSV data -----------------------------------------------------------------------------
def test_csv_dataset_end_to_end(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (300, 3))
    label = np.where(x[:, 0] * x[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,answer"] + [f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{y}"
                                for r, y in zip(x, label, strict=True)]
    path = tmp_path / "points.csv"
    path.write_text("\n".join(lines) + "\n")
    config = small(**{"data.dataset": "csv", "data.csv_path": str(path),
                      "network.loss": "bce", "optimizer.name": "adam",
                      "optimizer.learning_rate": 0.01})
    s = TrainingSession(config)
    assert s.dataset.n_features == 3 and s.dataset.class_names == ("no", "yes")
    assert len(s.x_train) + len(s.x_val) == 300
    initial = s.last_eval.train_loss
    snap = s.step(600)
    assert not snap.diverged and snap.eval.train_loss < 0.7 * initial
    assert s.predict(s.x_val).shape == (len(s.x_val), 1)
    s.save(tmp_path / "run.npz")
    path.unlink()  # a saved session carries its data
    assert TrainingSession.load(tmp_path / "run.npz").step_count == 600


def test_csv_dataset_problems_are_config_errors(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("a,b,kind\n" + "".join(f"{i},{i % 7},{'xyz'[i % 3]}\n" for i in range(60)))
    with pytest.raises(ConfigError, match="'bce' needs 2 classes"):
        TrainingSession(small(**{"data.dataset": "csv", "data.csv_path": str(path),
                                 "network.loss": "bce"}))
    reg = tmp_path / "reg.csv"
    reg.write_text("a,y\n" + "".join(f"{i},{i * 0.37:.3f}\n" for i in range(60)))
    with pytest.raises(ConfigError, match="must be 'mse'"):
        TrainingSession(small(**{"data.dataset": "csv", "data.csv_path": str(reg)}))
    with pytest.raises(ConfigError, match="missing.csv"):
        TrainingSession(small(**{"data.dataset": "csv",
                                 "data.csv_path": str(tmp_path / "missing.csv")}))
