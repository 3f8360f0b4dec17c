"""The main window end to end, offscreen: transport, settings, divergence, files, closing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine import config as config_io
from engine.config import ExperimentConfig

SMALL = ExperimentConfig.from_dict({
    "name": "small",
    "data": {"dataset": "circle", "n_samples": 300},
    "network": {"hidden_layers": 3, "width": 8, "activation": "tanh", "loss": "bce"},
    "run": {"batch_size": 16, "eval_every": 25, "steps": 400},
})
EXPLODING = ExperimentConfig.from_dict({
    "name": "exploding",
    "data": {"dataset": "plane", "n_samples": 200},
    "network": {"hidden_layers": 3, "width": 16, "activation": "relu", "loss": "mse"},
    "init": {"weights": "he_normal"},
    "optimizer": {"learning_rate": 10.0},
    "run": {"eval_every": 10},
})


@pytest.fixture
def window(qtbot):
    from desktop_app.window import MainWindow

    w = MainWindow(SMALL, warm_up=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ready and w.last_snapshot is not None, timeout=120_000)
    yield w
    w.close()
    assert not w.worker.process.is_alive()


def step_of(w) -> int:
    return -1 if w.last_snapshot is None else w.last_snapshot.step


def test_window_opens_with_every_view_showing_the_initial_state(window):
    assert window.last_snapshot.step == 0
    assert window.info.n_layers == 4
    # the schedule is drawn before training starts
    x, _ = window.lr_view.planned_curve.getData()
    assert len(x) == SMALL.run.steps


def test_play_trains_until_past_n_and_pause_stops(window, qtbot):
    window.toggle_play()
    assert window.playing
    qtbot.waitUntil(lambda: step_of(window) > 300, timeout=60_000)
    window.toggle_play()
    assert not window.playing
    # the worker publishes a final frame when it pauses; after that nothing moves
    qtbot.waitUntil(lambda: window.last_snapshot is not None
                    and window.mailbox_empty(), timeout=5000)
    qtbot.wait(300)
    stopped = step_of(window)
    qtbot.wait(400)
    assert step_of(window) == stopped
    assert window.mailbox_empty()


def test_step_advances_exactly_one_step(window, qtbot):
    window.step_action.trigger()
    qtbot.waitUntil(lambda: step_of(window) == 1, timeout=10_000)
    qtbot.wait(300)
    assert step_of(window) == 1
    window.step_n_box.setValue(25)
    window.step_n_action.trigger()
    qtbot.waitUntil(lambda: step_of(window) == 26, timeout=10_000)


def test_reset_goes_back_to_step_zero(window, qtbot):
    window.step(40)
    qtbot.waitUntil(lambda: step_of(window) == 40, timeout=10_000)
    window.reset_action.trigger()
    qtbot.waitUntil(lambda: step_of(window) == 0, timeout=10_000)
    x, _ = window.loss_view.step_curve.getData()
    assert x is None or len(x) == 0


def test_learning_rate_change_mid_run_reaches_the_engine(window, qtbot):
    window.step(10)
    qtbot.waitUntil(lambda: step_of(window) == 10, timeout=10_000)
    lr_widget = window.controls._widgets["optimizer.learning_rate"]
    lr_widget.edit.setText("0.0123")
    lr_widget.edit.editingFinished.emit()
    assert window.config.optimizer.learning_rate == pytest.approx(0.0123)
    window.step(1)
    qtbot.waitUntil(lambda: step_of(window) == 11, timeout=10_000)
    assert window.last_snapshot.learning_rate == pytest.approx(0.0123)
    assert window.last_snapshot.eval is not None and step_of(window) == 11  # not reset


def test_changing_the_architecture_resets_and_says_so(window, qtbot):
    window.step(10)
    qtbot.waitUntil(lambda: step_of(window) == 10, timeout=10_000)
    window.controls._widgets["network.width"].setValue(5)
    qtbot.waitUntil(lambda: window.info.layer_shapes[0] == (2, 5), timeout=10_000)
    assert step_of(window) == 0
    assert "reset" in window.statusBar().currentMessage()


def test_invalid_value_is_refused_with_a_message_naming_the_field(window):
    w = window.controls._widgets["optimizer.learning_rate"]
    w.edit.setText("0")
    w.edit.editingFinished.emit()
    assert window.config.optimizer.learning_rate == SMALL.optimizer.learning_rate
    assert "optimizer.learning_rate" in window.statusBar().currentMessage()


def test_divergence_shows_the_banner_and_rolls_back_without_a_crash(window, qtbot):
    window.apply_config(EXPLODING)
    qtbot.waitUntil(lambda: window.info.task == "regression", timeout=20_000)
    window.toggle_play()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert not window.playing
    assert "diverged" in window.banner.title.text()
    # the event (banner) and the frame (snapshot) travel separately: wait for the frame
    qtbot.waitUntil(lambda: window.last_snapshot.diverged, timeout=5000)
    window.banner.rollback_button.click()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: window.last_snapshot is not None
                    and not window.last_snapshot.diverged, timeout=10_000)
    assert np.isfinite(window.last_snapshot.layer_weight_norm).all()
    assert window.errors == []


def test_save_and_open_round_trip_an_experiment(window, qtbot, tmp_path):
    changed = SMALL.replace(**{"optimizer.learning_rate": 0.07, "network.batch_norm": True})
    window.apply_config(changed)
    path = tmp_path / "exp.toml"
    assert window._save_to(path)
    assert config_io.load(path) == changed
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    window.apply_config(SMALL)
    assert window.load_experiment(path)
    assert window.config == changed
    assert window.controls.config() == changed
    assert str(path) in window._recent()


def test_opening_a_broken_file_keeps_the_window_working(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: shown.append(a[2]))
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlearning_rate = -1\n")
    assert not window.load_experiment(bad)
    assert "optimizer.learning_rate must be > 0" in shown[0]
    window.step(2)
    qtbot.waitUntil(lambda: step_of(window) == 2, timeout=10_000)


def test_closing_during_training_leaves_no_running_worker(qtbot):
    from desktop_app.window import MainWindow

    w = MainWindow(SMALL, warm_up=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ready, timeout=120_000)
    w.toggle_play()
    qtbot.waitUntil(lambda: step_of(w) > 50, timeout=30_000)
    w.close()
    assert not w.worker.process.is_alive()
    assert w.worker.process.exitcode == 0  # it ended by itself, not terminated
    assert not [t for t in threading.enumerate() if t.name.startswith("gradient-lab")]


def test_every_view_receives_data(window, qtbot, tmp_path):
    window.step(60)
    qtbot.waitUntil(lambda: step_of(window) == 60, timeout=10_000)
    x, _ = window.loss_view.step_curve.getData()
    assert len(x) == 60
    assert len(window.flow_view.norm_bars.opts["x"]) == window.info.n_layers
    assert window.inside_view._probe.step == 60  # probed when the steps finished
    assert window.decision_view.probability_image.image.shape == (64, 64)
    files = window.export_figures(tmp_path)
    assert any(f.suffix == ".png" for f in files) and any(f.suffix == ".svg" for f in files)
    assert all(f.stat().st_size > 0 for f in files)


def test_history_export_writes_a_csv(window, qtbot, tmp_path):
    window.step(30)
    qtbot.waitUntil(lambda: step_of(window) == 30, timeout=10_000)
    out = tmp_path / "history.csv"
    window.export_history(out)
    qtbot.waitUntil(out.exists, timeout=10_000)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("step,loss")
    assert len(lines) == 31


def test_sharpness_is_tracked_against_the_stability_threshold(window, qtbot):
    view = window.dynamics_view
    view.every_box.setValue(20)
    view.track_box.setChecked(True)
    window.step(60)
    qtbot.waitUntil(lambda: step_of(window) == 60, timeout=30_000)
    qtbot.waitUntil(lambda: view.lam_curve.getData()[0] is not None
                    and view.lam_curve.getData()[0][-1] == 60, timeout=30_000)
    steps, lam = view.lam_curve.getData()
    # measured when asked (step 0), whenever a chunk of steps crossed a multiple of 20, and
    # at 60; always increasing, never more often than asked
    assert steps[0] == 0 and np.all(np.diff(steps) > 0) and len(steps) <= 4
    assert np.all(np.isfinite(lam)) and np.all(lam > 0)
    _, log_threshold = view.threshold_curve.getData()  # the plot's y axis is log10
    # SGD: the quadratic stability bound is 2/η at the rate in use
    assert 10 ** log_threshold[-1] == pytest.approx(2 / SMALL.optimizer.learning_rate)
    assert "λmax" in view.verdict.text()


def test_range_test_suggests_a_rate_that_one_click_applies(window, qtbot):
    view = window.dynamics_view
    view.test_steps.setValue(40)
    view.test_button.click()
    qtbot.waitUntil(lambda: view.result is not None, timeout=120_000)
    assert view.apply_steepest.isEnabled()
    x, _ = view.median_curve.getData()
    assert len(x) > 5
    view.apply_steepest.click()
    expected = float(f"{view.result.steepest:.3g}")
    assert window.config.optimizer.learning_rate == pytest.approx(expected)
    window.step(1)
    qtbot.waitUntil(lambda: step_of(window) >= 1, timeout=10_000)
    assert window.last_snapshot.learning_rate == pytest.approx(expected)


def test_playground_page_opens_with_the_lecture_presets(window, qtbot):
    assert window.playground_view is None  # built on first use
    window.pages.setCurrentIndex(window.pages.count() - 1)
    view = window.playground_view
    assert view is not None and view.isVisible()
    view.apply_preset("near-optimal")
    qtbot.waitUntil(lambda: len(view.paths()) == 1, timeout=10_000)
    end = view.paths()[0].points[-1]
    assert abs(end).max() < 1e-3  # the quadratic's minimum is at the origin


def test_landscape_page_computes_a_slice_and_follows_the_path(window, qtbot):
    window.step(40)
    qtbot.waitUntil(lambda: step_of(window) == 40, timeout=10_000)
    view = window.landscape_view
    view.kind_combo.setCurrentIndex(view.kind_combo.findData("random"))
    view.grid_spin.setValue(11)
    view.compute_button.click()
    qtbot.waitUntil(lambda: view.image.image is not None, timeout=600_000)  # may compile
    assert view.image.image.shape == (11, 11)
    window.step(20)
    qtbot.waitUntil(lambda: step_of(window) == 60, timeout=10_000)
    window.pages.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.path_curve.getData()[0] is not None
                    and len(view.path_curve.getData()[0]) >= 2, timeout=10_000)
