"""Command line: `python -m engine run EXPERIMENT.toml --steps N` trains headless.

Bad input (missing file, bad TOML, unknown field, value out of range) exits with status 2
and a one-line message naming the problem, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import csv
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.snapshot import Snapshot


def _parse_value(text: str):
    """A --set value: a TOML-ish literal (number, true/false, list) or a plain string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _overrides(pairs: list[str]) -> dict[str, object]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(_error(f"--set needs key=value, got {pair!r}"))
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _layer_picks(n: int) -> list[int]:
    return sorted({0, n // 2, n - 1})


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class PlainLines:
    """A table row every `every` steps (and at the end): for logs, pipes and files."""

    def __init__(self, session, steps: int, every: int):
        self.steps, self.every = steps, every
        self.picks = _layer_picks(session.n_layers)
        names = session.layer_names
        header = ["step", "loss", "lr", "grad_norm", *[f"g[{names[i]}]" for i in self.picks]]
        print("  ".join(f"{h:>12}" for h in header))

    def next_stop(self, done: int) -> int:
        return min(self.steps, (done // self.every + 1) * self.every)

    def show(self, snap, elapsed: float) -> None:
        if snap.step % self.every and snap.step != self.steps and not snap.diverged:
            return  # a stop made for someone else (TensorBoard histograms)
        g = snap.layer_grad_norm
        row = [str(snap.step), _fmt(snap.loss), _fmt(snap.learning_rate),
               _fmt(snap.grad_norm), *[_fmt(g[i]) for i in self.picks]]
        print("  ".join(f"{v:>12}" for v in row), flush=True)

    def close(self) -> None:
        pass


class ProgressBar:
    """One line redrawn in place with \\r (at most ~10 times a second): percent, bar,
    step/total, steps/s, ETA and the last minibatch loss. For a terminal."""

    REDRAW = 0.1  # seconds between redraws, and the time a chunk of steps aims for

    def __init__(self, session, steps: int, stream=None):
        self.steps = steps
        self.stream = stream or sys.stdout
        self.width = max(40, shutil.get_terminal_size().columns - 1)
        self.chunk = 1  # grows to ~REDRAW seconds of steps once the speed is known
        self._drawn = 0.0
        self._len = 0
        self._first: tuple[int, float] | None = None
        self._draw(0, float("nan"), 0.0)

    def next_stop(self, done: int) -> int:
        return min(self.steps, done + self.chunk)

    def show(self, snap, elapsed: float) -> None:
        # speed measured from the first stop on: the first step may include compiling
        if self._first is None:
            self._first = (snap.step, elapsed)
        steps, seconds = snap.step - self._first[0], elapsed - self._first[1]
        rate = steps / seconds if steps > 0 and seconds > 0 else 0.0
        self.chunk = max(1, min(int(rate * self.REDRAW), 100_000)) if rate else 2 * self.chunk
        now = time.perf_counter()
        if now - self._drawn >= self.REDRAW or snap.step >= self.steps or snap.diverged:
            self._draw(snap.step, snap.loss, rate)

    def _draw(self, done: int, loss: float, rate: float) -> None:
        self._drawn = time.perf_counter()
        eta = (self.steps - done) / rate if rate > 0 else float("nan")
        speed = f"{rate:,.0f}" if rate > 0 else "-"
        right = (f" {done}/{self.steps}  {speed} steps/s  ETA {_clock(eta)}"
                 f"  loss {_fmt(loss) if done else '-'}")
        # the bar's length stays put while the numbers after it change width
        room = self.width - len(f"100% [] {self.steps}/{self.steps}  999,999 steps/s  "
                                "ETA 00:00:00  loss -0.0000e+00")
        n = max(10, min(30, room))
        filled = int(n * done / self.steps)
        line = f"{100 * done / self.steps:3.0f}% [{'#' * filled}{'-' * (n - filled)}]{right}"
        line = line[: self.width]
        self.stream.write("\r" + line + " " * max(0, self._len - len(line)))
        self.stream.flush()
        self._len = len(line)

    def close(self) -> None:
        self.stream.write("\n")  # keep the last state of the bar on screen
        self.stream.flush()


class Silent:
    def __init__(self, steps: int):
        self.steps = steps

    def next_stop(self, done: int) -> int:
        return self.steps

    def show(self, snap, elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


Display = PlainLines | ProgressBar | Silent


def _train(session, steps: int, display: Display, tb) -> tuple[Snapshot, float, bool]:
    """Step to `steps`, stopping where the display and the TensorBoard log want to.
    Returns (last snapshot, seconds, interrupted by Ctrl+C)."""
    snap = session.snapshot()
    t0 = time.perf_counter()
    try:
        while snap.step < steps:
            stop = display.next_stop(snap.step)
            if tb is not None:
                # land on histogram steps, and read the history before it thins its rows
                k = tb.histogram_every
                stop = min(stop, (snap.step // k + 1) * k, snap.step + 2048)
            snap = session.step(stop - snap.step)
            if tb is not None:
                tb.update(session)
            display.show(snap, time.perf_counter() - t0)
            if snap.diverged:
                break
    except KeyboardInterrupt:
        snap = session.snapshot()
        return snap, time.perf_counter() - t0, True
    finally:
        display.close()
    return snap, time.perf_counter() - t0, False


def _open_tensorboard(path: str):
    """The folder for --tensorboard, made now so that a bad path fails before training."""
    try:
        import tensorboardX  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise _Bad("--tensorboard needs the tensorboardX package: "
                   "pip install tensorboardX") from None
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise _Bad(f"--tensorboard: {path!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _Bad(f"--tensorboard: cannot make the folder {path!r}: "
                   f"{exc.strerror or exc}") from None
    return folder


class _Bad(Exception):
    """Bad input found by the command line itself (exits 2 with the message)."""


def _summary(session, snap, elapsed: float, setup: float, interrupted: bool) -> list[str]:
    ev = session.evaluate()
    lines = [f"# done: {snap.step} steps in {elapsed:.2f} s "
             f"({snap.step / max(elapsed, 1e-9):.0f} steps/s; set-up {setup:.2f} s)"]
    if interrupted:
        lines[0] = "# interrupted" + lines[0][len("# done"):]
    text = f"# train loss {_fmt(ev.train_loss)}, validation loss {_fmt(ev.val_loss)}"
    if not math.isnan(ev.train_accuracy):
        text += (f", train accuracy {ev.train_accuracy:.3f}"
                 f", validation accuracy {ev.val_accuracy:.3f}")
    lines.append(text)
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    from engine import config as config_io
    from engine.config import ConfigError, ExperimentConfig, set_dotted
    from engine.session import TrainingSession

    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):  # before training
        return _error(f"--out: cannot write a file at {str(out)!r}")
    try:
        config = config_io.load(args.experiment)
        if args.set:
            data = config.to_dict()
            for key, value in _overrides(args.set).items():
                set_dotted(data, key, value)
            config = ExperimentConfig.from_dict(data)
        t0 = time.perf_counter()
        session = TrainingSession(config, auto_probe=False)  # nothing here shows probes
        tb_dir = _open_tensorboard(args.tensorboard) if args.tensorboard else None
    except (ConfigError, _Bad) as exc:
        return _error(str(exc))
    steps = args.steps if args.steps is not None else config.run.steps
    say = (lambda *a: None) if args.quiet else print
    say(f"# {config.name}: {len(session.x_train)} training points, "
        f"{session.n_layers} layers, {session.model.n_params} parameters, "
        f"{steps} steps of batch {session.batch_size}")
    display: Display
    if args.quiet:
        display = Silent(steps)
    elif sys.stdout.isatty() and not args.no_progress:
        display = ProgressBar(session, steps)
    else:
        display = PlainLines(session, steps, max(1, args.every or max(1, steps // 20)))
    tb = None
    try:
        if tb_dir is not None:
            from engine.tensorboard_log import TensorBoardLog

            tb = TensorBoardLog(tb_dir, session, steps)
        setup = time.perf_counter() - t0
        snap, elapsed, interrupted = _train(session, steps, display, tb)
        for line in _summary(session, snap, elapsed, setup, interrupted):
            print(line)
        if tb is not None:
            tb.finish(session)  # the final evaluation and histograms
    finally:
        if tb is not None:
            tb.close()
    if tb is not None:
        say(f"# TensorBoard logs written to {tb_dir}")
    if out is not None:
        try:
            write_history_csv(session, out)
        except OSError as exc:
            return _error(f"cannot write {str(out)!r}: {exc.strerror or exc}")
        say(f"# history written to {out}")
    if snap.divergence is not None:
        print(f"# {snap.divergence.message}")
        return 1
    return 130 if interrupted else 0


def write_history_csv(session, path: Path) -> None:
    """Per-step history as CSV: step, loss, lr, norms, per-layer gradient norms."""
    import io

    from engine.files import atomic_write_bytes

    h = session.history
    names = [n.replace(" ", "_") for n in session.layer_names]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", "loss", "data_loss", "lr", "grad_norm", "grad_norm_clipped",
                *[f"grad_w_{n}" for n in names], *[f"grad_b_{n}" for n in names],
                *[f"update_ratio_{n}" for n in names]])
    for i in range(len(h)):
        # repr(float): the shortest text that reads back exactly (a numpy scalar's repr
        # is "np.float64(...)", which no spreadsheet reads)
        values = [h.loss[i], h.data_loss[i], h.lr[i], h.grad_norm[i], h.grad_norm_clipped[i],
                  *h.grad_w[i], *h.grad_b[i], *h.update_ratio[i]]
        w.writerow([int(h.steps[i]), *(repr(float(v)) for v in values)])
    atomic_write_bytes(path, buf.getvalue().encode())


def cmd_list(args: argparse.Namespace) -> int:
    import engine

    for title, registry in [
        ("datasets", engine.DATASETS), ("activations", engine.ACTIVATIONS),
        ("losses", engine.LOSSES), ("initializers", engine.INITIALIZERS),
        ("optimizers", engine.OPTIMIZERS), ("schedules", engine.SCHEDULES),
        ("clipping", engine.CLIP_KINDS),
    ]:
        print(f"{title}:")
        for name, entry in registry.items():
            print(f"  {name:16} {entry.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine",
                                     description="Gradient Lab's engine, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train an experiment and print progress")
    run.add_argument("experiment", help="experiment TOML file")
    run.add_argument("--steps", type=int, help="steps to train (default: run.steps)")
    run.add_argument("--every", type=int,
                     help="plain lines: print a line every K steps")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a field, e.g. optimizer.learning_rate=0.1")
    run.add_argument("--out", help="write the per-step history to this CSV file")
    run.add_argument("--tensorboard", metavar="DIR",
                     help="write TensorBoard logs (scalars, weight and gradient histograms) "
                          "into this folder (one run per folder)")
    run.add_argument("--no-progress", action="store_true",
                     help="plain lines even on a terminal (instead of a progress bar)")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="print only the summary at the end")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list datasets, activations, initializers, ...")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "steps", None) is not None and args.steps < 1:
        return _error(f"--steps must be >= 1, got {args.steps}")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
