"""The names of every registry, for validation and for the window's combo boxes.

Each registry lives in its own module (ACTIVATIONS in activations.py, ...); this module only
collects their keys so that config.py does not import the kernels it validates names for.
"""

from __future__ import annotations


def dataset_names() -> list[str]:
    from engine.data import DATASETS

    return list(DATASETS)


def activation_names() -> list[str]:
    from engine.activations import ACTIVATIONS

    return list(ACTIVATIONS)


def loss_names() -> list[str]:
    from engine.losses import LOSSES

    return list(LOSSES)


def initializer_names() -> list[str]:
    from engine.initializers import INITIALIZERS

    return list(INITIALIZERS)


def optimizer_names() -> list[str]:
    from engine.optimizers import OPTIMIZERS

    return list(OPTIMIZERS)


def schedule_names() -> list[str]:
    from engine.schedules import SCHEDULES

    return list(SCHEDULES)


def clip_names() -> list[str]:
    from engine.clipping import CLIP_KINDS

    return list(CLIP_KINDS)
