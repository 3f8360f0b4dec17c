"""The worker's logic without Qt: a fake reporter records the rare events."""

from __future__ import annotations

import threading
import time

import pytest

from desktop_app.worker import Mailbox, WorkerLoop
from engine.config import ExperimentConfig

SMALL = ExperimentConfig.from_dict({
    "data": {"dataset": "xor", "n_samples": 200},
    "network": {"hidden_layers": 2, "width": 8, "loss": "bce"},
    "run": {"batch_size": 16, "eval_every": 20, "steps": 500},
})


class FakeReporter:
    def __init__(self):
        self.events: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.events.append((name, *args))

    def names(self) -> list[str]:
        return [e[0] for e in self.events]


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


@pytest.fixture
def worker():
    reporter = FakeReporter()
    loop = WorkerLoop(SMALL, reporter, Mailbox(), warm_up=False)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    wait_until(lambda: "ready" in reporter.names())
    yield loop, reporter
    loop.quit()
    thread.join(10)
    assert not thread.is_alive()


def latest(loop: WorkerLoop):
    """Drain the mailbox until a frame arrives; return it."""
    frame = None
    wait_until(lambda: loop.mailbox.empty() is False)
    frame = loop.mailbox.take()
    return frame


def test_first_frame_and_run_info_arrive_before_training(worker):
    loop, _ = worker
    info = loop.mailbox.take_info()
    assert info is not None and info.n_layers == 3
    frame = loop.mailbox.take()
    assert frame.snapshot.step == 0 and not frame.running


def test_step_advances_exactly_n_steps(worker):
    loop, _ = worker
    loop.mailbox.take()
    loop.step(1)
    wait_until(lambda: loop.session.step_count == 1)
    time.sleep(0.1)
    assert loop.session.step_count == 1
    loop.step(37)
    wait_until(lambda: loop.session.step_count == 38)
    time.sleep(0.1)
    assert loop.session.step_count == 38
    frame = loop.mailbox.take()
    assert frame.snapshot.step == 38
    # every history row since the last read is delivered, in order
    assert list(frame.delta.steps) == list(range(1, 39))


def test_play_trains_and_pause_stops(worker):
    loop, reporter = worker
    loop.play()
    wait_until(lambda: loop.session.step_count > 300)
    loop.pause()
    wait_until(lambda: "paused" in reporter.names())
    stopped_at = loop.session.step_count
    time.sleep(0.2)
    assert loop.session.step_count == stopped_at


def test_paced_speed_is_respected(worker):
    loop, _ = worker
    loop.set_speed(20)
    loop.play()
    time.sleep(1.0)
    loop.pause()
    time.sleep(0.1)
    # 20 steps/s for ~1 s: a generous band, never "as fast as possible"
    assert 5 <= loop.session.step_count <= 40


def test_learning_rate_change_reaches_the_engine_at_the_next_step(worker):
    loop, _ = worker
    loop.step(5)
    wait_until(lambda: loop.session.step_count == 5)
    loop.update_config(SMALL.replace(**{"optimizer.learning_rate": 0.123}))
    loop.step(1)
    wait_until(lambda: loop.session.step_count == 6)
    assert loop.session.history.lr[-1] == pytest.approx(0.123)
    assert loop.session.history.lr[-2] == pytest.approx(SMALL.optimizer.learning_rate)
    assert loop.mailbox.take_update().config.optimizer.learning_rate == 0.123


def test_reset_starts_again(worker):
    loop, _ = worker
    loop.step(10)
    wait_until(lambda: loop.session.step_count == 10)
    loop.mailbox.take_info()
    loop.reset(SMALL.replace(**{"network.width": 4}))
    infos = []
    wait_until(lambda: infos.append(loop.mailbox.take_info()) or infos[-1] is not None)
    assert infos[-1].layer_shapes[0] == (2, 4)
    assert loop.session.step_count == 0
    frames = []
    wait_until(lambda: frames.append(loop.mailbox.take()) or frames[-1] is not None)
    assert frames[-1].snapshot.step == 0


def test_divergence_is_reported_and_training_stops(worker):
    loop, reporter = worker
    bad = ExperimentConfig.from_dict({
        "data": {"dataset": "plane", "n_samples": 200},
        "network": {"hidden_layers": 3, "width": 16, "activation": "relu", "loss": "mse"},
        "init": {"weights": "he_normal"},
        "optimizer": {"learning_rate": 10.0},
    })
    loop.reset(bad)
    loop.play()
    wait_until(lambda: "diverged" in reporter.names())
    divergence = [e for e in reporter.events if e[0] == "diverged"][0][1]
    assert not loop.running
    assert loop.session.step_count == divergence.step - 1
    loop.play()  # refused while diverged
    time.sleep(0.1)
    assert loop.session.step_count == divergence.step - 1
    loop.rollback()
    wait_until(lambda: not loop.session.diverged)


def test_an_exception_on_the_worker_is_reported_and_the_loop_survives(worker):
    loop, reporter = worker

    def boom(session):
        raise RuntimeError("disk on fire")

    loop.call(boom)
    wait_until(lambda: "errored" in reporter.names())
    assert "disk on fire" in [e for e in reporter.events if e[0] == "errored"][0][1]
    loop.step(3)
    wait_until(lambda: loop.session.step_count == 3)


def test_warm_up_reports_progress():
    reporter = FakeReporter()
    loop = WorkerLoop(SMALL, reporter, Mailbox(), warm_up=True)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    wait_until(lambda: "ready" in reporter.names())
    loop.quit()
    thread.join(10)
    progress = [e for e in reporter.events if e[0] == "compiling"]
    assert progress[0][1] == 0 and progress[-1][1] == progress[-1][2]
    assert [p[1] for p in progress] == sorted(p[1] for p in progress)


def test_landscape_slice_is_computed_on_request_and_the_path_follows_training(worker):
    loop, reporter = worker
    loop.step(50)
    wait_until(lambda: loop.session.step_count == 50)
    loop.landscape("pca", 11, 1.0)
    wait_until(lambda: "landscape_done" in reporter.names(), timeout=600)  # may compile
    result = [e for e in reporter.events if e[0] == "landscape_done"][-1][1]
    assert result.slice.loss.shape == (11, 11) and result.slice.step == 50
    assert result.interpolation is not None and result.gradient_line is not None
    loop.mailbox.take()
    loop.step(30)
    wait_until(lambda: loop.session.step_count == 80)
    frames = []
    wait_until(lambda: frames.append(loop.mailbox.take()) or
               (frames[-1] is not None and frames[-1].snapshot.step == 80))
    path = frames[-1].landscape_path
    assert path is not None and path.shape[1] == 2
    assert len(path) > len(result.slice.path)  # grew with the new steps


def test_a_newer_landscape_request_wins(worker):
    loop, reporter = worker
    loop.step(20)
    wait_until(lambda: loop.session.step_count == 20)
    loop.landscape("random", 101, 1.0)
    loop.landscape("random", 7, 0.5)
    wait_until(lambda: "landscape_done" in reporter.names(), timeout=600)  # may compile
    time.sleep(0.5)
    done = [e[1] for e in reporter.events if e[0] == "landscape_done"]
    assert done[-1].slice.loss.shape == (7, 7)
