"""The frozen program's entry point (PyInstaller runs this file as `gradient-lab`)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # engine/ ships as .py files (see gradient_lab.spec): never write __pycache__ into the
    # install folder (root running it would leave files the package manager does not own).
    sys.dont_write_bytecode = True
    # Then: the training worker is a spawned child that re-runs this executable;
    # freeze_support() turns that run into the child and never returns there.
    multiprocessing.freeze_support()
    from desktop_app.__main__ import main

    sys.exit(main())
