"""Datasets: the synthetic 2-D registry, CSV import, and the split/standardize/scale pipeline."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import ConfigError, DataConfig

_XY = tuple[np.ndarray, np.ndarray]
Maker = Callable[[np.random.Generator, int, float, int], _XY]


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of `DATASETS`: how to generate a synthetic 2-D dataset."""

    name: str
    task: str  # "classification" or "regression"
    description: str  # one line, shown as the combo box tooltip
    make: Maker  # (rng, n, noise, n_classes) -> x (n, 2) float64, y (n,)


def _class_counts(n: int, k: int) -> np.ndarray:
    """Points per class, as equal as possible: (k,) int64 summing to n."""
    return n // k + (np.arange(k) < n % k).astype(np.int64)


def _labels(n: int, k: int) -> np.ndarray:
    return np.repeat(np.arange(k, dtype=np.int64), _class_counts(n, k))


def _jitter(rng: np.random.Generator, x: np.ndarray, noise: float) -> np.ndarray:
    return x + rng.normal(0.0, 1.0, x.shape) * noise


def _polar(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.column_stack((r * np.cos(t), r * np.sin(t)))


def _make_circle(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    y = _labels(n, 2)
    radius = 5.0
    # Uniform radius (not sqrt) crowds the inner disc towards its centre, as in TF Playground.
    r = np.where(y == 0, rng.uniform(0.0, 0.5 * radius, n), rng.uniform(0.7 * radius, radius, n))
    x = _polar(r, rng.uniform(0.0, 2.0 * np.pi, n))
    return _jitter(rng, x, noise), y


def _make_xor(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    y = _labels(n, 2)
    # Keep a small gap around the axes so that noise = 0 gives clean quadrants.
    mag = rng.uniform(0.3, 5.0, (n, 2))
    sx = rng.choice([-1.0, 1.0], n)
    sy = np.where(y == 1, sx, -sx)  # class 1: x1 * x2 > 0
    x = mag * np.column_stack((sx, sy))
    return _jitter(rng, x, noise), y


def _make_gaussians(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    y = _labels(n, 2)
    centres = np.array([[2.0, 2.0], [-2.0, -2.0]])
    x = centres[y] + rng.normal(0.0, 1.0, (n, 2))
    return _jitter(rng, x, noise), y


def _make_spiral(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    # CS231n: r = linspace(0, 1), t = linspace over 4 radians per arm; the arms here are
    # rotated by 2 pi / k (not by 4 rad) so that any number of arms is evenly spaced.
    y = _labels(n, n_classes)
    parts = []
    for j, count in enumerate(_class_counts(n, n_classes)):
        r = np.linspace(0.0, 1.0, count)
        start = 2.0 * np.pi * j / n_classes
        parts.append(_polar(r, np.linspace(start, start + 4.0, count)))
    x = np.concatenate(parts)
    return _jitter(rng, x, noise), y


def _make_moons(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    y = _labels(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    outer = np.column_stack((np.cos(t), np.sin(t)))
    inner = np.column_stack((1.0 - np.cos(t), 0.5 - np.sin(t)))
    x = np.where((y == 0)[:, None], outer, inner) - np.array([0.5, 0.25])  # centre at 0
    return _jitter(rng, x, noise), y


def _make_plane(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    x = rng.uniform(-6.0, 6.0, (n, 2))
    y = 0.1 * x[:, 0] - 0.05 * x[:, 1]  # in [-0.9, 0.9]
    return x, y + rng.normal(0.0, 1.0, n) * noise


def _make_ripple(rng: np.random.Generator, n: int, noise: float, n_classes: int) -> _XY:
    x = rng.uniform(-6.0, 6.0, (n, 2))
    y = np.sin(1.5 * np.hypot(x[:, 0], x[:, 1]))  # concentric rings, about two periods
    return x, y + rng.normal(0.0, 1.0, n) * noise


_C, _R = "classification", "regression"
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("circle", _C, "A disc inside a ring: 2 classes", _make_circle),
        DatasetSpec("xor", _C, "Four quadrants, opposite corners alike: 2 classes", _make_xor),
        DatasetSpec("gaussians", _C, "Two Gaussian blobs: 2 classes", _make_gaussians),
        DatasetSpec("spiral", _C, "Interleaved spiral arms: one class per arm", _make_spiral),
        DatasetSpec("moons", _C, "Two interleaving half circles: 2 classes", _make_moons),
        DatasetSpec("plane", _R, "Regression on a tilted plane: y = 0.1 x1 - 0.05 x2", _make_plane),
        DatasetSpec("ripple", _R, "Regression on concentric ripples: y = sin(1.5 r)", _make_ripple),
    )
}


def _frozen(a: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.array(a, dtype=dtype, order="C", copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == has no single truth
class Dataset:
    """A train/validation split ready for a model, plus how raw inputs were mapped to it.

    Model inputs are ``(x_raw - mean) / std * scale``; `transform` applies that mapping.
    Arrays are C-contiguous, read-only copies: float64, labels int64.
    """

    x_train: np.ndarray  # (n_train, d)
    y_train: np.ndarray  # (n_train,) int64 labels or float64 targets
    x_val: np.ndarray  # (n_val, d); n_val may be 0
    y_val: np.ndarray  # (n_val,)
    task: str  # "classification" or "regression"
    n_classes: int  # 0 for regression
    feature_names: tuple[str, ...]
    target_name: str
    class_names: tuple[str, ...]  # () for regression
    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)

    def __post_init__(self) -> None:
        ydtype = np.int64 if self.task == "classification" else np.float64
        for name in ("x_train", "x_val", "mean", "std", "scale"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64))
        for name in ("y_train", "y_val"):
            object.__setattr__(self, name, _frozen(getattr(self, name), ydtype))

    @property
    def n_features(self) -> int:
        """Number of input features d."""
        return int(self.x_train.shape[1])

    def transform(self, x_raw: np.ndarray) -> np.ndarray:
        """Map raw data coordinates to model inputs.

        Parameters
        ----------
        x_raw : (..., d) array_like
            Points in the units of the original data (e.g. a grid for a decision boundary).

        Returns
        -------
        (..., d) float64 ndarray
            ``(x_raw - mean) / std * scale``, a new writable array.
        """
        x = np.asarray(x_raw, dtype=np.float64)
        return np.ascontiguousarray((x - self.mean) / self.std * self.scale)


_Loaded = tuple[np.ndarray, np.ndarray, str, tuple[str, ...], str, tuple[str, ...]]


def _load(config: DataConfig, rng: np.random.Generator) -> _Loaded:
    """(x, y, task, feature_names, target_name, class_names), as `read_csv` returns them."""
    if config.dataset == "csv":
        return read_csv(config.csv_path, config.csv_target, config.csv_task)
    spec = DATASETS.get(config.dataset)
    if spec is None:
        raise ConfigError(
            f"data.dataset must be one of {', '.join(DATASETS)}, csv; got {config.dataset!r}"
        )
    if config.n_samples < 2:
        raise ConfigError(f"data.n_samples must be >= 2, got {config.n_samples!r}")
    x, y = spec.make(rng, config.n_samples, config.noise, config.n_classes)
    if spec.task == "regression":
        return x, y, spec.task, ("x1", "x2"), "y", ()
    k = config.n_classes if spec.name == "spiral" else 2
    return x, y, spec.task, ("x1", "x2"), "label", tuple(str(i) for i in range(k))


def make_dataset(config: DataConfig, seed: int) -> Dataset:
    """Generate or read the data, shuffle, split, standardize and scale it.

    Parameters
    ----------
    config : DataConfig
        Which dataset and how to prepare it.
    seed : int
        Seeds generation and the shuffle; the same seed gives bit-identical arrays.

    Returns
    -------
    Dataset
        Statistics for standardizing come from the training part only.

    Raises
    ------
    ConfigError
        Unknown dataset, too few samples, an unreadable CSV file, or `scale_feature` not
        naming a feature.
    """
    rng = np.random.default_rng(seed)
    x, y, task, feature_names, target_name, class_names = _load(config, rng)
    n, d = x.shape
    if not 0 <= config.scale_feature < d:
        raise ConfigError(
            f"data.scale_feature must be < number of features ({d}), got {config.scale_feature!r}"
        )
    order = rng.permutation(n)
    x, y = x[order], y[order]
    n_val = min(max(int(round(config.validation_fraction * n)), 0), n - 1)
    n_train = n - n_val

    mean, std = np.zeros(d), np.ones(d)
    if config.standardize:
        mean = x[:n_train].mean(axis=0)
        std = x[:n_train].std(axis=0)
        std[std == 0.0] = 1.0  # a constant feature stays constant (0) instead of NaN
    scale = np.ones(d)
    scale[config.scale_feature] = config.scale_factor

    inputs = (x - mean) / std * scale  # (n, d)
    return Dataset(
        x_train=inputs[:n_train],
        y_train=y[:n_train],
        x_val=inputs[n_train:],
        y_val=y[n_train:],
        task=task,
        n_classes=len(class_names) if task == "classification" else 0,
        feature_names=feature_names,
        target_name=target_name,
        class_names=class_names,
        mean=mean,
        std=std,
        scale=scale,
    )


# -- CSV ----------------------------------------------------------------------------------
MAX_AUTO_CLASSES = 20  # "auto": an integer target with at most this many values is a label


def _read_text(path: Path) -> str:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:  # utf-8-sig drops a BOM
            return fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a CSV file") from None
    except OSError as exc:  # e.g. no permission; on Windows also a folder
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason})"
        ) from None


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;").delimiter
    except csv.Error:
        return ","


def _parse_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _cell_error(name: str, line: int, col: str, cell: str, why: str) -> ConfigError:
    return ConfigError(f"{name} line {line}, column {col!r}: {cell!r} is not {why}")


def _number(cell: str, name: str, line: int, col: str) -> float:
    v = _parse_number(cell)
    if v is None:
        raise _cell_error(name, line, col, cell, "a number")
    if not math.isfinite(v):
        raise _cell_error(name, line, col, cell, "a finite number")
    return v


def _rows(text: str, name: str) -> tuple[list[str], int, list[tuple[int, list[str]]]]:
    """Header, its line number, and (line number, cells) rows; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text), delimiter=_sniff_delimiter(text), strict=True)
    header: list[str] = []
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    line = 1  # where the row being read starts (a quoted field may span lines)
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if not cells or cells == [""]:
                pass
            elif not header:
                header, header_line = cells, line
            elif len(cells) != len(header):
                raise ConfigError(
                    f"{name} line {line}: expected {len(header)} values "
                    f"(as in the header), found {len(cells)}"
                )
            else:
                rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        hint = " (a quoted field is never closed)" if "end of data" in str(exc) else ""
        raise ConfigError(f"{name} line {line}: {exc}{hint}") from None
    if not header:
        raise ConfigError(f"{name}: the file is empty")
    return header, header_line, rows


def _check_header(header: list[str], name: str, line: int) -> None:
    where = f"{name} line {line}"
    if all(_parse_number(c) is not None for c in header):
        raise ConfigError(
            f"{where}: the first line must be a header naming the columns, "
            f"found only numbers ({', '.join(header)})"
        )
    for i, col in enumerate(header):
        if not col:
            raise ConfigError(f"{where}: column {i + 1} has no name in the header")
        if col in header[:i]:
            raise ConfigError(f"{where}: column name {col!r} appears twice")
    if len(header) < 2:
        raise ConfigError(
            f"{where}: needs at least one feature column and a target column, found only "
            f"{header[0]!r} (columns are separated by ',' or ';')"
        )


def _read_target(
    cells: list[tuple[int, str]], task: str, name: str, col: str
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Target cells -> (y, task, class_names); y int64 labels or float64 values."""
    text = [(line, c) for line, c in cells if _parse_number(c) is None]
    values = None if text else [_number(c, name, line, col) for line, c in cells]
    if task == "auto":
        integral = values is not None and all(v.is_integer() for v in values)
        few = values is not None and len(set(values)) <= MAX_AUTO_CLASSES
        task = "regression" if values is not None and not (integral and few) else _C
    if task == "regression":
        if values is None:
            line, cell = text[0]
            raise _cell_error(
                name, line, col, cell, "a number; a regression target must be numeric"
            )
        return np.array(values, dtype=np.float64), task, ()
    keys: list = [c for _, c in cells] if values is None else values
    classes = sorted(set(keys))
    if values is None:
        class_names = tuple(classes)
    else:
        class_names = tuple(str(int(v)) if v.is_integer() else f"{v:g}" for v in classes)
    if len(classes) < 2:
        raise ConfigError(
            f"{name}: column {col!r} has only one class ({class_names[0]!r}); "
            "classification needs at least 2"
        )
    index = {key: i for i, key in enumerate(classes)}
    return np.array([index[k] for k in keys], dtype=np.int64), task, class_names


def read_csv(path: str | Path, target: str = "", task: str = "auto") -> _Loaded:
    """Read a table of numeric features and one target column.

    Parameters
    ----------
    path : str or Path
        A UTF-8 text file (a BOM is allowed) with a header row; ',' or ';' separated.
    target : str
        The target column's name; "" means the last column.
    task : {"auto", "classification", "regression"}
        "auto" picks classification for a text target or an integer target with at most
        20 distinct values, regression otherwise.

    Returns
    -------
    x : (n, d) float64 ndarray
    y : (n,) int64 labels 0..k-1 (classes in sorted order) or float64 targets
    task : str
    feature_names : tuple of str, length d
    target_name : str
    class_names : tuple of str, length k; () for regression

    Raises
    ------
    ConfigError
        Naming the file, and the line and column where there is one.
    """
    path = Path(path)
    if task not in ("auto", "classification", "regression"):
        raise ConfigError(
            f"data.csv_task must be one of auto, classification, regression; got {task!r}"
        )
    name = path.name
    header, header_line, rows = _rows(_read_text(path), name)
    _check_header(header, name, header_line)
    target = target.strip() or header[-1]
    if target not in header:
        raise ConfigError(
            f"{name}: no column named {target!r}; the columns are {', '.join(header)}"
        )
    if len(rows) < 2:
        found = "has a header but no data rows" if not rows else "has only 1 data row"
        raise ConfigError(f"{name}: {found}; at least 2 are needed")

    t = header.index(target)
    features = [i for i in range(len(header)) if i != t]
    x = np.array(
        [[_number(cells[i], name, line, header[i]) for i in features] for line, cells in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(features))  # (n, d)
    y, task, class_names = _read_target([(ln, c[t]) for ln, c in rows], task, name, target)
    return x, y, task, tuple(header[i] for i in features), target, class_names
