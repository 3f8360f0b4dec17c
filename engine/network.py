"""The MLP: parameter layout in one flat vector, and forward/backward kernels.

All parameters live in one float64 vector `theta`; layer l owns the contiguous range
[W (n_in*n_out), b (n_out), gamma (n_out), beta (n_out)] (gamma/beta with batch norm only),
so optimizers, clipping and loss landscapes work on one vector. `layout` is an int64 table
with one row per layer (columns below) that the kernels read instead of lists of arrays.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from engine._jit import kernel
from engine.activations import ACTIVATIONS, activate, multiply_derivative

# layout columns
N_IN, N_OUT, W_OFF, B_OFF, G_OFF, BE_OFF, ACT, RESID, A_OFF, P_END = range(10)
LAYOUT_COLUMNS = 10

# Arrays the kernels share. Work buffers are flat; a layer's block of a buffer starts at
# cap * layout[l, A_OFF] and holds (rows, n_out) values, so any batch up to `cap` fits.
Net = namedtuple("Net", "theta grad layout run_mean run_var bn_momentum bn_eps loss_code out_act")
Work = namedtuple("Work", "cap xb yb z zn a h du g1 g2 bn_invstd")


def build_layout(
    n_inputs: int,
    n_outputs: int,
    widths: list[int],
    activation_codes: list[int],
    batch_norm: bool,
    residual: bool,
    output_code: int,
) -> tuple[np.ndarray, int]:
    """Layout table (n_layers, LAYOUT_COLUMNS) and the parameter count."""
    sizes = [n_inputs, *widths, n_outputs]
    n_layers = len(sizes) - 1
    layout = np.zeros((n_layers, LAYOUT_COLUMNS), dtype=np.int64)
    off = 0
    act_off = 0
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        hidden = l < n_layers - 1
        row = layout[l]
        row[N_IN], row[N_OUT] = n_in, n_out
        row[W_OFF] = off
        off += n_in * n_out
        row[B_OFF] = off
        off += n_out
        if batch_norm and hidden:
            row[G_OFF] = off
            row[BE_OFF] = off + n_out
            off += 2 * n_out
        else:
            row[G_OFF] = row[BE_OFF] = -1
        row[ACT] = activation_codes[l] if hidden else output_code
        row[RESID] = int(residual and hidden and n_in == n_out)
        row[A_OFF] = act_off
        act_off += n_out
        row[P_END] = off
    return layout, off


def make_work(layout: np.ndarray, n_inputs: int, cap: int) -> Work:
    """Preallocated buffers for batches of up to `cap` rows (allocated once, reused)."""
    total = int(layout[:, N_OUT].sum())
    widest = int(max(layout[:, N_OUT].max(), layout[:, N_IN].max()))
    k = int(layout[-1, N_OUT])
    return Work(
        cap,
        np.zeros(cap * n_inputs),
        np.zeros(cap * k),
        np.zeros(cap * total),
        np.zeros(cap * total),
        np.zeros(cap * total),
        np.zeros(cap * total),
        np.zeros(cap * widest),
        np.zeros(cap * widest),
        np.zeros(cap * widest),
        np.zeros(total),
    )


@kernel
def block(buf, cap, layout, l, rows):
    """Layer l's (rows, n_out) block of a flat work buffer."""
    start = cap * layout[l, A_OFF]
    n_out = layout[l, N_OUT]
    return buf[start : start + rows * n_out].reshape((rows, n_out))


@kernel
def layer_output(work, layout, l, rows):
    """The output of hidden layer l, i.e. the input of layer l + 1: (rows, n_out)."""
    if layout[l, RESID]:
        return block(work.h, work.cap, layout, l, rows)
    return block(work.a, work.cap, layout, l, rows)


@kernel
def weights(theta, layout, l):
    """W of layer l as a (n_in, n_out) view into theta."""
    n_in, n_out, off = layout[l, N_IN], layout[l, N_OUT], layout[l, W_OFF]
    return theta[off : off + n_in * n_out].reshape((n_in, n_out))


@kernel
def forward(net, work, x, training, update_running):
    """Forward pass of x: (rows, n_inputs), rows <= work.cap; leaves the logits in z.

    Batch norm uses the batch statistics when `training`, else the running ones; the
    running statistics are updated only if `update_running`.
    """
    layout = net.layout
    theta = net.theta
    rows = x.shape[0]
    n_layers = layout.shape[0]
    h = x
    for l in range(n_layers):
        n_out = layout[l, N_OUT]
        z = block(work.z, work.cap, layout, l, rows)
        np.dot(h, weights(theta, layout, l), z)
        b_off = layout[l, B_OFF]
        for i in range(rows):
            for j in range(n_out):
                z[i, j] += theta[b_off + j]
        g_off = layout[l, G_OFF]
        if g_off >= 0:
            _batch_norm_forward(net, work, l, z, rows, training, update_running)
        if l == n_layers - 1:
            break
        a = block(work.a, work.cap, layout, l, rows)
        activate(layout[l, ACT], z.ravel(), a.ravel())
        if layout[l, RESID]:
            out = block(work.h, work.cap, layout, l, rows)
            for i in range(rows):
                for j in range(n_out):
                    out[i, j] = a[i, j] + h[i, j]
            h = out
        else:
            h = a


@kernel
def _batch_norm_forward(net, work, l, z, rows, training, update_running):
    layout = net.layout
    theta = net.theta
    n_out = layout[l, N_OUT]
    s0 = layout[l, A_OFF]
    g_off, be_off = layout[l, G_OFF], layout[l, BE_OFF]
    zn = block(work.zn, work.cap, layout, l, rows)
    m = net.bn_momentum
    for j in range(n_out):
        if training:
            mu = 0.0
            for i in range(rows):
                mu += z[i, j]
            mu /= rows
            var = 0.0
            for i in range(rows):
                d = z[i, j] - mu
                var += d * d
            var /= rows
            if update_running:
                unbiased = var * rows / (rows - 1) if rows > 1 else var
                net.run_mean[s0 + j] = (1.0 - m) * net.run_mean[s0 + j] + m * mu
                net.run_var[s0 + j] = (1.0 - m) * net.run_var[s0 + j] + m * unbiased
        else:
            mu = net.run_mean[s0 + j]
            var = net.run_var[s0 + j]
        inv = 1.0 / np.sqrt(var + net.bn_eps)
        work.bn_invstd[s0 + j] = inv
        gamma, beta = theta[g_off + j], theta[be_off + j]
        for i in range(rows):
            zh = (z[i, j] - mu) * inv
            zn[i, j] = zh
            z[i, j] = gamma * zh + beta


@kernel
def backward(net, work, x, du):
    """Gradients of the loss into net.grad, given du = dL/d(logits): (rows, n_outputs).

    Needs the buffers of a training-mode forward pass of the same x.
    """
    layout = net.layout
    theta = net.theta
    grad = net.grad
    rows = x.shape[0]
    n_layers = layout.shape[0]
    d = du
    g_out = du  # dL/d(output of the current layer); only its shape matters at the top
    for l in range(n_layers - 1, -1, -1):
        n_in, n_out = layout[l, N_IN], layout[l, N_OUT]
        if l < n_layers - 1:
            # d = dL/du = dL/d(out) * f'(u); the residual branch keeps g_out itself
            d = work.du[: rows * n_out].reshape((rows, n_out))
            d[:, :] = g_out
            a = block(work.a, work.cap, layout, l, rows)
            multiply_derivative(layout[l, ACT], a.ravel(), d.ravel())
            if layout[l, G_OFF] >= 0:
                _batch_norm_backward(net, work, l, d, rows)
        h_prev = x if l == 0 else layer_output(work, layout, l - 1, rows)
        gw = weights(grad, layout, l)
        np.dot(h_prev.T, d, gw)
        b_off = layout[l, B_OFF]
        for j in range(n_out):
            grad[b_off + j] = 0.0
        for i in range(rows):
            for j in range(n_out):
                grad[b_off + j] += d[i, j]
        if l == 0:
            break
        buf = work.g1 if (l % 2) == 0 else work.g2
        g_in = buf[: rows * n_in].reshape((rows, n_in))
        np.dot(d, weights(theta, layout, l).T, g_in)
        if layout[l, RESID]:
            for i in range(rows):
                for j in range(n_out):
                    g_in[i, j] += g_out[i, j]
        g_out = g_in


@kernel
def _batch_norm_backward(net, work, l, d, rows):
    """d: dL/du on entry (u = gamma * zhat + beta), dL/dz on exit; also dgamma, dbeta."""
    layout = net.layout
    n_out = layout[l, N_OUT]
    s0 = layout[l, A_OFF]
    g_off, be_off = layout[l, G_OFF], layout[l, BE_OFF]
    zn = block(work.zn, work.cap, layout, l, rows)
    for j in range(n_out):
        dgamma = 0.0
        dbeta = 0.0
        for i in range(rows):
            dgamma += d[i, j] * zn[i, j]
            dbeta += d[i, j]
        net.grad[g_off + j] = dgamma
        net.grad[be_off + j] = dbeta
        c = net.theta[g_off + j] * work.bn_invstd[s0 + j] / rows
        for i in range(rows):
            d[i, j] = c * (rows * d[i, j] - dbeta - zn[i, j] * dgamma)


def activation_codes(names: list[str]) -> list[int]:
    return [ACTIVATIONS[n].code for n in names]
