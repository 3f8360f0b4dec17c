"""The worker in its own process: the same `WorkerLoop`, with commands and frames over queues.

Why a process and not a thread: the window's painting (pyqtgraph, Python) and the worker's
glue between kernels both need the GIL. Measured on a 2-core machine, a worker *thread*
trained at ~35-40 % of the headless speed and the window drew ~12 frames/s, both waiting on
each other (tests/benchmarks/bench_app.py). In a process each has its own interpreter.

The child runs `WorkerLoop.run()`; its reporter and mailbox send tuples through one queue.
In the parent a receiver thread turns them back into `Mailbox` deposits and reporter calls.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from typing import Any

from desktop_app.worker import Mailbox, Reporter, WorkerCommands, WorkerLoop
from engine.config import ExperimentConfig

JOIN_SECONDS = 10.0
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class _QueueReporter:
    """Child side: every reporter call becomes ("event", name, args)."""

    def __init__(self, out: Any):
        self.out = out

    def __getattr__(self, name: str):
        return lambda *args: self.out.put(("event", name, args))


class _QueueMailbox:
    """Child side: what the worker deposits goes to the parent."""

    def __init__(self, out: Any):
        self.out = out

    def put_info(self, info) -> None:
        self.out.put(("info", info))

    def put_update(self, info) -> None:
        self.out.put(("update", info))

    def put(self, snapshot, delta, boundary, sps, running, sharpness=None,
            landscape_path=None) -> None:
        self.out.put(("frame", snapshot, delta, boundary, sps, running, sharpness,
                      landscape_path))


def _child_main(config: ExperimentConfig, warm_up: bool, commands: Any, out: Any) -> None:
    loop = WorkerLoop(config, _QueueReporter(out), _QueueMailbox(out), warm_up=warm_up)
    loop._commands = commands  # same get / get_nowait / put as queue.Queue
    try:
        loop.run()
    finally:
        out.put(("exited",))


class ExportHistory:
    """A picklable command: write the session's history as CSV (see engine.cli)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, session) -> None:
        from pathlib import Path

        from engine.cli import write_history_csv

        write_history_csv(session, Path(self.path))


class ProcessWorker(WorkerCommands):
    """Parent side: the command API of `WorkerLoop`, running it in a child process."""

    def __init__(self, config: ExperimentConfig, reporter: Reporter, mailbox: Mailbox,
                 warm_up: bool = True):
        self.reporter = reporter
        self.mailbox = mailbox
        ctx = mp.get_context("spawn")  # never fork a process that has Qt running
        self._commands = ctx.Queue()
        self._out = ctx.Queue()
        self.process = ctx.Process(target=_child_main, name="gradient-lab-worker",
                                   args=(config, warm_up, self._commands, self._out),
                                   daemon=True)
        self._receiver = threading.Thread(target=self._receive, name="gradient-lab-receiver",
                                          daemon=True)
        self._stopping = False

    def start(self) -> None:
        # One BLAS thread in the worker: the window's process needs the other core, and a
        # second OpenBLAS thread that has to share a core collapsed the speed of mid-sized
        # matrix products (2-90 instead of ~300 steps/s, tests/benchmarks/bench_engine.py).
        # The child reads this when its BLAS loads; the window's own BLAS is not affected.
        saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARIABLES}
        os.environ.update({k: "1" for k in BLAS_THREAD_VARIABLES})
        try:
            self.process.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self._receiver.start()

    # -- commands ------------------------------------------------------------------------
    def _send(self, name: str, payload: Any = None) -> None:
        if self.process.is_alive():
            self._commands.put((name, payload))

    def export_history(self, path) -> None:
        """Write the run's history as CSV (on the worker, which owns it)."""
        self._send("call", ExportHistory(str(path)))

    def quit(self) -> None:
        self._stopping = True
        self._send("quit")

    def join(self, timeout: float = JOIN_SECONDS) -> bool:
        """Wait for the child to end (terminating it if it does not); True if it ended."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        self._out.put(("exited",))  # wakes the receiver if the child could not say so
        self._receiver.join(2.0)
        return not self.process.is_alive()

    # -- receiving -----------------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            try:
                message = self._out.get(timeout=0.5)
            except queue.Empty:
                if not self.process.is_alive():
                    if not self._stopping:
                        self.reporter.errored("The training process stopped unexpectedly "
                                              f"(exit code {self.process.exitcode}).")
                    return
                continue
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "frame":
                self.mailbox.put(*message[1:])
            elif kind == "info":
                self.mailbox.put_info(message[1])
            elif kind == "update":
                self.mailbox.put_update(message[1])
            elif kind == "event":
                getattr(self.reporter, message[1])(*message[2])
            elif kind == "exited":
                return
