"""`python -m desktop_app`: start the window (optionally scripted: train, screenshot, quit).

    python -m desktop_app --experiment FILE.toml --run-steps N --screenshot OUT.png --quit

opens the window, trains N steps, saves a screenshot of the whole window and exits 0
(non-zero on any error).

    gradient-lab --self-test

checks an installation: opens the window offscreen, trains SELF_TEST_STEPS steps of the
default experiment, checks the training loss fell, prints one line and exits 0 (non-zero
with the reason otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradient-lab", description="Gradient Lab's window.")
    p.add_argument("experiment_file", nargs="?", help="experiment TOML file to open")
    p.add_argument("--experiment", help="experiment TOML file to open")
    p.add_argument("--run-steps", type=int, default=0, help="train this many steps at start")
    p.add_argument("--screenshot", help="after --run-steps, save the window as this PNG")
    p.add_argument("--quit", action="store_true", help="exit when the scripted run is done")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="scripted runs: give up (exit 3) after this many seconds")
    p.add_argument("--self-test", action="store_true",
                   help="check this installation: train briefly offscreen, exit 0 if the loss fell")
    return p


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the worker process, in a frozen (PyInstaller) bundle
    args = build_parser().parse_args(argv)
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # also on a desktop: no window flashes up
    from desktop_app.app import SELF_TEST_STEPS, run

    if args.self_test:
        return run(run_steps=SELF_TEST_STEPS, quit_after=True, timeout=args.timeout,
                   self_test=True)
    path = args.experiment or args.experiment_file
    return run(
        experiment=Path(path) if path else None,
        run_steps=args.run_steps,
        screenshot=Path(args.screenshot) if args.screenshot else None,
        quit_after=args.quit,
        timeout=args.timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
