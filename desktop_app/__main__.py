"""`python -m desktop_app`: starts the window (until it exists: a demo run on the command line)."""

from __future__ import annotations

import sys
from importlib import resources


def main(argv: list[str] | None = None) -> int:
    from engine.cli import main as engine_main

    demo = resources.files("resources.experiments").joinpath("spiral_tanh.toml")
    with resources.as_file(demo) as path:
        return engine_main(["run", str(path), *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
