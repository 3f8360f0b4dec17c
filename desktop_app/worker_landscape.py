"""The worker's loss-landscape service: trajectory, slices on request, the path projected.

Runs on the worker (it reads the session between chunks). A slice is computed when the
window asks, or every K steps when asked to; a newer request cancels the one running.
The optimizer's path is projected onto the last slice's plane as training goes on.
No Qt here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.landscape import (
    Slice2D,
    TrajectoryRecorder,
    project_onto,
    random_directions,
    session_gradient_line,
    session_interpolation,
    session_slice_2d,
)

RECORD_EVERY = 10  # parameter vectors kept for PCA directions every this many steps


@dataclass(frozen=True)
class LandscapeResult:
    """What the window draws: a 2-D slice and the two 1-D slices at the same step."""

    slice: Slice2D
    interpolation: tuple[np.ndarray, np.ndarray] | None  # (ts, loss) initial -> current
    gradient_line: object | None  # engine.landscape.GradientLine


class LandscapeService:
    def __init__(self) -> None:
        self.recorder: TrajectoryRecorder | None = None
        self.request: tuple[str, int, float] = ("random", 41, 1.0)
        self.auto_every = 0
        self._plane: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # center, d1, d2
        self._path_steps: list[int] = []
        self._path: list[np.ndarray] = []

    def new_run(self, session) -> None:
        self.recorder = TrajectoryRecorder(session, every=RECORD_EVERY)
        self._plane = None
        self._path_steps, self._path = [], []

    def record(self) -> None:
        if self.recorder is not None:
            self.recorder.record()

    def due(self, before: int, after: int) -> bool:
        """True when the steps before -> after crossed a multiple of the auto interval."""
        k = self.auto_every
        return k > 0 and after // k != before // k

    def compute(self, session, request: tuple[str, int, float] | None,
                cancel: Callable[[], bool]) -> LandscapeResult | None:
        """A slice around the current weights (None if cancelled by a newer request)."""
        if request is not None:
            self.request = request
        kind, n, span = self.request
        self.record()
        sl = session_slice_2d(session, kind=kind, n=n, span=span, seed=0,
                              trajectory=self.recorder, cancel=cancel)
        if sl is None:
            return None
        interp = session_interpolation(session, cancel=cancel)
        line = session_gradient_line(session, cancel=cancel)
        self._set_plane(session, sl)
        return LandscapeResult(sl, interp, line)

    def _set_plane(self, session, sl: Slice2D) -> None:
        theta = session.model.theta.copy()
        traj = self.recorder.trajectory if self.recorder is not None else theta[None, :]
        steps = list(self.recorder.steps) if self.recorder is not None else [session.step_count]
        if sl.kind == "pca":
            from engine.landscape import pca_directions

            if not np.array_equal(traj[-1], theta):
                traj = np.vstack([traj, theta])
                steps.append(session.step_count)
            d1, d2, coords, _ = pca_directions(traj)
            # pca_directions centres on the trajectory's last point: the current weights
            self._plane = (theta, d1, d2)
            self._path_steps, self._path = steps, list(coords)
        else:
            d1, d2 = random_directions(session.model, theta, np.random.default_rng(0))
            self._plane = (theta, d1, d2)
            self._path_steps = steps
            self._path = list(project_onto(traj, theta, d1, d2))

    def path(self, session) -> np.ndarray | None:
        """(T, 2) the recorded path and the current weights in the last slice's plane."""
        if self._plane is None:
            return None
        center, d1, d2 = self._plane
        rec = self.recorder
        if rec is not None and rec.steps.size and (
                not self._path_steps or rec.steps[-1] > self._path_steps[-1]):
            new = [i for i, s in enumerate(rec.steps)
                   if not self._path_steps or s > self._path_steps[-1]]
            thetas = rec.trajectory[new]
            self._path += list(project_onto(thetas, center, d1, d2))
            self._path_steps += [int(rec.steps[i]) for i in new]
        current = project_onto(session.model.theta[None, :], center, d1, d2)
        points = [*self._path, current[0]]
        return np.array(points)
