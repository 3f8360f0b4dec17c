"""Benchmark: a 41 x 41 loss-landscape slice, engine against a plain numpy loop over the grid.

Case ``landscape_41``: the training loss (softmax cross-entropy + L2 term) of a 6 x 32 tanh
network on 1,000 spiral points at the 1,681 points θ + α d1 + β d2 of a 41 x 41 grid along
filter-normalized random directions. Timed in the same process, interleaved round by round:

- engine     ``landscape.slice_2d``: numba, parallel over grid points (prange), BLAS pinned
             to one thread while the kernel runs;
- numpy      for each grid point: θ in numpy, then the forward pass layer by layer
             (matmul, bias, tanh) and the loss, buffers allocated once;
- numpy-1t   the same with OpenBLAS limited to one thread (threadpoolctl), because on a small
             machine multi-threaded BLAS on 1000 x 32 matrices is often slower.

The ratio is numpy seconds / engine seconds, against the faster of the two numpy variants
(median over rounds each). Before timing, the two sides are compared on a 5 x 5 sub-grid.

Run from the repository root::

    python tests/benchmarks/bench_landscape.py
    python tests/benchmarks/bench_landscape.py --rounds 5 --json out.json

A measurement, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.config import ExperimentConfig  # noqa: E402  (after the path is set)
from engine.landscape import random_directions, slice_2d  # noqa: E402
from engine.session import TrainingSession  # noqa: E402

GRID = 41
POINTS = 1000
DEPTH, WIDTH = 6, 32
L2 = 1e-4
TARGET = 1.4
CHECK_TOLERANCE = 1e-10  # relative, engine vs numpy on the sub-grid


def make_session() -> TrainingSession:
    config = ExperimentConfig.from_dict({
        "name": "bench-landscape",
        "data": {"dataset": "spiral", "n_samples": POINTS, "validation_fraction": 0.0},
        "network": {"hidden_layers": DEPTH, "width": WIDTH, "activation": "tanh",
                    "loss": "softmax_ce"},
        "regularization": {"l2": L2},
        "run": {"eval_every": 10**9},
    })
    session = TrainingSession(config)
    session.step(100)  # away from the initialization
    assert session.x_train.shape[0] == POINTS, session.x_train.shape
    return session


class NumpyLandscape:
    """The same grid in plain numpy: one forward pass per grid point."""

    def __init__(self, session: TrainingSession, d1: np.ndarray, d2: np.ndarray):
        self.model = session.model
        self.x, self.y = session.x_train, session.y_train
        self.center = session.model.theta.copy()
        self.d1, self.d2 = d1, d2
        self.theta = np.empty_like(self.center)
        m = self.model
        self.z = [np.empty((self.x.shape[0], m.weights(l).shape[1])) for l in range(m.n_layers)]
        self.mask = m.weight_mask()

    def loss(self, alpha: float, beta: float) -> float:
        m, theta = self.model, self.theta
        np.multiply(self.d1, alpha, out=theta)
        theta += self.center
        theta += beta * self.d2
        h = self.x
        for l in range(m.n_layers):
            z = self.z[l]
            np.matmul(h, m.weights(l, theta), out=z)
            z += m.biases(l, theta)
            if l < m.n_layers - 1:
                np.tanh(z, out=z)
            h = z
        mx = h.max(axis=1, keepdims=True)
        lse = mx + np.log(np.exp(h - mx).sum(axis=1, keepdims=True))  # (n, 1)
        data = float(np.sum(self.y * (lse - h))) / h.shape[0]
        w = theta[self.mask]
        return data + 0.5 * L2 * float(w @ w)

    def grid(self, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        return np.array([[self.loss(a, b) for a in alphas] for b in betas])


def blas_limited(n: int | None):
    import scipy.linalg.cython_blas  # noqa: F401  (so that scipy's OpenBLAS is limited too)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n, user_api="blas")


def other_cpu_share(start: tuple[float, float, float] | None) -> float:
    """Share of the machine's CPU time other processes used since `start` (Linux)."""
    end = cpu_sample()
    if start is None or end is None:
        return math.nan
    wall = (end[0] - start[0]) * (os.cpu_count() or 1)
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / wall)


def cpu_sample() -> tuple[float, float, float] | None:
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def bench(rounds: int) -> dict:
    session = make_session()
    model, theta = session.model, session.model.theta.copy()
    d1, d2 = random_directions(model, theta, np.random.default_rng(0))
    axis = np.linspace(-1.0, 1.0, GRID)
    ref = NumpyLandscape(session, d1, d2)

    def engine_grid() -> np.ndarray:
        return slice_2d(model, theta, session.x_train, session.y_train, d1, d2, axis, axis, L2)

    grid = engine_grid()  # also loads or compiles the kernels
    sub = np.arange(0, GRID, GRID // 4)  # 5 x 5 points
    expected = ref.grid(axis[sub], axis[sub])
    diff = float(np.max(np.abs(grid[np.ix_(sub, sub)] - expected) / np.abs(expected)))
    verdict = "ok" if diff <= CHECK_TOLERANCE else "MISMATCH"
    print(f"engine vs numpy on a 5 x 5 sub-grid: max relative difference {diff:.1e} "
          f"({verdict}); loss {grid.min():.3f} .. {grid.max():.3f}", flush=True)

    def numpy_1t() -> None:
        with blas_limited(1):
            ref.grid(axis, axis)

    runs = {"engine": engine_grid, "numpy": lambda: ref.grid(axis, axis), "numpy-1t": numpy_1t}
    times: dict[str, list[float]] = {key: [] for key in runs}
    start = cpu_sample()
    order = list(runs)
    for r in range(rounds):
        for key in order if r % 2 == 0 else reversed(order):
            t = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - t)
            print(f"  round {r + 1}: {key:<9}{times[key][-1]:7.2f} s", flush=True)
    med = {key: statistics.median(v) for key, v in times.items()}
    numpy_best = min(med["numpy"], med["numpy-1t"])
    return {
        "seconds": med["engine"],
        "ratio_vs_numpy": numpy_best / med["engine"],
        "numpy_seconds": med["numpy"],
        "numpy_1thread_seconds": med["numpy-1t"],
        "engine_range": [min(times["engine"]), max(times["engine"])],
        "grid": GRID,
        "points": POINTS,
        "network": f"{DEPTH}x{WIDTH} tanh",
        "target": TARGET,
        "check_max_rel_diff": diff,
        "other_cpu_share": other_cpu_share(start),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per side")
    parser.add_argument("--json", metavar="FILE",
                        help='write {"landscape_41": {"seconds", "ratio_vs_numpy", ...}}')
    args = parser.parse_args(argv)

    import numba

    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, {os.cpu_count()} CPUs, {numba.get_num_threads()} numba "
          f"threads ({numba.config.THREADING_LAYER} threading layer requested)")
    print(f"{GRID} x {GRID} grid, {POINTS} points, {DEPTH} x {WIDTH} tanh, softmax CE + L2 "
          f"{L2:g}; {args.rounds} interleaved rounds")
    result = bench(args.rounds)
    verdict = "PASS" if result["ratio_vs_numpy"] >= TARGET else "FAIL"
    print(f"\nlandscape_41: engine {result['seconds']:.2f} s "
          f"(range {result['engine_range'][0]:.2f}-{result['engine_range'][1]:.2f}), numpy "
          f"{result['numpy_seconds']:.2f} s, numpy with 1 BLAS thread "
          f"{result['numpy_1thread_seconds']:.2f} s")
    print(f"ratio vs the faster numpy: {result['ratio_vs_numpy']:.2f}, target >= {TARGET}: "
          f"{verdict}; other processes used {result['other_cpu_share']:.0%} of the CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps({"landscape_41": result}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
