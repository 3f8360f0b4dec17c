"""A network built from a configuration: parameters, initialization, evaluation, probes.

`Model` owns the flat parameter vector and the work buffers, and wraps the kernels of
network.py and trainer.py with shapes checked once at this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.activations import ACTIVATIONS, LINEAR, SIGMOID, SOFTMAX
from engine.config import ExperimentConfig, NetworkConfig
from engine.initializers import INITIALIZERS, lsuv_scale
from engine.losses import BCE, LOSSES, MSE
from engine.network import (
    A_OFF,
    B_OFF,
    BE_OFF,
    G_OFF,
    N_IN,
    N_OUT,
    P_END,
    RESID,
    W_OFF,
    Net,
    build_layout,
    forward,
    make_work,
)
from engine.network import activation_codes as _codes
from engine.trainer import Opt, loss_and_grad

EVAL_BLOCK = 2048  # rows per forward pass when evaluating a whole set


def output_units(loss: str, task: str, n_classes: int) -> int:
    """How many outputs the network has for this loss and task."""
    if task == "regression":
        return 1
    return 1 if loss == "bce" else n_classes


def encode_targets(loss: str, task: str, n_classes: int, y: np.ndarray) -> np.ndarray:
    """Targets as the (n, n_outputs) float64 array the loss kernel expects."""
    if task == "regression":
        return np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1, 1))
    labels = np.asarray(y, dtype=np.int64)
    if loss == "bce":
        return labels.astype(np.float64).reshape(-1, 1)
    onehot = np.zeros((labels.size, n_classes))
    onehot[np.arange(labels.size), labels] = 1.0
    return onehot


@dataclass(frozen=True)
class LayerInfo:
    index: int
    name: str  # "hidden 1", ..., "output"
    n_in: int
    n_out: int
    activation: str
    batch_norm: bool
    residual: bool


class Model:
    """The MLP of one experiment: layout, parameters, buffers and running statistics."""

    def __init__(self, network: NetworkConfig, n_inputs: int, n_outputs: int, task: str):
        self.config = network
        self.task = task
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        hidden = list(network.hidden_activations())
        loss = LOSSES[network.loss]
        out_name = loss.output_activation if network.output_activation == "auto" else \
            network.output_activation
        self.output_activation = out_name
        out_code = {"softmax": SOFTMAX, "sigmoid": SIGMOID}.get(out_name)
        if out_code is None:
            out_code = ACTIVATIONS[out_name].code
        self.loss_code = loss.code
        self.layout, self.n_params = build_layout(
            n_inputs, n_outputs, [network.width] * network.hidden_layers, _codes(hidden),
            network.batch_norm, network.residual, out_code,
        )
        self.activations = [*hidden, out_name]
        self.n_layers = self.layout.shape[0]
        self.theta = np.zeros(self.n_params)
        self.grad = np.zeros(self.n_params)
        total = int(self.layout[:, N_OUT].sum())
        self.run_mean = np.zeros(total)
        self.run_var = np.ones(total)
        self.bounds = np.append(self.layout[:, W_OFF], self.n_params).astype(np.int64)
        self._works: dict[int, object] = {}

    # -- structure ---------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        out = []
        for l in range(self.n_layers):
            row = self.layout[l]
            name = "output" if l == self.n_layers - 1 else f"hidden {l + 1}"
            out.append(LayerInfo(l, name, int(row[N_IN]), int(row[N_OUT]),
                                 self.activations[l], bool(row[G_OFF] >= 0), bool(row[RESID])))
        return out

    def weights(self, l: int, theta: np.ndarray | None = None) -> np.ndarray:
        """Layer l's weights (n_in, n_out), a view into the parameter vector."""
        theta = self.theta if theta is None else theta
        row = self.layout[l]
        return theta[row[W_OFF] : row[B_OFF]].reshape(row[N_IN], row[N_OUT])

    def biases(self, l: int, theta: np.ndarray | None = None) -> np.ndarray:
        theta = self.theta if theta is None else theta
        row = self.layout[l]
        return theta[row[B_OFF] : row[B_OFF] + row[N_OUT]]

    def bn_params(self, l: int, theta: np.ndarray | None = None):
        """(gamma, beta) views of layer l, or None without batch norm."""
        theta = self.theta if theta is None else theta
        row = self.layout[l]
        if row[G_OFF] < 0:
            return None
        return theta[row[G_OFF] : row[BE_OFF]], theta[row[BE_OFF] : row[P_END]]

    def weight_mask(self) -> np.ndarray:
        """True for the entries of theta that are weights (not biases or BN parameters)."""
        mask = np.zeros(self.n_params, dtype=bool)
        for row in self.layout:
            mask[row[W_OFF] : row[B_OFF]] = True
        return mask

    # -- kernels' arguments --------------------------------------------------------------
    def net(self, theta: np.ndarray | None = None, grad: np.ndarray | None = None) -> Net:
        c = self.config
        return Net(self.theta if theta is None else theta, self.grad if grad is None else grad,
                   self.layout, self.run_mean, self.run_var, float(c.bn_momentum),
                   float(c.bn_epsilon), self.loss_code,
                   int(self.layout[-1, 6]))  # ACT column of the output layer

    def work(self, rows: int):
        """Buffers for `rows` rows, allocated once per size and reused."""
        cap = max(int(rows), 1)
        work = self._works.get(cap)
        if work is None:
            if len(self._works) > 4:
                self._works.clear()
            work = self._works[cap] = make_work(self.layout, self.n_inputs, cap)
        return work

    # -- initialization --------------------------------------------------------------------
    def initialize(self, config: ExperimentConfig, rng: np.random.Generator,
                   x_sample: np.ndarray | None = None) -> None:
        """Initialize every layer; LSUV rescales layer by layer on `x_sample`."""
        init = config.init
        wspec = INITIALIZERS[init.weights]
        bspec = INITIALIZERS[init.biases]
        for l in range(self.n_layers):
            row = self.layout[l]
            n_in, n_out = int(row[N_IN]), int(row[N_OUT])
            w = wspec.sample(rng, n_in, n_out, (n_in, n_out), init.weight_scale)
            self.weights(l)[:] = init.gain * w
            self.biases(l)[:] = bspec.sample(rng, n_in, n_out, (n_out,), init.bias_scale)
            bn = self.bn_params(l)
            if bn is not None:
                bn[0][:] = 1.0
                bn[1][:] = 0.0
        self.run_mean[:] = 0.0
        self.run_var[:] = 1.0
        if init.weights == "lsuv" and x_sample is not None and len(x_sample):
            self.lsuv_iterations = self._lsuv(init, x_sample)

    def _lsuv(self, init, x_sample: np.ndarray) -> list[int]:
        x = np.ascontiguousarray(x_sample, dtype=np.float64)
        iterations = []
        for l in range(self.n_layers):
            def pre_activation(l=l):
                self.forward(x, training=False)
                return self.block("z", l, x.shape[0]).copy()
            iterations.append(lsuv_scale(self.weights(l), self.biases(l), pre_activation,
                                         init.lsuv_tolerance, init.lsuv_max_iter))
        return iterations

    # -- evaluation --------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False, theta=None) -> None:
        """Forward pass of at most one block of rows; results stay in the work buffers."""
        work = self.work(max(x.shape[0], 1))
        forward(self.net(theta), work, x, training, False)

    def block(self, buffer: str, l: int, rows: int) -> np.ndarray:
        """Layer l's (rows, n_out) block of a work buffer ("z", "zn", "a", "h")."""
        work = self.work(rows)
        start = work.cap * int(self.layout[l, A_OFF])
        n_out = int(self.layout[l, N_OUT])
        return getattr(work, buffer)[start : start + rows * n_out].reshape(rows, n_out)

    def layer_output(self, l: int, rows: int) -> np.ndarray:
        return self.block("h" if self.layout[l, RESID] else "a", l, rows)

    def predict(self, x: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """Network outputs (probabilities or values) for x: (n, n_inputs) -> (n, n_outputs)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty((x.shape[0], self.n_outputs))
        for start in range(0, x.shape[0], EVAL_BLOCK):
            xb = x[start : start + EVAL_BLOCK]
            self.forward(xb, training=False, theta=theta)
            out[start : start + xb.shape[0]] = self._outputs(xb.shape[0])
        return out

    def _outputs(self, rows: int) -> np.ndarray:
        z = self.block("z", self.n_layers - 1, rows)
        if self.loss_code == BCE:
            return 1.0 / (1.0 + np.exp(-z))
        if self.loss_code == MSE:
            from engine.activations import activate
            a = np.empty_like(z)
            code = int(self.layout[-1, 6])
            if code != LINEAR:
                activate(code, z.ravel(), a.ravel())
                return a
            return z.copy()
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def evaluate(self, x: np.ndarray, y: np.ndarray, theta: np.ndarray | None = None
                 ) -> tuple[float, float]:
        """(mean data loss, accuracy) on a whole set in evaluation mode; accuracy is NaN
        for regression. y is encoded (n, n_outputs)."""
        if x.shape[0] == 0:
            return float("nan"), float("nan")
        from engine.losses import output_loss

        x = np.ascontiguousarray(x, dtype=np.float64)
        total, correct = 0.0, 0
        empty = np.zeros((0, 0))
        for start in range(0, x.shape[0], EVAL_BLOCK):
            xb, yb = x[start : start + EVAL_BLOCK], y[start : start + EVAL_BLOCK]
            rows = xb.shape[0]
            self.forward(xb, training=False, theta=theta)
            net = self.net(theta)
            u = self.block("z", self.n_layers - 1, rows)
            a = np.empty_like(u)
            total += rows * output_loss(net.loss_code, net.out_act, u, a,
                                        np.ascontiguousarray(yb), empty)
            if self.task != "regression":
                correct += int(np.sum(self._correct(a, yb)))
        acc = correct / x.shape[0] if self.task != "regression" else float("nan")
        return total / x.shape[0], acc

    def _correct(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        if a.shape[1] == 1:
            return (a[:, 0] > 0.5) == (y[:, 0] > 0.5)
        return np.argmax(a, axis=1) == np.argmax(y, axis=1)

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray, l2: float = 0.0,
                           theta: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Loss (data + l2/2·ΣW²) and its gradient (a new flat array) on one batch, in
        training mode (batch statistics), without changing any state."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        grad = np.zeros(self.n_params)
        opt = Opt(0, grad, grad, np.zeros(1, np.int64), np.zeros(6), np.ones(self.n_layers),
                  float(l2), 0, 1.0)
        loss, _ = loss_and_grad(self.net(theta, grad), self.work(x.shape[0]), opt, x, y, False)
        return float(loss), grad
