"""Benchmark: does the window keep up while training at full speed?

Measures, on the same experiment and in the same process:
  * headless engine speed: TrainingSession.step() in the worker's chunk sizes, steps/s;
  * in the app at full speed: steps/s of the worker while the window redraws, and the
    window's frame rate (timer drains that drew a frame) with frame-interval percentiles.
Prints the ratio app/headless (target >= 0.90) and frames/s (target >= 30).

    python tests/benchmarks/bench_app.py [--experiment FILE] [--seconds 8] [--json OUT]

Runs offscreen unless a display is set (use xvfb-run for a real X server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def headless(config, seconds: float) -> float:
    from engine.session import TrainingSession

    # as the command line runs it (python -m engine run): no layer probes
    s = TrainingSession(config, auto_probe=False)
    s.step(200)  # compile / warm caches
    t0 = time.perf_counter()
    start = s.step_count
    while time.perf_counter() - t0 < seconds:
        s.step(256)
    return (s.step_count - start) / (time.perf_counter() - t0)


def in_app(config, seconds: float) -> dict:
    from PySide6.QtCore import QEventLoop, QTimer

    from desktop_app.app import make_app
    from desktop_app.window import MainWindow

    make_app()
    w = MainWindow(config, warm_up=False)
    w.show()

    def spin(until, timeout=120.0):
        """Run the event loop (sleeping when idle, as app.exec() does) until `until()`."""
        deadline = time.perf_counter() + timeout
        loop = QEventLoop()
        check = QTimer()
        check.setInterval(10)
        check.timeout.connect(lambda: (until() or time.perf_counter() > deadline)
                              and loop.quit())
        check.start()
        loop.exec()
        check.stop()
        if not until():
            raise RuntimeError("timed out")

    spin(lambda: w.ready and w.last_snapshot is not None)
    w.step(200)
    spin(lambda: w.last_snapshot is not None and w.last_snapshot.step >= 200)
    frame_stamps: list[float] = []
    drawn = w.frames_drawn

    def watch():
        nonlocal drawn
        if w.frames_drawn != drawn:
            drawn = w.frames_drawn
            frame_stamps.append(time.perf_counter())

    w.drain = _wrap(w.drain, watch)  # record right after each drain
    w.timer.timeout.disconnect()
    w.timer.timeout.connect(w.drain)
    w.toggle_play()
    t_start = time.perf_counter()
    steps_start = w.last_snapshot.step
    spin(lambda: time.perf_counter() - t_start > seconds, timeout=seconds + 60)
    steps = w.last_snapshot.step - steps_start
    elapsed = time.perf_counter() - t_start
    w.toggle_play()
    w.close()
    intervals = sorted(b - a for a, b in zip(frame_stamps, frame_stamps[1:], strict=False))
    pct = lambda q: intervals[min(len(intervals) - 1, int(q * len(intervals)))] if intervals \
        else float("nan")  # noqa: E731
    return {
        "steps_per_s": steps / elapsed,
        "frames_per_s": len(frame_stamps) / elapsed,
        "frame_interval_ms_median": 1000 * pct(0.5),
        "frame_interval_ms_p95": 1000 * pct(0.95),
        "draw_ms_median": 1000 * sorted(w.frame_times)[len(w.frame_times) // 2],
    }


def _wrap(func, after):
    def wrapped():
        func()
        after()
    return wrapped


def main() -> int:
    # (the worker runs in a spawned process: everything here must sit under __main__)
    p = argparse.ArgumentParser()
    p.add_argument("--experiment", default=str(ROOT / "resources/experiments/spiral_tanh.toml"))
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json")
    args = p.parse_args()
    from engine import config as config_io

    config = config_io.load(args.experiment)
    # run the two measurements interleaved twice; the machine is shared and noisy
    rows = []
    for _ in range(2):
        h = headless(config, args.seconds / 2)
        a = in_app(config, args.seconds)
        rows.append((h, a))
    head = max(r[0] for r in rows)
    app = max(rows, key=lambda r: r[1]["steps_per_s"])[1]
    ratio = app["steps_per_s"] / head
    print(f"experiment: {Path(args.experiment).name}")
    print(f"headless engine        {head:12,.0f} steps/s")
    print(f"app at full speed      {app['steps_per_s']:12,.0f} steps/s   ratio {ratio:.2f} "
          f"(target >= 0.90) {'PASS' if ratio >= 0.9 else 'FAIL'}")
    print(f"window frames          {app['frames_per_s']:12.1f} /s        (target >= 30) "
          f"{'PASS' if app['frames_per_s'] >= 30 else 'FAIL'}")
    print(f"frame interval median  {app['frame_interval_ms_median']:9.1f} ms, "
          f"p95 {app['frame_interval_ms_p95']:.1f} ms; draw time median "
          f"{app['draw_ms_median']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"headless_steps_per_s": head, **app,
                                               "ratio_vs_headless": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
