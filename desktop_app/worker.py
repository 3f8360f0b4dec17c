"""The worker: one thread owns the training session; commands in, frames out.

Commands reach the worker through a queue and are handled between short chunks of steps.
Frames reach the window through a `Mailbox` that keeps the newest snapshot and every history
row since the last read; the window drains it on a ~30 Hz timer. Rare events (compiling,
errors, divergence) go to a `reporter` — Qt signals in the app, a plain recorder in tests.
No Qt in this module.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from desktop_app.messages import (
    Boundary,
    Frame,
    HistoryDelta,
    RunInfo,
    SharpnessSeries,
    make_boundary,
    make_delta,
    make_run_info,
)
from desktop_app.worker_landscape import LandscapeService
from engine.config import ExperimentConfig

PUBLISH_INTERVAL = 1 / 40  # a little faster than the window drains, so every tick has news
PROBE_INTERVAL = 0.25  # layer probes (histograms) a few times a second, not every evaluation
BOUNDARY_INTERVAL = 0.25  # the decision boundary is recomputed a few times a second
CHUNK_SECONDS = 0.008  # at full speed, steps per engine call are sized to take about this
MAX_SPEED = 0  # speed value meaning "as fast as the engine goes"


class Reporter(Protocol):
    def compiling(self, done: int, total: int, text: str) -> None: ...
    def ready(self) -> None: ...
    def errored(self, message: str) -> None: ...
    def diverged(self, divergence: Any) -> None: ...
    def paused(self) -> None: ...
    def notice(self, message: str) -> None: ...
    def range_test_done(self, result: Any) -> None: ...
    def landscape_done(self, result: Any) -> None: ...


class Mailbox:
    """Thread-safe hand-over: the newest run info, snapshot and boundary, and all deltas."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: RunInfo | None = None
        self._update: RunInfo | None = None
        self._deltas: list[HistoryDelta] = []
        self._snapshot = None
        self._boundary: Boundary | None = None
        self._sharpness: SharpnessSeries | None = None
        self._landscape_path: np.ndarray | None = None
        self._sps = 0.0
        self._running = False

    def put_info(self, info: RunInfo) -> None:
        """A new run: frames of the old one still waiting are dropped."""
        with self._lock:
            self._info = info
            self._update = None
            self._deltas.clear()
            self._snapshot = None
            self._boundary = None

    def put(self, snapshot, delta: HistoryDelta, boundary: Boundary | None, sps: float,
            running: bool, sharpness: SharpnessSeries | None = None,
            landscape_path: np.ndarray | None = None) -> None:
        with self._lock:
            if landscape_path is not None:
                self._landscape_path = landscape_path
            if len(delta) or len(delta.eval_steps):
                self._deltas.append(delta)
            self._snapshot = snapshot
            if boundary is not None:
                self._boundary = boundary
            if sharpness is not None:
                self._sharpness = sharpness
            self._sps, self._running = sps, running

    def put_update(self, info: RunInfo) -> None:
        """Same run, changed settings (e.g. a new schedule): nothing is dropped."""
        with self._lock:
            self._update = info

    def take_info(self) -> RunInfo | None:
        """The new run's info, if a run was (re)built since the last call."""
        with self._lock:
            info, self._info = self._info, None
            return info

    def take_update(self) -> RunInfo | None:
        with self._lock:
            info, self._update = self._update, None
            return info

    def empty(self) -> bool:
        with self._lock:
            return self._snapshot is None and self._info is None and self._update is None

    def take(self) -> Frame | None:
        """Everything since the last take, or None if nothing arrived."""
        with self._lock:
            if self._snapshot is None:
                return None
            n_layers = len(self._snapshot.layer_names)
            delta = HistoryDelta.concat(self._deltas) if self._deltas else \
                HistoryDelta.empty(n_layers)
            frame = Frame(self._snapshot, delta, self._boundary, self._sps, self._running,
                          self._sharpness, self._landscape_path)
            self._landscape_path = None
            self._deltas = []
            self._snapshot = None
            self._boundary = None
            self._sharpness = None
            return frame


@dataclass
class _Published:
    step: int = 0
    eval_step: int = -1
    time: float = 0.0
    boundary_time: float = 0.0
    probe_time: float = 0.0


class WorkerCommands:
    """The commands a worker takes (from any thread); subclasses say how `_send` sends."""

    def _send(self, name: str, payload: Any = None) -> None:
        raise NotImplementedError

    def play(self) -> None:
        self._send("play")

    def pause(self) -> None:
        self._send("pause")

    def step(self, n: int = 1) -> None:
        self._send("step", int(n))

    def reset(self, config: ExperimentConfig | None = None) -> None:
        self._send("reset", config)

    def update_config(self, config: ExperimentConfig) -> None:
        self._send("update", config)

    def set_speed(self, steps_per_second: float) -> None:
        self._send("speed", float(steps_per_second))

    def rollback(self, to_kept_state: bool = True) -> None:
        """After a divergence: back to the newest kept state before the blow-up, or (with
        to_kept_state=False) accept the last finite state. Training stays paused."""
        self._send("rollback", to_kept_state)

    def track_sharpness(self, every: int) -> None:
        """Measure λmax every `every` steps while training (0: stop)."""
        self._send("sharpness", int(every))

    def landscape(self, kind: str = "random", n: int = 41, span: float = 1.0) -> None:
        """Compute a loss-landscape slice; reporter.landscape_done(result) when ready. A
        newer request cancels one still running."""
        self._send("landscape", (str(kind), int(n), float(span)))

    def landscape_every(self, steps: int) -> None:
        """Recompute the last requested slice every `steps` steps while training (0: off)."""
        self._send("landscape_every", int(steps))

    def range_test(self, n_steps: int = 200, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
        """Run the learning-rate range test from the current configuration; the result
        comes back as reporter.range_test_done(result)."""
        self._send("range_test", (int(n_steps), tuple(seeds)))


class WorkerLoop(WorkerCommands):
    """The worker's logic: call `run()` on a thread; talk to it with the command methods."""

    def __init__(self, config: ExperimentConfig, reporter: Reporter, mailbox: Mailbox,
                 warm_up: bool = True):
        self.reporter = reporter
        self.mailbox = mailbox
        self._config = config
        self._warm_up = warm_up
        self._commands: queue.Queue = queue.Queue()
        self.session = None
        self.info: RunInfo | None = None
        self.running = False
        self.speed = MAX_SPEED
        self._pending_steps = 0
        self._quit = False
        self._chunk = 1
        self._published = _Published()
        self._sps = 0.0
        self._rate_window: list[tuple[float, int]] = []
        self._next_step_time = 0.0
        self.sharpness = None
        self.landscape_service = LandscapeService()
        self._backlog: list = []

    def _send(self, name: str, payload: Any = None) -> None:
        self._commands.put((name, payload))

    def call(self, func) -> None:
        """Run func(session) on the worker thread (exports, saves); errors are reported."""
        self._send("call", func)

    def quit(self) -> None:
        self._send("quit")

    # -- the loop (worker thread) --------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._warm_up:
                warm_up(self.reporter)
            self._build(self._config)
            self.reporter.ready()
        except Exception as exc:  # a broken start must still leave a live window
            self.reporter.errored(_describe(exc))
        while not self._quit:
            busy = self.session is not None and (self.running or self._pending_steps > 0)
            self._handle_commands(block=not busy)
            if self._quit:
                break
            if self.session is None or not (self.running or self._pending_steps > 0):
                continue
            try:
                self._train_some()
            except Exception as exc:
                self.running = False
                self._pending_steps = 0
                self.reporter.errored(_describe(exc))
                self._publish(force=True)

    def _next_command(self, timeout: float):
        if self._backlog:
            return self._backlog.pop(0)
        if timeout:
            return self._commands.get(timeout=timeout)
        return self._commands.get_nowait()

    def _superseded(self) -> bool:
        """True if a newer landscape request (or quit/reset) waits: cancels the running one."""
        while True:
            try:
                self._backlog.append(self._commands.get_nowait())
            except queue.Empty:
                break
        return any(name in ("landscape", "quit", "reset") for name, _ in self._backlog)

    def _handle_commands(self, block: bool) -> None:
        timeout = 0.05 if block else 0.0
        while True:
            try:
                name, payload = self._next_command(timeout)
            except queue.Empty:
                return
            timeout = 0.0
            try:
                self._handle(name, payload)
            except Exception as exc:
                self.reporter.errored(_describe(exc))
            if self._quit:
                return

    def _handle(self, name: str, payload: Any) -> None:
        if name == "quit":
            self._quit = True
        elif name == "play":
            if self.session is not None and self.session.diverged:
                self.reporter.notice("The run diverged: roll back or reset before playing.")
                return
            self.running = True
            self._rate_window.clear()
            self._next_step_time = time.perf_counter()
        elif name == "pause":
            self.running = False
            self._pending_steps = 0
            self._publish(force=True)
            self.reporter.paused()
        elif name == "step":
            self.running = False
            if self.session is not None and not self.session.diverged:
                self._pending_steps += payload
        elif name == "reset":
            self.running = False
            self._pending_steps = 0
            self._build(payload or self._config)
        elif name == "update":
            self.session.update_config(payload)
            self._config = payload
            self.info = make_run_info(self.session)
            self.mailbox.put_update(self.info)
            self._publish(force=True)
        elif name == "speed":
            self.speed = payload
            self._next_step_time = time.perf_counter()
        elif name == "rollback":
            if payload:
                self.session.rollback()
                # the history was cut: the views start again from the kept state's history
                self.mailbox.put_info(self.info)
                self._published = _Published()
            else:
                self.session.clear_divergence()
            self._publish(force=True)
        elif name == "call":
            payload(self.session)
        elif name == "sharpness":
            self._set_sharpness(payload)
        elif name == "landscape":
            self._compute_landscape(payload)
        elif name == "landscape_every":
            self.landscape_service.auto_every = payload
        elif name == "range_test":
            from engine.dynamics import lr_range_test

            self.running = False
            n_steps, seeds = payload
            self.reporter.notice(f"Running the learning-rate range test ({len(seeds)} seeds × "
                                 f"{n_steps} steps)…")
            result = lr_range_test(self._config, n_steps=n_steps, seeds=seeds)
            self.reporter.range_test_done(result)

    def _compute_landscape(self, request) -> None:
        self.reporter.notice("Computing the loss landscape…")
        result = self.landscape_service.compute(self.session, request, self._superseded)
        if result is None:
            self.reporter.notice("Landscape cancelled by a newer request.")
            return
        self.reporter.landscape_done(result)
        self._publish(force=True)

    def _set_sharpness(self, every: int) -> None:
        from engine.dynamics import SharpnessTracker

        self.sharpness = SharpnessTracker(every=every) if every > 0 else None
        if self.sharpness is not None and self.session is not None:
            self.sharpness.measure(self.session)
            self._publish(force=True)

    def _track_sharpness(self, before: int) -> None:
        """Measure when the steps just taken crossed a multiple of the tracker's interval."""
        t, s = self.sharpness, self.session
        if t is None or s.diverged or s.step_count // t.every == before // t.every:
            return
        t.measure(s)

    def _sharpness_series(self) -> SharpnessSeries | None:
        t = self.sharpness
        if t is None:
            return None
        return SharpnessSeries(np.array(t.steps, dtype=np.int64), np.array(t.values),
                               np.array(t.thresholds))

    def _build(self, config: ExperimentConfig) -> None:
        from engine.session import TrainingSession

        self._config = config
        self.session = TrainingSession(config, auto_probe=False)
        self.landscape_service.new_run(self.session)
        if self.sharpness is not None:
            self.sharpness.reset()
        self.session.probe()
        self.info = make_run_info(self.session)
        self._published = _Published()
        self._rate_window.clear()
        self._sps = 0.0
        self.mailbox.put_info(self.info)
        self._publish(force=True)

    def _train_some(self) -> None:
        s = self.session
        now = time.perf_counter()
        if self._pending_steps > 0:
            n = min(self._pending_steps, max(self._chunk, 1))
        elif self.speed == MAX_SPEED:
            n = self._chunk
        else:
            # paced: run the steps that are due, then wait (commands wake us)
            due = int((now - self._next_step_time) * self.speed) + 1
            if now < self._next_step_time:
                self._handle_commands_for(self._next_step_time - now)
                return
            n = max(1, min(due, self._chunk))
            self._next_step_time += n / self.speed
            if self._next_step_time < now - 0.5:  # fell far behind: do not try to catch up
                self._next_step_time = now
        t0 = time.perf_counter()
        before = s.step_count
        snap = s.step(n)
        self._track_sharpness(before)
        self.landscape_service.record()
        if self.landscape_service.due(before, s.step_count) and not s.diverged:
            self._compute_landscape(None)
        elapsed = time.perf_counter() - t0
        done = snap.step - before
        if self._pending_steps > 0:
            self._pending_steps = max(0, self._pending_steps - max(done, 1))
        self._adapt_chunk(done, elapsed)
        self._measure_rate(snap.step)
        if snap.diverged:
            self.running = False
            self._pending_steps = 0
            self._publish(force=True)
            self.reporter.diverged(snap.divergence)
            return
        finished = not self.running and self._pending_steps == 0
        self._publish(force=finished)

    def _handle_commands_for(self, seconds: float) -> None:
        deadline = time.perf_counter() + min(seconds, 0.05)
        while not self._quit:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            try:
                name, payload = self._next_command(left)
            except queue.Empty:
                return
            try:
                self._handle(name, payload)
            except Exception as exc:
                self.reporter.errored(_describe(exc))
            return

    def _adapt_chunk(self, done: int, elapsed: float) -> None:
        if done <= 0 or elapsed <= 0:
            return
        per_step = elapsed / done
        target = max(1, int(CHUNK_SECONDS / per_step))
        self._chunk = max(1, min(4096, (self._chunk + target) // 2 if target < self._chunk
                                 else target))

    def _measure_rate(self, step: int) -> None:
        now = time.perf_counter()
        self._rate_window.append((now, step))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 1.0:
            self._rate_window.pop(0)
        (t0, s0), (t1, s1) = self._rate_window[0], self._rate_window[-1]
        self._sps = (s1 - s0) / (t1 - t0) if t1 > t0 else self._sps

    def _publish(self, force: bool = False) -> None:
        now = time.perf_counter()
        p = self._published
        if not force and now - p.time < PUBLISH_INTERVAL:
            return
        s = self.session
        delta = make_delta(s, p.step, p.eval_step)
        boundary = None
        if force or now - p.boundary_time >= BOUNDARY_INTERVAL:
            boundary = make_boundary(s, self.info)
            p.boundary_time = now
        probe = s.last_probe
        if force or probe is None or (probe.step != s.step_count
                                      and now - p.probe_time >= PROBE_INTERVAL):
            s.probe()
            p.probe_time = now
        running = self.running or self._pending_steps > 0
        self.mailbox.put(s.snapshot(), delta, boundary, self._sps if running else 0.0, running,
                         self._sharpness_series(), self.landscape_service.path(s))
        p.step = s.step_count
        if len(delta.eval_steps):
            p.eval_step = int(delta.eval_steps[-1])
        p.time = now


def warm_up(reporter: Reporter) -> None:
    """Compile (first start) or load (later starts) the engine's kernels, with progress."""
    stages = [
        ("Loading the engine", lambda: __import__("engine")),
        ("Compiling the network kernels", _warm_build),
        ("Compiling the training loop", lambda: _warm_session().step(1)),
        ("Compiling evaluation and probes", lambda: _warm_session().probe()),
    ]
    total = len(stages)
    for i, (text, func) in enumerate(stages):
        reporter.compiling(i, total, text)
        func()
    reporter.compiling(total, total, "Ready")


_WARM: dict[str, Any] = {}


def _warm_session():
    if "session" not in _WARM:
        _warm_build()
    return _WARM["session"]


def _warm_build() -> None:
    from engine.session import TrainingSession

    config = ExperimentConfig.from_dict({
        "data": {"dataset": "xor", "n_samples": 40},
        "network": {"hidden_layers": 1, "width": 3, "loss": "bce", "batch_norm": True},
        "run": {"batch_size": 8, "eval_every": 1},
    })
    _WARM["session"] = TrainingSession(config)


def _describe(exc: BaseException) -> str:
    from engine.config import ConfigError

    if isinstance(exc, ConfigError | ValueError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"
