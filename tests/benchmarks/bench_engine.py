"""Benchmark: the engine's training step against the same step in plain numpy, and warm start.

Each case trains a tanh MLP with SGD + momentum and softmax cross-entropy (float64) on the
spiral data, and times three things in the same process, interleaved round by round:

- engine   ``session._run_chunk(n)``: the jitted multi-step kernel (batch gather, forward,
           loss, backward, per-layer gradient norms, update, weight norms, update ratios),
           i.e. what a training step costs;
- step()   ``session.step(n)`` with evaluation switched off (information only: adds the
           checkpoint copy and the history append per chunk);
- numpy    the same step written in plain numpy, same shapes, same data, same outputs.

Before timing, one engine step and one numpy step from the same parameters on the same batch
are compared (loss, parameters, velocity and every per-layer statistic), so the two sides do
the same work. Then a fresh interpreter is timed from its first statement to the end of the
first training step, with numba's cache filled.

Run from the repository root::

    python tests/benchmarks/bench_engine.py
    python tests/benchmarks/bench_engine.py --cases tiny,small --json out.json
    python tests/benchmarks/bench_engine.py --blas-threads 1   # both OpenBLAS pools pinned

A measurement, not a test: it always exits 0. The ratio is engine / numpy steps per second
(median over rounds of each); PASS/FAIL compares it with the targets from the issue. The
"others" column is the CPU share other processes used meanwhile: on a shared 2-core machine
multi-threaded OpenBLAS slows down by 10-100x when another process is busy, so figures with
a high share are flagged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.config import ExperimentConfig  # noqa: E402  (after the path is set)
from engine.session import CHUNK, TrainingSession  # noqa: E402

LEARNING_RATE = 0.01
MOMENTUM = 0.9
CHECK_TOLERANCE = 1e-10  # relative, normwise, engine vs numpy after one step
CALL_SECONDS = 0.05  # aim for engine calls of about this long (at most CHUNK steps)
WARM_START_TARGET = 0.6  # seconds from the first statement to the end of the first step
BUSY_WARNING = 0.10  # flag figures taken while other processes used more of the CPUs


@dataclass(frozen=True)
class Case:
    depth: int  # hidden layers
    width: int
    batch: int
    target: float  # minimum engine / numpy ratio


CASES = {
    "tiny": Case(4, 8, 32, 6.0),
    "small": Case(8, 32, 64, 1.6),
    "medium": Case(20, 64, 128, 1.05),
    "larger": Case(10, 256, 256, 0.95),
}


def make_config(case: Case) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "name": "bench",
        "data": {"dataset": "spiral", "n_samples": max(1000, 4 * case.batch)},
        "network": {"hidden_layers": case.depth, "width": case.width, "activation": "tanh",
                    "loss": "softmax_ce"},
        "optimizer": {"name": "momentum", "learning_rate": LEARNING_RATE,
                      "momentum": MOMENTUM},
        "run": {"batch_size": case.batch, "eval_every": 10**9},
    })


# -- the numpy reference ------------------------------------------------------------------
class NumpyTrainer:
    """The engine's step in plain numpy: per-layer arrays, buffers allocated once.

    Momentum in PyTorch's convention (v = mu v + g; theta -= lr v). Records per step what the
    engine records: loss, per-layer gradient norms of weights and biases, weight norms after
    the update, and update / weight ratios (norm of the change of W and b over |W| before).
    """

    def __init__(self, session: TrainingSession, seed: int = 1):
        model, opt = session.model, session.optimizer
        self.n_layers = model.n_layers
        self.x_all, self.y_all = session.x_train, session.y_train
        self.batch = session.batch_size
        self.lr, self.mu = LEARNING_RATE, MOMENTUM
        layers = range(self.n_layers)
        self.w = [model.weights(l).copy() for l in layers]  # (n_in, n_out)
        self.b = [model.biases(l).copy() for l in layers]  # (n_out,)
        self.vw = [model.weights(l, opt.s1).copy() for l in layers]
        self.vb = [model.biases(l, opt.s1).copy() for l in layers]
        self.gw = [np.empty_like(w) for w in self.w]
        self.gb = [np.empty_like(b) for b in self.b]
        self.dw = [np.empty_like(w) for w in self.w]  # the update, -lr * v
        self.db = [np.empty_like(b) for b in self.b]
        rows = self.batch
        self.xb = np.empty((rows, self.x_all.shape[1]))
        self.yb = np.empty((rows, self.y_all.shape[1]))
        self.a = [np.empty((rows, w.shape[1])) for w in self.w]  # tanh outputs; logits last
        self.g = [np.empty((rows, w.shape[0])) for w in self.w]  # dL/d(layer input)
        self.tmp = [np.empty((rows, w.shape[0])) for w in self.w]
        self.rng = np.random.default_rng(seed)
        self.perm = np.zeros(0, dtype=np.int64)
        self.pos = 0

    def params(self) -> np.ndarray:
        """theta in the engine's layout (without batch norm): [W0, b0, W1, b1, ...]."""
        return np.concatenate([p.ravel() for wb in zip(self.w, self.b, strict=True) for p in wb])

    def velocity(self) -> np.ndarray:
        return np.concatenate([p.ravel() for wb in zip(self.vw, self.vb, strict=True) for p in wb])

    def batches(self, n_steps: int) -> np.ndarray:
        """(n_steps, batch) row indices from a stream of epoch permutations."""
        n_train = self.x_all.shape[0]
        need, parts = n_steps * self.batch, []
        while need > 0:
            if self.pos >= self.perm.size:
                self.perm = self.rng.permutation(n_train)
                self.pos = 0
            take = min(need, self.perm.size - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return np.concatenate(parts).reshape(n_steps, self.batch)

    def run_chunk(self, n_steps: int) -> tuple[int, dict[str, np.ndarray]]:
        """n_steps steps on fresh batches; (steps done, recorded statistics)."""
        batches = self.batches(n_steps)
        out = {"loss": np.zeros(n_steps), "gnorm": np.zeros(n_steps)}
        for key in ("gw", "gb", "wn", "ur"):
            out[key] = np.zeros((n_steps, self.n_layers))
        for s in range(n_steps):
            if not self.step(batches[s], out, s):
                return s, out
        return n_steps, out

    def step(self, idx: np.ndarray, out: dict[str, np.ndarray], s: int) -> bool:
        """One step on rows idx; False (and nothing updated) if loss or gradient is not
        finite."""
        x = np.take(self.x_all, idx, axis=0, out=self.xb)
        y = np.take(self.y_all, idx, axis=0, out=self.yb)
        loss = self._forward_backward(x, y)
        gw_norm = [math.sqrt(np.vdot(g, g)) for g in self.gw]
        gb_norm = [math.sqrt(np.vdot(g, g)) for g in self.gb]
        total = math.sqrt(sum(a * a + b * b for a, b in zip(gw_norm, gb_norm, strict=True)))
        if not (math.isfinite(loss) and math.isfinite(total)):
            return False
        out["loss"][s], out["gnorm"][s] = loss, total
        out["gw"][s], out["gb"][s] = gw_norm, gb_norm
        for l in range(self.n_layers):
            w, b, vw, vb, dw, db = self.w[l], self.b[l], self.vw[l], self.vb[l], \
                self.dw[l], self.db[l]
            w_norm = math.sqrt(np.vdot(w, w))
            vw *= self.mu
            vw += self.gw[l]
            vb *= self.mu
            vb += self.gb[l]
            np.multiply(vw, -self.lr, out=dw)
            np.multiply(vb, -self.lr, out=db)
            w += dw
            b += db
            change = math.sqrt(np.vdot(dw, dw) + np.vdot(db, db))
            out["wn"][s, l] = math.sqrt(np.vdot(w, w))
            out["ur"][s, l] = change / w_norm if w_norm > 0.0 else change
        return True

    def _forward_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean softmax cross-entropy of the batch; gradients into self.gw, self.gb."""
        h = x
        for w, b, a in zip(self.w, self.b, self.a, strict=True):
            np.matmul(h, w, out=a)
            a += b
            h = a
            if a is not self.a[-1]:
                np.tanh(a, out=a)
        u = self.a[-1]  # (batch, k) logits
        m = u.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(u - m).sum(axis=1, keepdims=True))  # (batch, 1)
        loss = float(np.sum(y * (lse - u))) / x.shape[0]
        d = np.exp(u - lse)  # softmax
        d -= y
        d /= x.shape[0]  # dL/d(logits)
        for l in range(self.n_layers - 1, -1, -1):
            h_prev = x if l == 0 else self.a[l - 1]
            np.matmul(h_prev.T, d, out=self.gw[l])
            np.sum(d, axis=0, out=self.gb[l])
            if l == 0:
                break
            g, t = self.g[l], self.tmp[l]
            np.matmul(d, self.w[l].T, out=g)
            np.multiply(h_prev, h_prev, out=t)  # tanh' = 1 - a^2
            np.subtract(1.0, t, out=t)
            g *= t
            d = g
        return loss


# -- same work on both sides ----------------------------------------------------------------
def check_same_step(session: TrainingSession, ref: NumpyTrainer) -> float:
    """One engine step and one numpy step from the same state on the same batch; the
    largest normwise relative difference over loss, parameters, velocity and statistics."""
    checkpoint = session._checkpoint()
    idx = session._batches(1)[0]
    session._restore(checkpoint)  # the chunk below draws the same batch again
    done, out = session._run_chunk(1)
    ref_out = {"loss": np.zeros(1), "gnorm": np.zeros(1)}
    for key in ("gw", "gb", "wn", "ur"):
        ref_out[key] = np.zeros((1, ref.n_layers))
    ok = ref.step(idx, ref_out, 0)
    if done != 1 or not ok:
        return math.inf
    pairs = [
        (out.loss, ref_out["loss"]), (out.gnorm, ref_out["gnorm"]),
        (out.gw, ref_out["gw"]), (out.gb, ref_out["gb"]), (out.wn, ref_out["wn"]),
        (out.ur, ref_out["ur"]),
        (session.model.theta, ref.params()), (session.optimizer.s1, ref.velocity()),
    ]
    worst = 0.0
    for engine_value, numpy_value in pairs:
        scale = max(float(np.max(np.abs(numpy_value))), 1e-300)
        worst = max(worst, float(np.max(np.abs(engine_value - numpy_value))) / scale)
    return worst


# -- timing ---------------------------------------------------------------------------------
def steps_per_second(run, steps_per_call: int, min_seconds: float) -> float:
    """Calls run() (which does steps_per_call steps and returns how many it did) until
    min_seconds have passed; steps per second."""
    steps = 0
    start = time.perf_counter()
    while True:
        done = run()
        if done != steps_per_call:
            raise RuntimeError(f"training stopped after {done} of {steps_per_call} steps "
                               "(diverged?); lower LEARNING_RATE")
        steps += done
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return steps / elapsed


class OtherLoad:
    """Share of the machine's CPU time that other processes used since creation (Linux).

    On a shared 2-core machine a busy neighbour slows multi-threaded BLAS most, so a case
    measured while others were busy is flagged rather than trusted.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle/iowait
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.perf_counter(), busy, own

    def share(self) -> float:
        end = self._sample()
        if self.start is None or end is None:
            return math.nan
        wall = (end[0] - self.start[0]) * (os.cpu_count() or 1)
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, others / wall) if wall > 0 else math.nan


def bench_case(name: str, case: Case, rounds: int, min_seconds: float) -> dict:
    session = TrainingSession(make_config(case))
    ref = NumpyTrainer(session)
    diff = check_same_step(session, ref)
    verdict = "ok" if diff <= CHECK_TOLERANCE else "MISMATCH"
    print(f"  {name}: engine vs numpy after one step, max relative difference "
          f"{diff:.1e} ({verdict})", flush=True)

    session._run_chunk(min(8, CHUNK))  # warm-up (loads or compiles the kernels)
    t = time.perf_counter()
    session._run_chunk(8)
    per_step = (time.perf_counter() - t) / 8
    n = max(1, min(CHUNK, round(CALL_SECONDS / per_step)))
    ref.run_chunk(2)
    session.step(n)

    def run_step() -> int:
        start = session.step_count
        return session.step(n).step - start

    runs = {
        "engine": lambda: session._run_chunk(n)[0],
        "numpy": lambda: ref.run_chunk(n)[0],
        "step": run_step,
    }
    load = OtherLoad()
    results: dict[str, list[float]] = {key: [] for key in runs}
    order = list(runs)
    for r in range(rounds):
        for key in order if r % 2 == 0 else reversed(order):  # ABC CBA: cancels drift
            results[key].append(steps_per_second(runs[key], n, min_seconds))
    med = {key: statistics.median(v) for key, v in results.items()}
    paired = [e / p for e, p in zip(results["engine"], results["numpy"], strict=True)]
    return {
        "steps_per_s": med["engine"],
        "ratio_vs_numpy": med["engine"] / med["numpy"],
        "numpy_steps_per_s": med["numpy"],
        "session_step_per_s": med["step"],
        "ratio_range": [min(paired), max(paired)],
        "steps_per_call": n,
        "target": case.target,
        "check_max_rel_diff": diff,
        "other_cpu_share": load.share(),
    }


# -- warm start ---------------------------------------------------------------------------
WARM_START_CODE = """\
import time
t0 = time.perf_counter()
import engine
t1 = time.perf_counter()
config = engine.ExperimentConfig.from_dict({"optimizer": {"name": "momentum"}})
session = engine.TrainingSession(config)
t2 = time.perf_counter()
session.step(1)
t3 = time.perf_counter()
import json
print(json.dumps({"total": t3 - t0, "import": t1 - t0, "build": t2 - t1, "step": t3 - t2}))
"""
IMPORT_NUMBA_CODE = """\
import time
t0 = time.perf_counter()
import numpy, numba
print(time.perf_counter() - t0)
"""


def _run_python(code: str) -> tuple[float, str]:
    """(wall seconds of a fresh interpreter running code, its stdout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stdout


def bench_warm_start(repeats: int) -> dict:
    _run_python(WARM_START_CODE)  # fills numba's cache if it is empty or stale
    load = OtherLoad()
    inside, walls = [], []
    parts: dict[str, list[float]] = {"import": [], "build": [], "step": []}
    for _ in range(repeats):
        wall, text = _run_python(WARM_START_CODE)
        row = json.loads(text)
        inside.append(row["total"])
        walls.append(wall)
        for key in parts:
            parts[key].append(row[key])
    bare = [_run_python("pass")[0] for _ in range(repeats)]
    numba_import = [float(_run_python(IMPORT_NUMBA_CODE)[1]) for _ in range(repeats)]
    return {
        "seconds": statistics.median(inside),
        "min": min(inside),
        "wall": statistics.median(walls),
        "parts": {key: statistics.median(v) for key, v in parts.items()},
        "interpreter": statistics.median(bare),
        "import_numpy_numba": statistics.median(numba_import),
        "other_cpu_share": load.share(),
    }


# -- report ---------------------------------------------------------------------------------
def blas_description() -> str:
    try:
        import scipy.linalg  # noqa: F401  (numba's np.dot calls scipy's BLAS)
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    libs = [f"{i['internal_api']} {i['version']} ({Path(i['filepath']).name.split('-')[0]}, "
            f"{i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas"]
    return "BLAS: " + "; ".join(libs)


def limit_blas_threads(n: int) -> None:
    import scipy.linalg.cython_blas  # noqa: F401  (load scipy's OpenBLAS so it is limited too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")


def print_table(results: dict[str, dict]) -> None:
    head = (f"{'case':<8}{'(depth,width,batch)':>21}{'engine/s':>11}{'numpy/s':>10}"
            f"{'ratio':>7}{'(range)':>14}{'target':>8}  {'':4}{'step()/s':>10}{'others':>8}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        c = CASES[name]
        shape = f"({c.depth},{c.width},{c.batch})"
        verdict = "PASS" if r["ratio_vs_numpy"] >= c.target else "FAIL"
        lo, hi = r["ratio_range"]
        print(f"{name:<8}{shape:>21}{r['steps_per_s']:>11.1f}{r['numpy_steps_per_s']:>10.1f}"
              f"{r['ratio_vs_numpy']:>7.2f}{f'({lo:.2f}-{hi:.2f})':>14}{'>=' + str(c.target):>8}"
              f"  {verdict:4}{r['session_step_per_s']:>10.1f}{r['other_cpu_share']:>8.0%}")
    print("engine = session._run_chunk (the jitted step kernel); step() = session.step with "
          "evaluation off (information);\nrange = per-round engine/numpy ratios; others = CPU "
          "share used by other processes meanwhile")
    if any(r["other_cpu_share"] > BUSY_WARNING for r in results.values()):
        print(f"WARNING: other processes used > {BUSY_WARNING:.0%} of the CPUs during some "
              "cases; their figures are unreliable (rerun on an idle machine)")


def print_warm_start(w: dict) -> None:
    verdict = "PASS" if w["seconds"] <= WARM_START_TARGET else "FAIL"
    p = w["parts"]
    print(f"warm start, first statement to end of first step: {w['seconds']:.3f} s median "
          f"(min {w['min']:.3f}), target <= {WARM_START_TARGET} s: {verdict}")
    print(f"  import engine {p['import']:.3f} s, build session {p['build']:.3f} s, "
          f"first step {p['step']:.3f} s")
    print(f"  whole process (wall, incl. interpreter): {w['wall']:.3f} s; "
          f"'python -c pass' alone: {w['interpreter']:.3f} s; "
          f"'import numpy, numba' alone: {w['import_numpy_numba']:.3f} s")
    print(f"  other processes used {w['other_cpu_share']:.0%} of the CPUs meanwhile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--json", metavar="FILE", help="write {case: {steps_per_s, "
                        "ratio_vs_numpy, ...}} to FILE")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds per side")
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum seconds per round")
    parser.add_argument("--warm-repeats", type=int, default=5)
    parser.add_argument("--no-warm-start", action="store_true")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="limit both OpenBLAS pools (numpy's, scipy's) to N threads "
                        "(needs threadpoolctl)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")

    import numba

    if args.blas_threads:
        limit_blas_threads(args.blas_threads)
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, {os.cpu_count()} CPUs; {blas_description()}")
    print(f"{args.rounds} interleaved rounds of >= {args.seconds} s per side; float64, tanh, "
          f"softmax CE, momentum {MOMENTUM}, lr {LEARNING_RATE}")
    results = {name: bench_case(name, CASES[name], args.rounds, args.seconds) for name in names}
    print()
    print_table(results)
    if not args.no_warm_start:
        print()
        print_warm_start(bench_warm_start(args.warm_repeats))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
