"""Saving and restoring a whole session, so a paused run resumes bit for bit.

The file is a numpy .npz archive: the configuration as TOML text, the data actually used,
parameters, optimizer state, batch-norm statistics, the batch-order generator's state and
position, and the history. It is written to a temporary file and renamed.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from engine import config as config_io
from engine.config import ConfigError
from engine.files import atomic_write_bytes
from engine.snapshot import EvalResult

FORMAT_VERSION = 1


def session_state(session) -> dict:
    """Everything needed to resume `session`, as a dict of arrays and plain values."""
    m, o, ds = session.model, session.optimizer, session.dataset
    state = {
        "format_version": FORMAT_VERSION,
        "config_toml": config_io.dumps(session.config),
        "theta": m.theta.copy(),
        "initial_theta": session.initial_theta.copy(),
        "opt_s1": o.s1.copy(),
        "opt_s2": o.s2.copy(),
        "opt_t": int(o.t[0]),
        "run_mean": m.run_mean.copy(),
        "run_var": m.run_var.copy(),
        "batch_rng": json.dumps(session._batch_rng.bit_generator.state),
        "perm": session._perm.copy(),
        "pos": int(session._pos),
        "step_count": int(session.step_count),
        "samples_seen": int(session.samples_seen),
        "x_train": np.asarray(ds.x_train), "y_train": np.asarray(ds.y_train),
        "x_val": np.asarray(ds.x_val), "y_val": np.asarray(ds.y_val),
        "data_meta": json.dumps({
            "task": ds.task, "n_classes": int(ds.n_classes),
            "feature_names": list(ds.feature_names), "target_name": ds.target_name,
            "class_names": list(ds.class_names),
        }),
        "data_mean": np.asarray(ds.mean), "data_std": np.asarray(ds.std),
        "data_scale": np.asarray(ds.scale),
    }
    state.update({f"history_{k}": v for k, v in session.history.state_dict().items()})
    return state


def load_session_state(session, state: dict) -> None:
    """Put a state from `session_state` into a session built from the same configuration."""
    m, o = session.model, session.optimizer
    for name, target in (("theta", m.theta), ("opt_s1", o.s1), ("opt_s2", o.s2),
                         ("run_mean", m.run_mean), ("run_var", m.run_var)):
        value = np.asarray(state[name], dtype=np.float64)
        if value.shape != target.shape:
            raise ConfigError(
                f"saved {name} has shape {value.shape}, the network needs {target.shape}"
            )
        target[:] = value
    session.initial_theta = np.asarray(state["initial_theta"], dtype=np.float64).copy()
    o.t[0] = int(state["opt_t"])
    session._batch_rng.bit_generator.state = json.loads(str(state["batch_rng"]))
    session._perm = np.asarray(state["perm"], dtype=np.int64).copy()
    session._pos = int(state["pos"])
    session.step_count = int(state["step_count"])
    session.samples_seen = int(state["samples_seen"])
    history = {k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")}
    session.history.load_state_dict(history)
    session._last_row = None
    if len(session.history):
        h = session.history
        session._last_row = {
            "loss": h.loss[-1], "data_loss": h.data_loss[-1], "lr": h.lr[-1],
            "grad_norm": h.grad_norm[-1], "grad_norm_clipped": h.grad_norm_clipped[-1],
            "clipped": h.clipped[-1], "grad_w": h.grad_w[-1].copy(),
            "grad_b": h.grad_b[-1].copy(), "weight_norm": h.weight_norm[-1].copy(),
            "update_ratio": h.update_ratio[-1].copy(),
        }
    session.divergence = None
    # The latest evaluation comes from the saved history: evaluating again here would add
    # a row the paused run never had, and the resumed history would differ from it.
    h = session.history
    if h.eval_steps.size:
        session.last_eval = EvalResult(
            int(h.eval_steps[-1]), float(h.eval_train_loss[-1]),
            float(h.eval_train_accuracy[-1]), float(h.eval_val_loss[-1]),
            float(h.eval_val_accuracy[-1]),
        )
    else:
        session.evaluate()
    session.probe()


def save_session(session, path) -> None:
    buffer = io.BytesIO()
    state = session_state(session)
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in state.items()})
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_session(path):
    """A TrainingSession restored from a file written by `save_session`.

    Anything wrong with the file (missing, not an archive, truncated, parts missing or of
    the wrong shape) is a ConfigError that names the file.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # a plain .npy array, not an archive
            raise ValueError("a single array, not an archive")
        with archive:
            state = {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"{path}: not a Gradient Lab session file ({exc})") from None
    try:
        return _session_from_state(state)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except KeyError as exc:
        raise ConfigError(f"{path}: not a Gradient Lab session file (missing {exc})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a Gradient Lab session file ({exc})") from None


def _session_from_state(state: dict):
    from engine.data import Dataset
    from engine.session import TrainingSession

    missing = [k for k in ("format_version", "config_toml", "theta", "data_meta")
               if k not in state]
    if missing:
        raise ConfigError(f"not a Gradient Lab session file (missing {missing[0]})")
    if int(state["format_version"]) > FORMAT_VERSION:
        raise ConfigError(f"written by a newer Gradient Lab (format "
                          f"{int(state['format_version'])})")
    config = config_io.loads(str(state["config_toml"]))
    meta = json.loads(str(state["data_meta"]))
    saved = Dataset(
        x_train=state["x_train"], y_train=state["y_train"], x_val=state["x_val"],
        y_val=state["y_val"], task=meta["task"], n_classes=meta["n_classes"],
        feature_names=tuple(meta["feature_names"]), target_name=meta["target_name"],
        class_names=tuple(meta["class_names"]), mean=state["data_mean"],
        std=state["data_std"], scale=state["data_scale"],
    )
    session = TrainingSession(config, dataset=saved)
    load_session_state(session, state)
    return session
