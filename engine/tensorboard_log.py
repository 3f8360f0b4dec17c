"""TensorBoard logs of a training session, written with tensorboardX (numpy + protobuf only).

Scalars come from the session's history, so nothing is measured twice: per-step tags
("loss/minibatch", "lr", "grad_norm/global") thinned to at most `MAX_POINTS` points, per-layer
gradient norms to at most `MAX_LAYER_POINTS`, and the evaluations ("loss/train",
"loss/validation", "accuracy/train", "accuracy/validation") at every evaluation step.
Histograms of each layer's weights and weight gradients ("weights/hidden_1",
"gradients/hidden_1") are written when the caller stops at an evaluation step, at most
`MAX_HISTOGRAMS` times a run, and at the end.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# TensorBoard shows 1000 scalar samples and 50 histograms per tag unless told otherwise
# (--samples_per_plugin); a few times more scalars lets it zoom in, and bounds the cost
# (~25 µs a value) on long runs.
MAX_POINTS = 5_000  # per per-step tag
MAX_LAYER_POINTS = 1_000  # per layer gradient-norm tag
MAX_HISTOGRAMS = 50  # steps with histograms (each writes two per layer)
HISTOGRAM_BINS = 50  # tensorboardX's default (~1500 bins) makes 10x larger files


def tag_name(layer_name: str) -> str:
    """'hidden 1' -> 'hidden_1' (TensorBoard groups tags by the part before '/')."""
    return layer_name.strip().replace(" ", "_").replace("/", "_")


class TensorBoardLog:
    """Writes one run into `logdir` as training goes on.

    Call `update(session)` after each `session.step(...)` (cheap when nothing is new),
    `finish(session)` at the end and `close()` always (flushes the event file).
    `histogram_every` tells the caller where to stop so that histograms land on those steps.
    """

    def __init__(self, logdir: str | Path, session, planned_steps: int):
        from tensorboardX import SummaryWriter  # type: ignore[import-untyped]

        from engine.config import dumps

        self.writer = SummaryWriter(logdir=str(logdir))
        steps = max(1, int(planned_steps))
        self.stride = max(1, math.ceil(steps / MAX_POINTS))
        self.layer_stride = max(1, math.ceil(steps / MAX_LAYER_POINTS))
        every = session.config.run.eval_every
        self.histogram_every = every * max(1, math.ceil(steps / every / MAX_HISTOGRAMS))
        self.layer_tags = [tag_name(n) for n in session.layer_names]
        self._logged_step = session.step_count  # per-step rows up to here are written
        self._logged_eval = -1
        self._histogram_step = -1
        self.writer.add_text("experiment", "```toml\n" + dumps(session.config) + "\n```", 0)
        self.update(session)

    def update(self, session) -> None:
        """Write the history rows and evaluations since the last call, and histograms if
        the session stands on a histogram step."""
        self._write_steps(session.history)
        self._write_evals(session.history)
        if session.step_count % self.histogram_every == 0:
            self.write_histograms(session)

    def finish(self, session) -> None:
        """Everything up to the session's current step, histograms included."""
        self._write_steps(session.history)
        self._write_evals(session.history)
        self.write_histograms(session)

    def close(self) -> None:
        self.writer.close()  # flushes

    # -- writing -------------------------------------------------------------------------
    def _write_steps(self, h) -> None:
        from tensorboardX.proto.summary_pb2 import Summary  # type: ignore[import-untyped]

        steps = h.steps
        first = int(np.searchsorted(steps, self._logged_step, side="right"))
        if first == steps.size:
            return
        # One event per step holding all of its values: ~4x faster than add_scalar per value
        # (which writes an event each), and read back the same way.
        write = self.writer.file_writer.add_summary
        for i in range(first, steps.size):
            step = int(steps[i])
            values = []
            if step % self.stride == 0:
                values += [("loss/minibatch", h.loss[i]), ("lr", h.lr[i]),
                           ("grad_norm/global", h.grad_norm[i])]
            if step % self.layer_stride == 0:
                norms = np.hypot(h.grad_w[i], h.grad_b[i])
                values += [(f"grad_norm/{t}", v) for t, v in zip(self.layer_tags, norms,
                                                                  strict=True)]
            if values:
                write(Summary(value=[Summary.Value(tag=t, simple_value=float(v))
                                     for t, v in values]), step)
        self._logged_step = int(steps[-1])

    def _write_evals(self, h) -> None:
        steps = h.eval_steps
        first = int(np.searchsorted(steps, self._logged_eval, side="right"))
        for i in range(first, steps.size):
            step = int(steps[i])
            self.writer.add_scalar("loss/train", float(h.eval_train_loss[i]), step)
            self.writer.add_scalar("loss/validation", float(h.eval_val_loss[i]), step)
            for name, column in (("train", h.eval_train_accuracy),
                                 ("validation", h.eval_val_accuracy)):
                if not math.isnan(column[i]):  # NaN for regression: no accuracy
                    self.writer.add_scalar(f"accuracy/{name}", float(column[i]), step)
        if steps.size:
            self._logged_eval = int(steps[-1])

    def write_histograms(self, session) -> None:
        """Each layer's weights, and their gradients on the session's probe batch."""
        step = session.step_count
        if step == self._histogram_step:
            return
        self._histogram_step = step
        _, grads = session.loss_and_gradients(session.probe_x, session.probe_y)
        for l, tag in enumerate(self.layer_tags):
            weights, _ = session.get_layer(l)
            self._histogram(f"weights/{tag}", weights, step)
            self._histogram(f"gradients/{tag}", grads[l][0], step)

    def _histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        v = values.ravel()
        v = v[np.isfinite(v)]  # tensorboardX refuses NaN; a diverged run keeps finite state
        if v.size:
            with np.errstate(over="ignore"):  # sum of squares of a blowing-up layer: inf
                self.writer.add_histogram(tag, v, step, bins=HISTOGRAM_BINS)
