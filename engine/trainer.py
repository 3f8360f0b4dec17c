"""The fused training loop: many minibatch steps in one jitted call, allocating nothing.

Each step: gather the batch, forward, loss (+ L2), backward, per-layer gradient norms,
clip, optimizer update, per-layer weight norms and update/weight ratios. A non-finite loss,
gradient or parameter stops the loop and says at which step, in which layer and what.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from engine._jit import kernel, nonfinite
from engine.clipping import clip
from engine.losses import output_loss
from engine.network import B_OFF, N_IN, N_OUT, P_END, W_OFF, backward, block, forward
from engine.optimizers import update_range

# Divergence kinds (what became non-finite first)
DIV_NONE, DIV_ACTIVATION, DIV_LOSS, DIV_GRADIENT, DIV_PARAMETER = range(5)
DIVERGENCE_WHAT = {
    DIV_ACTIVATION: "activation",
    DIV_LOSS: "loss",
    DIV_GRADIENT: "gradient",
    DIV_PARAMETER: "parameter",
}

Opt = namedtuple("Opt", "code s1 s2 t hyper lr_mult l2 clip_kind clip_threshold")
Out = namedtuple(
    "Out", "loss data_loss lr gnorm gnorm_clipped clipped gw gb wn ur divergence"
)


def make_out(n_steps: int, n_layers: int) -> Out:
    z1 = lambda: np.zeros(n_steps)  # noqa: E731
    z2 = lambda: np.zeros((n_steps, n_layers))  # noqa: E731
    return Out(z1(), z1(), z1(), z1(), z1(), z1(), z2(), z2(), z2(), z2(),
               np.full(3, -1, dtype=np.int64))


@kernel
def gather(src, idx, dst_flat):
    """dst = src[idx] into a flat buffer; returns the (len(idx), n_cols) view."""
    rows, cols = idx.size, src.shape[1]
    dst = dst_flat[: rows * cols].reshape((rows, cols))
    for i in range(rows):
        r = idx[i]
        for j in range(cols):
            dst[i, j] = src[r, j]
    return dst


@kernel
def norm_and_check(v, lo, hi):
    """(L2 norm of v[lo:hi], check) where check is NaN if any entry is NaN or inf.

    The sum of squares overflows for entries above ~1e154; then the norm is recomputed
    scaled by the largest entry, so finite gradients always get a finite norm.
    """
    sq = 0.0
    check = 0.0
    for i in range(lo, hi):
        sq += v[i] * v[i]
        check += v[i] * 0.0
    if check != 0.0 or not nonfinite(sq):
        return math.sqrt(sq), check
    m = 0.0
    for i in range(lo, hi):
        m = max(m, abs(v[i]))
    sq = 0.0
    for i in range(lo, hi):
        r = v[i] / m
        sq += r * r
    return m * math.sqrt(sq), check


@kernel
def first_nonfinite_layer(work, layout, rows):
    """The first layer whose pre-activations contain a NaN or inf, or -1."""
    for l in range(layout.shape[0]):
        z = block(work.z, work.cap, layout, l, rows)
        for i in range(rows):
            for j in range(z.shape[1]):
                if nonfinite(z[i, j]):
                    return l
    return -1


@kernel
def loss_and_grad(net, work, opt, x, y, update_running):
    """Loss (data + L2) and its gradient in net.grad at net.theta for the batch (x, y).

    Returns (total loss, data loss). x: (rows, n_in), y: (rows, n_out), rows <= work.cap.
    """
    layout = net.layout
    rows = x.shape[0]
    forward(net, work, x, True, update_running)
    last = layout.shape[0] - 1
    u = block(work.z, work.cap, layout, last, rows)
    a = block(work.a, work.cap, layout, last, rows)
    du = work.du[: rows * layout[last, N_OUT]].reshape((rows, layout[last, N_OUT]))
    data_loss = output_loss(net.loss_code, net.out_act, u, a, y, du)
    backward(net, work, x, du)
    penalty = 0.0
    if opt.l2 > 0.0:
        theta, grad = net.theta, net.grad
        for l in range(layout.shape[0]):
            lo = layout[l, W_OFF]
            hi = lo + layout[l, N_IN] * layout[l, N_OUT]
            for i in range(lo, hi):
                penalty += theta[i] * theta[i]
                grad[i] += opt.l2 * theta[i]
        penalty *= 0.5 * opt.l2
    return data_loss + penalty, data_loss


@kernel
def train_steps(net, work, opt, x_all, y_all, batches, lrs, bounds, out):
    """Run len(lrs) steps; return how many completed. out.divergence = [step, layer, what].

    batches: (n_steps, batch) row indices into x_all/y_all; lrs: (n_steps,) learning rates;
    bounds: (n_layers + 1,) parameter offsets per layer.
    """
    layout = net.layout
    theta, grad = net.theta, net.grad
    n_layers = layout.shape[0]
    layer_norm = np.zeros(n_layers)  # allocated once per call, not per step
    for s in range(lrs.size):
        idx = batches[s]
        x = gather(x_all, idx, work.xb)
        y = gather(y_all, idx, work.yb)
        loss, data_loss = loss_and_grad(net, work, opt, x, y, True)
        if nonfinite(loss):
            layer = first_nonfinite_layer(work, layout, idx.size)
            out.divergence[0] = s
            out.divergence[1] = layer if layer >= 0 else n_layers - 1
            out.divergence[2] = 1 if layer >= 0 else 2  # DIV_ACTIVATION / DIV_LOSS
            return s
        # per-layer gradient norms, weights and biases (with batch-norm parameters) apart
        total = 0.0
        bad = -1
        for l in range(n_layers - 1, -1, -1):
            w_lo, b_lo, hi = layout[l, W_OFF], layout[l, B_OFF], layout[l, P_END]
            nw, cw = norm_and_check(grad, w_lo, b_lo)
            nb, cb = norm_and_check(grad, b_lo, hi)
            if bad < 0 and (cw != 0.0 or cb != 0.0):
                bad = l
            out.gw[s, l] = nw
            out.gb[s, l] = nb
            layer_norm[l] = math.hypot(nw, nb)
            total = math.hypot(total, layer_norm[l])
        if bad >= 0:
            out.divergence[0] = s
            out.divergence[1] = bad
            out.divergence[2] = 3  # DIV_GRADIENT
            return s
        out.gnorm[s] = total
        changed = clip(opt.clip_kind, opt.clip_threshold, grad, bounds, layer_norm, total)
        out.clipped[s] = 1.0 if changed else 0.0
        if changed:
            total = 0.0
            for l in range(n_layers):
                total = math.hypot(total, norm_and_check(grad, bounds[l], bounds[l + 1])[0])
        out.gnorm_clipped[s] = total
        # optimizer update, layer by layer (per-layer learning-rate multipliers)
        opt.t[0] += 1
        lr = lrs[s]
        for l in range(n_layers):
            w_lo, hi = layout[l, W_OFF], layout[l, P_END]
            w_hi = layout[l, B_OFF]
            wsq = 0.0
            for i in range(w_lo, w_hi):
                wsq += theta[i] * theta[i]
            dsq = update_range(opt.code, theta, grad, opt.s1, opt.s2, w_lo, hi, w_hi,
                               lr * opt.lr_mult[l], opt.hyper, opt.t[0])
            wnew = 0.0
            finite = 0.0
            for i in range(w_lo, hi):
                finite += theta[i] * 0.0  # NaN if any parameter is NaN or inf
            for i in range(w_lo, w_hi):
                wnew += theta[i] * theta[i]
            if finite != 0.0:
                out.divergence[0] = s
                out.divergence[1] = l
                out.divergence[2] = 4  # DIV_PARAMETER
                return s
            out.wn[s, l] = math.sqrt(wnew)
            out.ur[s, l] = math.sqrt(dsq) / math.sqrt(wsq) if wsq > 0.0 else math.sqrt(dsq)
        out.loss[s] = loss
        out.data_loss[s] = data_loss
        out.lr[s] = lr
    return lrs.size
