"""TrainingSession: owns data, network, optimizer and history; steps and snapshots.

`step(n)` advances n minibatch steps (in jitted chunks) and returns an immutable
`Snapshot`. A diverged run is a field of the snapshot, not an exception: the session
stops at the last finite state and says at which step, in which layer and what.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.config import ConfigError, ExperimentConfig
from engine.data import Dataset, make_dataset
from engine.history import History
from engine.model import Model, encode_targets, output_units
from engine.optimizers import Optimizer
from engine.probes import Probe, make_probe
from engine.schedules import lr_curve
from engine.snapshot import Divergence, EvalResult, Snapshot, freeze
from engine.trainer import DIVERGENCE_WHAT, Opt, make_out, train_steps

KEEP_CHECKPOINTS = 4  # states kept (at evaluation steps) for rolling back after a blow-up
CHECKPOINT_BYTES = 256 * 2**20  # ... fewer when the network is large
CHUNK = 256  # steps per jitted call (between chunks the caller may change settings)
PROBE_ROWS = 512  # training points the layer probes look at
# Sections that can change between steps; the others rebuild the run.
HOT_SECTIONS = ("name", "description", "optimizer", "schedule", "clip", "regularization")
HOT_RUN_FIELDS = ("batch_size", "eval_every", "steps")


def fields_needing_reset(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Sections (or run.* fields) that differ between two configurations and cannot change
    while a run goes on: data, network, initialization, seeds."""
    a, b = old.to_dict(), new.to_dict()
    out = []
    for section in sorted(set(a) | set(b)):
        if section in HOT_SECTIONS or a.get(section) == b.get(section):
            continue
        if section == "run":
            for key in sorted(set(a["run"]) | set(b["run"])):
                if key not in HOT_RUN_FIELDS and a["run"].get(key) != b["run"].get(key):
                    out.append(f"run.{key}")
        else:
            out.append(section)
    return out


class TrainingSession:
    """One training run, stepped by the caller.

    >>> s = TrainingSession(ExperimentConfig())
    >>> snap = s.step(100)
    >>> snap.step, snap.loss
    """

    def __init__(self, config: ExperimentConfig, dataset: Dataset | None = None,
                 auto_probe: bool = True):
        """auto_probe: compute layer probes at every evaluation (run.eval_every steps).
        Callers that show probes at their own pace (the window) turn it off and call
        `probe()` when they need one."""
        self._config = config
        self._dataset_override = dataset
        self.auto_probe = auto_probe
        self._build()

    # -- construction --------------------------------------------------------------------
    def _build(self) -> None:
        c = self._config
        self.data_seed, self.init_seed, self.batch_seed = c.run.derived_seeds()
        self.dataset = self._dataset_override or make_dataset(c.data, self.data_seed)
        ds = self.dataset
        if c.network.loss == "bce" and ds.task == "classification" and ds.n_classes != 2:
            raise ConfigError(
                f"network.loss 'bce' needs 2 classes, but the data has {ds.n_classes}; "
                "use 'softmax_ce'"
            )
        if ds.task == "regression" and c.network.loss != "mse":
            raise ConfigError(
                f"network.loss must be 'mse' for a regression dataset, got {c.network.loss!r}"
            )
        k = output_units(c.network.loss, ds.task, ds.n_classes)
        self.model = Model(c.network, ds.n_features, k, ds.task)
        self.x_train = np.ascontiguousarray(ds.x_train, dtype=np.float64)
        self.y_train = encode_targets(c.network.loss, ds.task, ds.n_classes, ds.y_train)
        self.x_val = np.ascontiguousarray(ds.x_val, dtype=np.float64)
        self.y_val = encode_targets(c.network.loss, ds.task, ds.n_classes, ds.y_val)
        self.probe_x = self.x_train[:PROBE_ROWS].copy()
        self.probe_y = self.y_train[:PROBE_ROWS].copy()
        init_rng = np.random.default_rng(self.init_seed)
        self.model.initialize(c, init_rng, self.probe_x)
        self.initial_theta = self.model.theta.copy()
        self.optimizer = Optimizer(c.optimizer.name, c.optimizer, self.model.n_params)
        self._batch_rng = np.random.default_rng(self.batch_seed)
        self._perm = np.zeros(0, dtype=np.int64)
        self._pos = 0
        self.step_count = 0
        self.samples_seen = 0
        self.history = History(self.model.n_layers)
        self.divergence: Divergence | None = None
        self.last_eval: EvalResult | None = None
        self.last_probe: Probe | None = None
        self._last_row: dict[str, np.ndarray] | None = None
        self._lr_mult = self._multipliers()
        self._saved: list[tuple] = []
        self.evaluate()
        self._save_checkpoint()

    def _multipliers(self) -> np.ndarray:
        m = self._config.optimizer.layer_lr_multipliers
        return np.asarray(m, dtype=np.float64) if m else np.ones(self.model.n_layers)

    @property
    def config(self) -> ExperimentConfig:
        return self._config

    @property
    def n_layers(self) -> int:
        return self.model.n_layers

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.model.layers())

    @property
    def batch_size(self) -> int:
        return min(self._config.run.batch_size, self.x_train.shape[0])

    @property
    def epoch(self) -> float:
        return self.samples_seen / self.x_train.shape[0]

    @property
    def diverged(self) -> bool:
        return self.divergence is not None

    # -- changing settings ---------------------------------------------------------------
    def changes_need_reset(self, config: ExperimentConfig) -> list[str]:
        """The fields of `config` that differ from the current ones and need a reset."""
        return fields_needing_reset(self._config, config)

    def update_config(self, config: ExperimentConfig) -> None:
        """Apply settings that can change between steps (learning rate, optimizer and its
        hyper-parameters, schedule, clipping, L2, batch size); the run goes on."""
        blocked = self.changes_need_reset(config)
        if blocked:
            raise ConfigError(
                f"changing {', '.join(blocked)} needs a reset; call reset(config) instead"
            )
        self._config = config
        self.optimizer.set_hyper(config.optimizer)
        self._lr_mult = self._multipliers()

    def set_learning_rate(self, lr: float) -> None:
        self.update_config(self._config.replace(**{"optimizer.learning_rate": lr}))

    def reset(self, config: ExperimentConfig | None = None) -> Snapshot:
        """Start again from step 0, with the same or a new configuration."""
        if config is not None:
            old = self._config
            if config.data != old.data or config.run.derived_seeds() != old.run.derived_seeds():
                self._dataset_override = None
            self._config = config
        self._build()
        return self.snapshot()

    # -- schedule ------------------------------------------------------------------------
    def lr_curve(self, n_steps: int | None = None) -> np.ndarray:
        """The learning rate the schedule gives for steps 0..n-1 (default: run.steps)."""
        n = self._config.run.steps if n_steps is None else n_steps
        return lr_curve(np.arange(n, dtype=np.int64), self._config.optimizer.learning_rate,
                        self._config.schedule)

    # -- stepping ------------------------------------------------------------------------
    def _batches(self, n_steps: int) -> np.ndarray:
        """(n_steps, batch) row indices from a stream of epoch permutations."""
        b, n_train = self.batch_size, self.x_train.shape[0]
        need = n_steps * b
        parts = []
        while need > 0:
            if self._pos >= self._perm.size:
                self._perm = self._batch_rng.permutation(n_train).astype(np.int64)
                self._pos = 0
            take = min(need, self._perm.size - self._pos)
            parts.append(self._perm[self._pos : self._pos + take])
            self._pos += take
            need -= take
        return np.ascontiguousarray(np.concatenate(parts).reshape(n_steps, b))

    def _checkpoint(self) -> tuple:
        m, o = self.model, self.optimizer
        return (m.theta.copy(), o.s1.copy(), o.s2.copy(), int(o.t[0]), m.run_mean.copy(),
                m.run_var.copy(), self._batch_rng.bit_generator.state, self._perm, self._pos,
                o.spec.name)

    def _restore(self, cp: tuple) -> None:
        m, o = self.model, self.optimizer
        m.theta[:], o.s1[:], o.s2[:] = cp[0], cp[1], cp[2]
        o.t[0] = cp[3]
        if cp[9] != o.spec.name:  # the optimizer changed since: its state starts anew
            o.reset_state()
        m.run_mean[:], m.run_var[:] = cp[4], cp[5]
        self._batch_rng.bit_generator.state = cp[6]
        self._perm, self._pos = cp[7], cp[8]

    def _run_chunk(self, n: int):
        m, o, c = self.model, self.optimizer, self._config
        batches = self._batches(n)
        lrs = self.lr_curve_range(self.step_count, n)
        out = make_out(n, m.n_layers)
        opt = Opt(o.code, o.s1, o.s2, o.t, o.hyper, self._lr_mult, float(c.regularization.l2),
                  _clip_code(c.clip.kind), float(c.clip.threshold))
        done = train_steps(m.net(), m.work(self.batch_size), opt, self.x_train, self.y_train,
                           batches, lrs, m.bounds, out)
        return done, out

    def lr_curve_range(self, start: int, n: int) -> np.ndarray:
        return lr_curve(np.arange(start, start + n, dtype=np.int64),
                        self._config.optimizer.learning_rate, self._config.schedule)

    def step(self, n: int = 1) -> Snapshot:
        """Advance up to n minibatch steps; stops early (and says so) on divergence."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        remaining = int(n)
        every = self._config.run.eval_every
        while remaining > 0 and self.divergence is None:
            to_eval = every - (self.step_count % every)
            chunk = min(remaining, CHUNK, to_eval)
            checkpoint = self._checkpoint()
            done, out = self._run_chunk(chunk)
            if out.divergence[0] >= 0:
                self._diverged(checkpoint, int(done), out)
                break
            self._record(done, out)
            remaining -= done
            if self.step_count % every == 0:
                self.evaluate()
                if self.auto_probe:
                    self.probe()
                self._save_checkpoint()
        return self.snapshot()

    # -- rolling back ------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        loss = self.last_eval.train_loss if self.last_eval is not None else float("nan")
        state = (self._checkpoint(), self.step_count, self.samples_seen, self._last_row, loss)
        self._saved.append(state)
        per = 5 * 8 * self.model.n_params + 1
        # the start and the best so far (sane states to go back to) and the newest few, as
        # many as the memory budget allows (a 100 x 512 network keeps 2: the best, the newest)
        limit = max(2, min(KEEP_CHECKPOINTS + 2, CHECKPOINT_BYTES // per))
        while len(self._saved) > limit:
            losses = [x[4] if x[4] == x[4] else float("inf") for x in self._saved]
            best = int(np.argmin(losses[:-1]))
            first = 1 if limit >= 3 else 0  # keep the start only when there is room
            drop = next(i for i in range(first, len(self._saved) - 1) if i != best)
            del self._saved[drop]

    def rollback_step(self) -> int:
        """The step `rollback()` returns to: the newest kept state whose training loss was
        finite and at most twice the best kept one (before the loss started to blow up)."""
        best = float("inf")
        choice = self._saved[0][1]
        for _, step, _, _, loss in self._saved:
            if loss == loss and loss < float("inf"):
                best = min(best, loss)
                if loss <= 2.0 * best:
                    choice = step
        return choice

    def rollback(self, step: int | None = None) -> Snapshot:
        """Go back to a kept state (default: `rollback_step()`) and clear a divergence.

        States are kept at evaluation steps (every run.eval_every steps, the last few and the
        first). The history after that step is forgotten.
        """
        target = self.rollback_step() if step is None else int(step)
        matches = [s for s in self._saved if s[1] == target]
        if not matches:
            kept = [s[1] for s in self._saved]
            raise ValueError(f"no state kept at step {target}; kept steps: {kept}")
        cp, step_count, samples_seen, last_row, _ = matches[-1]
        self._restore(cp)
        self.step_count, self.samples_seen, self._last_row = step_count, samples_seen, last_row
        self._saved = [s for s in self._saved if s[1] <= target]
        self.history.truncate(step_count)
        self.divergence = None
        self.evaluate()
        self.probe()
        return self.snapshot()

    def _record(self, done: int, out) -> None:
        if done == 0:
            return
        cols = {
            "loss": out.loss, "data_loss": out.data_loss, "lr": out.lr,
            "grad_norm": out.gnorm, "grad_norm_clipped": out.gnorm_clipped,
            "clipped": out.clipped, "grad_w": out.gw, "grad_b": out.gb,
            "weight_norm": out.wn, "update_ratio": out.ur,
        }
        self.history.append(self.step_count, done, cols)
        self._last_row = {k: np.array(v[done - 1]) for k, v in cols.items()}
        self.step_count += done
        self.samples_seen += done * self.batch_size

    def _diverged(self, checkpoint: tuple, done: int, out) -> None:
        """Go back to the chunk's start and replay the finite steps, bit for bit."""
        step_in_chunk, layer, what = (int(v) for v in out.divergence)
        before = self._last_row
        self._restore(checkpoint)
        if step_in_chunk > 0:
            done2, out2 = self._run_chunk(step_in_chunk)
            assert done2 == step_in_chunk and out2.divergence[0] < 0
            self._record(done2, out2)
        before = self._last_row or before
        names = self.layer_names
        what_name = DIVERGENCE_WHAT.get(what, "loss")
        step = self.step_count + 1
        grad_before = float(before["grad_norm"]) if before else float("nan")
        layer_grads = np.hypot(before["grad_w"], before["grad_b"]) if before else None
        message = (
            f"Training diverged at step {step}: the {what_name} became non-finite "
            f"(NaN or infinite) in layer '{names[layer]}'."
        )
        if before:
            message += f" The gradient norm just before was {grad_before:.3g}."
        self.divergence = Divergence(
            step=step, layer=layer, layer_name=names[layer], what=what_name,
            message=message, grad_norm_before=grad_before,
            layer_grad_norms_before=freeze(layer_grads) if layer_grads is not None else None,
            learning_rate=float(self.lr_curve_range(self.step_count, 1)[0]),
            advice=ADVICE,
            rollback_step=self.rollback_step(),
        )

    def clear_divergence(self) -> Snapshot:
        """Accept the last finite state and allow training to go on (after changing
        settings, e.g. a lower learning rate)."""
        self.divergence = None
        return self.snapshot()

    # -- measuring -----------------------------------------------------------------------
    def evaluate(self) -> EvalResult:
        """Loss and accuracy on the training and validation sets (evaluation mode)."""
        m = self.model
        tl, ta = m.evaluate(self.x_train, self.y_train)
        vl, va = m.evaluate(self.x_val, self.y_val)
        result = EvalResult(self.step_count, tl, ta, vl, va)
        self.last_eval = result
        if not self.history.eval_steps.size or self.history.eval_steps[-1] != self.step_count:
            self.history.append_eval(self.step_count, dataclasses.asdict(result))
        return result

    def probe(self) -> Probe:
        """Activation, saturation, dead-unit and histogram statistics per layer."""
        self.last_probe = make_probe(self.model, self.probe_x, self.probe_y,
                                     self._config.regularization.l2, self.step_count)
        return self.last_probe

    def snapshot(self) -> Snapshot:
        """The current state as an immutable snapshot."""
        row = self._last_row
        n = self.model.n_layers
        zeros = np.zeros(n)
        nan = float("nan")
        return Snapshot(
            step=self.step_count,
            epoch=self.epoch,
            loss=float(row["loss"]) if row else nan,
            data_loss=float(row["data_loss"]) if row else nan,
            learning_rate=float(row["lr"]) if row else float(self.lr_curve_range(0, 1)[0]),
            grad_norm=float(row["grad_norm"]) if row else nan,
            grad_norm_clipped=float(row["grad_norm_clipped"]) if row else nan,
            clipped=bool(row["clipped"]) if row else False,
            layer_grad_norm_w=freeze(row["grad_w"] if row else zeros),
            layer_grad_norm_b=freeze(row["grad_b"] if row else zeros),
            layer_weight_norm=freeze(row["weight_norm"] if row else self._weight_norms()),
            layer_update_ratio=freeze(row["update_ratio"] if row else zeros),
            layer_names=self.layer_names,
            diverged=self.divergence is not None,
            divergence=self.divergence,
            eval=self.last_eval,
            probe=self.last_probe,
        )

    def _weight_norms(self) -> np.ndarray:
        return np.array([np.linalg.norm(self.model.weights(l)) for l in range(self.n_layers)])

    # -- arrays in and out ---------------------------------------------------------------
    def get_layer(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of layer l's weights (n_in, n_out) and biases (n_out,)."""
        return self.model.weights(l).copy(), self.model.biases(l).copy()

    def set_layer(self, l: int, weights: np.ndarray, biases: np.ndarray | None = None) -> None:
        w = self.model.weights(l)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != w.shape:
            raise ValueError(f"layer {l} weights must have shape {w.shape}, got {weights.shape}")
        w[:] = weights
        if biases is not None:
            b = self.model.biases(l)
            biases = np.asarray(biases, dtype=np.float64)
            if biases.shape != b.shape:
                raise ValueError(f"layer {l} biases must have shape {b.shape}, got {biases.shape}")
            b[:] = biases

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list]:
        """Loss (with L2) and per-layer gradients [(dW, db), ...] on arrays passed in, in
        training mode, without stepping. y: labels (classification) or targets."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.model.n_inputs:
            raise ValueError(f"x must have shape (n, {self.model.n_inputs}), got {x.shape}")
        ds, c = self.dataset, self._config
        y = np.asarray(y)
        if y.ndim == 1 or y.shape[1] != self.model.n_outputs or ds.task == "regression":
            y = encode_targets(c.network.loss, ds.task, ds.n_classes, y.reshape(-1))
        loss, grad = self.model.loss_and_gradients(x, y, c.regularization.l2)
        m = self.model
        return loss, [(m.weights(l, grad).copy(), m.biases(l, grad).copy())
                      for l in range(m.n_layers)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for model-space inputs x: (n, n_features) -> (n, n_outputs)."""
        return self.model.predict(np.asarray(x, dtype=np.float64))

    # -- saving --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        from engine.persist import session_state

        return session_state(self)

    def load_state_dict(self, state: dict) -> None:
        from engine.persist import load_session_state

        load_session_state(self, state)

    def save(self, path) -> None:
        """Write the whole state (atomically) so that a paused run resumes bit for bit."""
        from engine.persist import save_session

        save_session(self, path)

    @classmethod
    def load(cls, path) -> TrainingSession:
        from engine.persist import load_session

        return load_session(path)


ADVICE = (
    "Lower the learning rate (often by 10x).",
    "Clip gradients (global norm around 1).",
    "Use He (ReLU) or Xavier (tanh) initialization instead of a large-scale one.",
    "Turn on batch normalization.",
    "Try Adam or RMSProp, which adapt the step size per parameter.",
)


def _clip_code(kind: str) -> int:
    from engine.clipping import CLIP_KINDS

    return CLIP_KINDS[kind].code

