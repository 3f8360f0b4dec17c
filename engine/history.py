"""Per-step history in preallocated, growable arrays whose memory stays bounded.

Rows double in number until `max_rows`; when full, the older half is thinned to every other
row and the newer half kept whole, so the recent past is always at full resolution and a run
of 10^6 steps still fits (older steps decimated more and more).
"""

from __future__ import annotations

import numpy as np

SCALARS = ("loss", "data_loss", "lr", "grad_norm", "grad_norm_clipped", "clipped")
PER_LAYER = ("grad_w", "grad_b", "weight_norm", "update_ratio")
EVAL_COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
MEMORY_BUDGET = 48 * 2**20  # bytes for the per-step table


class History:
    """Per-step scalars and per-layer norms, keyed by the step number of each row.

    Attributes are views of the filled rows: `history.loss`, `history.grad_w` (rows, layers),
    `history.steps` (int64). Evaluations (every `eval_every` steps) are kept apart.
    """

    def __init__(self, n_layers: int, max_rows: int | None = None):
        self.n_layers = n_layers
        per_row = 8 * (1 + len(SCALARS) + len(PER_LAYER) * n_layers)
        if max_rows is None:
            max_rows = int(np.clip(MEMORY_BUDGET // per_row, 4096, 1 << 17))
        self.max_rows = max(int(max_rows), 16)
        self._cap = min(1024, self.max_rows)
        self._n = 0
        self._steps = np.zeros(self._cap, dtype=np.int64)
        self._cols = {name: np.zeros(self._cap) for name in SCALARS}
        self._cols.update({name: np.zeros((self._cap, n_layers)) for name in PER_LAYER})
        self._eval_n = 0
        self._eval_steps = np.zeros(64, dtype=np.int64)
        self._eval = {name: np.zeros(64) for name in EVAL_COLUMNS}

    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self._n]

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("_cols", {})
        if name in cols:
            return cols[name][: self._n]
        evals = self.__dict__.get("_eval", {})
        if name.startswith("eval_") and name[5:] in evals:
            return evals[name[5:]][: self._eval_n]
        raise AttributeError(name)

    @property
    def eval_steps(self) -> np.ndarray:
        return self._eval_steps[: self._eval_n]

    # -- writing -----------------------------------------------------------------------
    def append(self, first_step: int, n: int, columns: dict[str, np.ndarray]) -> None:
        """Append n consecutive steps (first_step + 1 ... first_step + n, 1-based step
        numbers: the row of step k describes the k-th update)."""
        done = 0
        while done < n:
            if self._n == self._cap:
                self._make_room()
            take = min(n - done, self._cap - self._n)
            rows = slice(self._n, self._n + take)
            self._steps[rows] = np.arange(first_step + done + 1, first_step + done + take + 1)
            for name, array in columns.items():
                self._cols[name][rows] = array[done : done + take]
            self._n += take
            done += take

    def append_eval(self, step: int, values: dict[str, float]) -> None:
        if self._eval_n == self._eval_steps.size:
            if self._eval_n >= self.max_rows:
                self._eval_n = _thin(self._eval_steps, self._eval, self._eval_n)
            else:
                self._eval_steps = _grow(self._eval_steps)
                self._eval = {k: _grow(v) for k, v in self._eval.items()}
        self._eval_steps[self._eval_n] = step
        for name in EVAL_COLUMNS:
            self._eval[name][self._eval_n] = values.get(name, np.nan)
        self._eval_n += 1

    def truncate(self, last_step: int) -> None:
        """Forget rows after `last_step` (used when a run is rolled back)."""
        self._n = int(np.searchsorted(self.steps, last_step, side="right"))
        self._eval_n = int(np.searchsorted(self.eval_steps, last_step, side="right"))

    def _make_room(self) -> None:
        if self._cap < self.max_rows:
            self._cap = min(self._cap * 2, self.max_rows)
            self._steps = _grow(self._steps, self._cap)
            self._cols = {k: _grow(v, self._cap) for k, v in self._cols.items()}
        else:
            self._n = _thin(self._steps, self._cols, self._n)

    # -- saving ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        out = {"steps": self.steps.copy(), "eval_steps": self.eval_steps.copy()}
        out.update({f"col_{k}": v[: self._n].copy() for k, v in self._cols.items()})
        out.update({f"eval_{k}": v[: self._eval_n].copy() for k, v in self._eval.items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        # Capacities as growing row by row would have left them, so that the rows are
        # thinned at the same steps as in the run that was saved (and stay <= max_rows).
        steps = np.asarray(state["steps"])
        self.__init__(self.n_layers, self.max_rows)
        n = steps.size
        while self._cap < n and self._cap < self.max_rows:
            self._cap = min(self._cap * 2, self.max_rows)
        self._cap = max(self._cap, n)
        self._steps = np.zeros(self._cap, dtype=np.int64)
        self._steps[:n] = steps
        self._cols = {}
        for name in (*SCALARS, *PER_LAYER):
            col = np.asarray(state[f"col_{name}"])
            self._cols[name] = np.zeros((self._cap, *col.shape[1:]))
            self._cols[name][:n] = col
        self._n = n
        eval_steps = np.asarray(state["eval_steps"], dtype=np.int64)
        self._eval_n = eval_steps.size
        size = self._eval_steps.size
        while size < self._eval_n:
            size *= 2
        self._eval_steps = np.zeros(size, dtype=np.int64)
        self._eval_steps[: self._eval_n] = eval_steps
        for name in EVAL_COLUMNS:
            self._eval[name] = np.zeros(size)
            self._eval[name][: self._eval_n] = np.asarray(state[f"eval_{name}"], dtype=float)


def _grow(a: np.ndarray, rows: int | None = None) -> np.ndarray:
    rows = 2 * a.shape[0] if rows is None else rows
    out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _thin(steps: np.ndarray, cols: dict[str, np.ndarray], n: int) -> int:
    """Keep every other row of the older half and all of the newer half; return new n."""
    half = n // 2
    keep = np.concatenate([np.arange(0, half, 2), np.arange(half, n)])
    m = keep.size
    steps[:m] = steps[keep]
    for col in cols.values():
        col[:m] = col[keep]
    return m
