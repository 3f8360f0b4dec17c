"""Application start-up: the QApplication, the window, and scripted runs."""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

from engine import config as config_io
from engine.config import ConfigError

APP_NAME = "Gradient Lab"
ORGANIZATION = "GradientLab"
DESKTOP_FILE = "gradient-lab"  # the .desktop entry's name (packaging/), for the icon on Wayland
DEFAULT_EXPERIMENT = "spiral_tanh.toml"
SELF_TEST_STEPS = 300


def default_config():
    """The experiment the window opens with when none is named."""
    text = resources.files("resources.experiments").joinpath(DEFAULT_EXPERIMENT).read_text(
        encoding="utf-8"
    )
    return config_io.loads(text)


def make_app():
    from PySide6.QtWidgets import QApplication

    from desktop_app.theme import configure_pyqtgraph

    app = QApplication.instance()
    if app is None:
        QApplication.setApplicationName(APP_NAME)
        QApplication.setOrganizationName(ORGANIZATION)
        QApplication.setDesktopFileName(DESKTOP_FILE)
        app = QApplication(sys.argv[:1])
        icon = resources.files("resources.icons").joinpath("gradient-lab.png")
        if icon.is_file():
            from PySide6.QtGui import QIcon

            app.setWindowIcon(QIcon(str(icon)))
    configure_pyqtgraph()
    return app


class ScriptedRun:
    """Train N steps once the window is ready, then screenshot and (optionally) quit."""

    def __init__(self, window, app, steps: int, screenshot: Path | None, quit_after: bool,
                 timeout: float, self_test: bool = False):
        self.window, self.app = window, app
        self.steps, self.screenshot, self.quit_after = steps, screenshot, quit_after
        self.self_test = self_test
        self.t0 = time.monotonic()
        self.deadline = time.monotonic() + timeout
        self.exit_code = 0
        self.started = False
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self) -> None:
        w = self.window
        if w.errors:
            self.finish(1, f"error: {w.errors[0]}")
            return
        if time.monotonic() > self.deadline:
            self.finish(3, "error: the scripted run timed out")
            return
        if not w.ready or w.info is None:
            return
        if not self.started:
            self.started = True
            if self.steps > 0:
                w.step(self.steps)
            return
        snap = w.last_snapshot
        if snap is None:
            return
        done = snap.step >= self.steps or snap.diverged
        if done and w.mailbox_empty():
            if self.self_test:
                self.finish(*self_test_verdict(w.config, snap, time.monotonic() - self.t0))
            else:
                self.finish(0, f"trained {snap.step} steps, loss {snap.loss:.4g}")

    def finish(self, code: int, message: str) -> None:
        self.timer.stop()
        self.exit_code = code
        print(message, file=sys.stderr if code else sys.stdout)
        if self.screenshot is not None and code == 0:
            w = self.window
            w.drain()
            settle = time.monotonic() + 0.4  # let deferred layouts and repaints finish
            while time.monotonic() < settle:
                self.app.processEvents()
                time.sleep(0.02)
            if not w.grab().save(str(self.screenshot)):
                print(f"error: could not write {self.screenshot}", file=sys.stderr)
                self.exit_code = 1
        if self.quit_after:
            self.window.close()
            self.app.exit(self.exit_code)


def self_test_verdict(config, snap, seconds: float) -> tuple[int, str]:
    """(exit code, one line) for --self-test: did the training loss fall?"""
    from engine.session import TrainingSession

    head = f"self-test ({seconds:.1f} s, numba cache {os.environ.get('NUMBA_CACHE_DIR')})"
    if snap.diverged:
        return 1, f"{head} FAILED: the run diverged at step {snap.step}"
    if snap.eval is None or snap.step < 1:
        return 1, f"{head} FAILED: no evaluation after {snap.step} steps"
    # The same seed gives the worker's initial weights: evaluate them here (cache is warm).
    try:
        initial = TrainingSession(config).last_eval.train_loss
    except Exception as exc:  # a broken install shows up here too: say so, do not hang
        return 1, f"{head} FAILED: evaluating the initial weights: {exc!r}"
    final = snap.eval.train_loss
    if not final < initial:
        return 1, f"{head} FAILED: train loss did not fall ({initial:.4g} -> {final:.4g})"
    return 0, f"{head} passed: {snap.step} steps, train loss {initial:.4g} -> {final:.4g}"


def run(experiment: Path | None = None, run_steps: int = 0, screenshot: Path | None = None,
        quit_after: bool = False, timeout: float = 600.0, self_test: bool = False) -> int:
    """Start the window; returns the process exit code."""
    try:
        config = config_io.load(experiment) if experiment else default_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = make_app()
    from desktop_app.window import MainWindow

    window = MainWindow(config, path=experiment)
    if experiment:
        window._add_recent(Path(experiment))
    window.show()
    scripted = None
    if run_steps or screenshot or quit_after:
        scripted = ScriptedRun(window, app, run_steps, screenshot, quit_after, timeout,
                               self_test)
    code = app.exec()
    if scripted is not None:
        return scripted.exit_code
    return int(code)
