"""Loss-landscape kernels: the loss at many parameter vectors, evaluated in parallel.

Each point is θ = basis[0] + c0·basis[1] + c1·basis[2] (a grid row of a 2-D slice, or a
1-D path); the loss is the evaluation-mode objective on a whole set. Threads split the
points statically (thread t takes points t, t + T, ...) and each owns its parameter vector
and work buffers, so the result of a point never depends on the thread count.

The forward pass is network.forward (np.dot → BLAS). OpenBLAS called from inside a prange
region while it runs its own threads warns "Detect OpenMP Loop and this application may
hang" and was measured ~20x slower, so `parallel_region()` pins BLAS to one thread with
threadpoolctl while a kernel runs (measured 1.5x faster than plain-loop matmuls inside
prange, see tests/benchmarks/bench_landscape.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import prange

from engine._jit import OPTIONS, kernel
from engine.losses import output_loss
from engine.network import B_OFF, N_OUT, W_OFF, Net, Work, block, forward, make_work
from engine.trainer import Opt, loss_and_grad

BUFFER_BYTES = 16 * 2**20  # per thread: the forward buffers of one block of rows
MAX_BLOCK = 2048  # rows per forward pass (as Model.evaluate)

PARALLEL_OPTIONS = {**OPTIONS, "parallel": True}


def parallel_kernel(func):
    """engine._jit.kernel with prange loops spread over numba's threads."""
    return numba.njit(**PARALLEL_OPTIONS)(func)


@kernel
def objective(net, work, x, y, l2):
    """Mean data loss of all rows of x in evaluation mode, plus l2/2·Σ W².

    x: (n, n_inputs), y: (n, n_outputs) encoded targets; works in blocks of work.cap rows.
    """
    layout = net.layout
    last = layout.shape[0] - 1
    n, cap = x.shape[0], work.cap
    no_grad = np.zeros((0, 0))
    total = 0.0
    for start in range(0, n, cap):
        stop = min(start + cap, n)
        rows = stop - start
        forward(net, work, x[start:stop], False, False)
        u = block(work.z, cap, layout, last, rows)
        a = block(work.a, cap, layout, last, rows)
        total += rows * output_loss(net.loss_code, net.out_act, u, a, y[start:stop], no_grad)
    loss = total / n
    if l2 > 0.0:
        theta = net.theta
        penalty = 0.0
        for l in range(layout.shape[0]):
            for i in range(layout[l, W_OFF], layout[l, B_OFF]):
                penalty += theta[i] * theta[i]
        loss += 0.5 * l2 * penalty
    return loss


@parallel_kernel
def losses_at(net, basis, coef, x, y, l2, thetas, works, out):
    """out[p] = objective at basis[0] + coef[p, 0]·basis[1] + coef[p, 1]·basis[2].

    net: the model's Net (its theta and grad are not used); basis: (3, n_params);
    coef: (n_points, 2); thetas: (n_threads, n_params) scratch; works: a Work whose arrays
    have a leading (n_threads,) axis; out: (n_points,).
    """
    n_threads = thetas.shape[0]
    n_params = basis.shape[1]
    for t in prange(n_threads):
        theta = thetas[t]
        net_t = Net(theta, theta, net.layout, net.run_mean, net.run_var, net.bn_momentum,
                    net.bn_eps, net.loss_code, net.out_act)  # forward never writes grad
        work = Work(works.cap, works.xb[t], works.yb[t], works.z[t], works.zn[t], works.a[t],
                    works.h[t], works.du[t], works.g1[t], works.g2[t], works.bn_invstd[t])
        for p in range(t, coef.shape[0], n_threads):
            c0, c1 = coef[p, 0], coef[p, 1]
            for i in range(n_params):
                theta[i] = basis[0, i] + c0 * basis[1, i] + c1 * basis[2, i]
            out[p] = objective(net_t, work, x, y, l2)


def block_rows(model, n_rows: int) -> int:
    """Rows per forward pass so that one thread's buffers stay within BUFFER_BYTES."""
    per_row = 8 * 4 * int(model.layout[:, N_OUT].sum())  # z, zn, a, h
    return int(max(1, min(n_rows, MAX_BLOCK, max(64, BUFFER_BYTES // per_row))))


class PointEvaluator:
    """The objective on (x, y) at many points, with buffers for up to `n_threads` threads.

    x: (n, n_inputs) float64; y: (n, n_outputs) encoded targets (as a session's y_train).
    """

    def __init__(self, model, x: np.ndarray, y: np.ndarray, l2: float, max_points: int):
        # copies: a session training on another thread may update the running statistics
        self.net = model.net()._replace(run_mean=model.run_mean.copy(),
                                        run_var=model.run_var.copy())
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.y = np.ascontiguousarray(y, dtype=np.float64)
        self.l2 = float(l2)
        n_threads = max(1, min(numba.get_num_threads(), int(max_points)))
        one = make_work(model.layout, model.n_inputs, block_rows(model, self.x.shape[0]))
        self.works = Work(one.cap, *[np.zeros((n_threads, a.size)) for a in one[1:]])
        self.thetas = np.zeros((n_threads, model.n_params))

    def __call__(self, basis: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Losses (n_points,) at basis[0] + coef[:, 0]·basis[1] + coef[:, 1]·basis[2]."""
        out = np.empty(coef.shape[0])
        with parallel_region():
            losses_at(self.net, basis, np.ascontiguousarray(coef, dtype=np.float64), self.x,
                      self.y, self.l2, self.thetas, self.works, out)
        return out


_LOCK = threading.Lock()
_blas = None


@contextmanager
def parallel_region() -> Iterator[None]:
    """Run one parallel kernel at a time, with BLAS pinned to one thread meanwhile.

    One at a time because numba's workqueue threading layer (used where OpenMP is missing)
    aborts the process on concurrent launches. The pin is process-wide: np.dot on other
    threads runs single-threaded while a landscape kernel runs.
    """
    global _blas
    with _LOCK:
        if _blas is None:
            # numba's np.dot calls scipy's BLAS: load it so that it is pinned too
            import scipy.linalg.cython_blas  # type: ignore[import-untyped]  # noqa: F401
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

            _blas = ThreadpoolController()
        with _blas.limit(limits=1, user_api="blas"):
            yield


def full_batch_gradient(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float
                        ) -> tuple[float, np.ndarray]:
    """(loss, gradient (n_params,)) of the data loss + l2/2·ΣW² over all rows of x.

    Training mode, as the optimizer sees it: with batch norm each block of rows uses its own
    batch statistics. Own buffers: the model's work buffers and running statistics are
    left alone.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    n = x.shape[0]
    rows = block_rows(model, n)
    work = make_work(model.layout, model.n_inputs, rows)
    part = np.zeros(model.n_params)
    grad = np.zeros(model.n_params)
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    net = model.net(theta, part)
    opt = Opt(0, part, part, np.zeros(1, np.int64), np.zeros(6), np.ones(model.n_layers),
              0.0, 0, 1.0)
    loss = 0.0
    for start in range(0, n, rows):
        xb, yb = x[start : start + rows], y[start : start + rows]
        block_loss, _ = loss_and_grad(net, work, opt, xb, yb, False)
        weight = xb.shape[0] / n
        loss += weight * block_loss
        grad += weight * part
    if l2 > 0.0:
        mask = model.weight_mask()
        loss += 0.5 * l2 * float(np.sum(theta[mask] ** 2))
        grad[mask] += l2 * theta[mask]
    return float(loss), grad
