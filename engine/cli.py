"""Command line: `python -m engine run EXPERIMENT.toml --steps N` trains headless.

Bad input (missing file, bad TOML, unknown field, value out of range) exits with status 2
and a one-line message naming the problem, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import csv
import math
import sys
import time
from pathlib import Path


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
    except ConfigError as exc:
        return _error(str(exc))
    steps = args.steps if args.steps is not None else config.run.steps
    every = max(1, args.every or max(1, steps // 20))
    picks = _layer_picks(session.n_layers)
    names = session.layer_names
    print(f"# {config.name}: {len(session.x_train)} training points, "
          f"{session.n_layers} layers, {session.model.n_params} parameters, "
          f"{steps} steps of batch {session.batch_size}")
    header = ["step", "loss", "lr", "grad_norm", *[f"g[{names[i]}]" for i in picks]]
    print("  ".join(f"{h:>12}" for h in header))
    done = 0
    snap = session.snapshot()
    t_train = time.perf_counter()
    while done < steps:
        snap = session.step(min(every, steps - done))
        done = snap.step
        g = snap.layer_grad_norm
        row = [str(snap.step), _fmt(snap.loss), _fmt(snap.learning_rate),
               _fmt(snap.grad_norm), *[_fmt(g[i]) for i in picks]]
        print("  ".join(f"{v:>12}" for v in row), flush=True)
        if snap.diverged:
            break
    elapsed = time.perf_counter() - t_train
    ev = session.evaluate()
    print(f"# done: {snap.step} steps in {elapsed:.2f} s ({snap.step / max(elapsed, 1e-9):.0f} "
          f"steps/s; set-up {t_train - t0:.2f} s)")
    summary = f"# train loss {_fmt(ev.train_loss)}, validation loss {_fmt(ev.val_loss)}"
    if not math.isnan(ev.train_accuracy):
        summary += f", train accuracy {ev.train_accuracy:.3f}"
        summary += f", validation accuracy {_fmt(ev.val_accuracy)}"
    print(summary)
    if out is not None:
        try:
            write_history_csv(session, out)
        except OSError as exc:
            return _error(f"cannot write {str(out)!r}: {exc.strerror or exc}")
        print(f"# history written to {out}")
    if snap.diverged:
        print(f"# {snap.divergence.message}")
        return 1
    return 0


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
    run.add_argument("--every", type=int, help="print a line every K steps")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a field, e.g. optimizer.learning_rate=0.1")
    run.add_argument("--out", help="write the per-step history to this CSV file")
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
