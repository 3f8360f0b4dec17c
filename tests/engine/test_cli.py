"""`python -m engine run`: progress lines, overrides, the history CSV, and error exits (2 with
one "error: ..." line for bad input, 1 for a diverged run), never a traceback."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import cli

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "resources" / "experiments"
SPIRAL = EXPERIMENTS / "spiral_tanh.toml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """engine.cli.main in-process: (exit status, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse and --set parsing exit this way
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def progress_rows(out: str) -> list[list[str]]:
    """The progress table's data rows (lines that start with a step number)."""
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def header(out: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == ["step"])


def expected_snapshot(path: Path, steps: int, **dotted):
    session = engine.session_from_toml(path)
    if dotted:
        session.update_config(session.config.replace(**dotted))
    return session, session.step(steps)


# -- a normal run -------------------------------------------------------------------------
def test_run_prints_a_header_and_a_progress_line_every_k_steps(capsys):
    code, out, err = run(capsys, "run", SPIRAL, "--steps", 50, "--every", 10)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("# Spiral, tanh, Xavier: 480 training points, 5 layers")
    assert "50 steps of batch 32" in lines[0]
    assert header(out) == ["step", "loss", "lr", "grad_norm", "g[hidden", "1]", "g[hidden",
                           "3]", "g[output]"]
    rows = progress_rows(out)
    assert [int(r[0]) for r in rows] == [10, 20, 30, 40, 50]
    assert all(len(r) == 7 for r in rows)  # step, loss, lr, global and three layer norms
    assert all(math.isfinite(float(v)) for r in rows for v in r)
    session, snap = expected_snapshot(SPIRAL, 50)
    last = rows[-1]
    assert float(last[1]) == pytest.approx(snap.loss, rel=1e-3)
    assert float(last[2]) == 0.05
    g = snap.layer_grad_norm
    assert [float(v) for v in last[4:]] == pytest.approx([g[0], g[2], g[4]], rel=1e-3)
    assert "# done: 50 steps" in out and "train accuracy" in out


def test_set_overrides_a_field(capsys):
    code, out, err = run(capsys, "run", SPIRAL, "--steps", 20, "--every", 10,
                         "--set", "optimizer.learning_rate=0.1", "--set", "optimizer.name=adam")
    assert code == 0 and err == ""
    rows = progress_rows(out)
    assert [float(r[2]) for r in rows] == [0.1, 0.1]
    _, snap = expected_snapshot(SPIRAL, 20, **{"optimizer.learning_rate": 0.1,
                                               "optimizer.name": "adam"})
    assert float(rows[-1][1]) == pytest.approx(snap.loss, rel=1e-3)


def test_out_writes_the_per_step_history_as_csv(capsys, tmp_path):
    path = tmp_path / "history.csv"
    code, out, _ = run(capsys, "run", SPIRAL, "--steps", 50, "--every", 25, "--out", path)
    assert code == 0 and f"# history written to {path}" in out
    with path.open(newline="") as fh:
        table = list(csv.reader(fh))
    head, body = table[0], table[1:]
    assert head[:6] == ["step", "loss", "data_loss", "lr", "grad_norm", "grad_norm_clipped"]
    assert "grad_w_hidden_1" in head and "update_ratio_output" in head
    assert len(body) == 50 and all(len(r) == len(head) for r in body)
    assert [int(r[0]) for r in body] == list(range(1, 51))
    values = [[float(v) for v in r[1:]] for r in body]  # every cell is a plain number
    assert all(math.isfinite(v) for r in values for v in r)
    session, _ = expected_snapshot(SPIRAL, 50)
    assert [r[0] for r in values] == session.history.loss.tolist()  # exact round trip
    assert [f.name for f in tmp_path.iterdir()] == ["history.csv"]


def test_list_names_every_registry_entry(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for registry in (engine.DATASETS, engine.ACTIVATIONS, engine.OPTIMIZERS,
                     engine.SCHEDULES, engine.INITIALIZERS, engine.LOSSES, engine.CLIP_KINDS):
        for key in registry:
            assert f"  {key} " in out, key


# -- errors -------------------------------------------------------------------------------
def _bad_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (lambda t: ["run", t / "missing.toml"], "missing.toml: no such file"),
        (lambda t: ["run", t], "is a folder"),
        (lambda t: ["run", _bad_file(t, "[network\nwidth = 3")], "not valid TOML"),
        (lambda t: ["run", _bad_file(t, "[network]\nwidht = 3\n")],
         "unknown field 'network.widht' in network (did you mean 'network.width'?)"),
        (lambda t: ["run", _bad_file(t, "[network]\nwidth = 0\n")],
         "network.width must be >= 1, got 0"),
        (lambda t: ["run", SPIRAL, "--set", "optimizer.learning_rate=-1"],
         "optimizer.learning_rate must be > 0, got -1.0"),
        (lambda t: ["run", SPIRAL, "--set", "optimizer.name=adma"], "did you mean 'adam'"),
        (lambda t: ["run", SPIRAL, "--set", "optimizer.lerning_rate=0.1"],
         "unknown field 'optimizer.lerning_rate'"),
        (lambda t: ["run", SPIRAL, "--set", "optimizer.learning_rate"],
         "--set needs key=value, got 'optimizer.learning_rate'"),
        (lambda t: ["run", SPIRAL, "--steps", "0"], "--steps must be >= 1, got 0"),
        (lambda t: ["run", SPIRAL, "--steps", "-5"], "--steps must be >= 1, got -5"),
        (lambda t: ["run", SPIRAL, "--out", t / "no_such_folder" / "h.csv"], "--out"),
        (lambda t: ["run", SPIRAL, "--out", t], "--out"),
    ],
    ids=["missing", "folder", "bad-toml", "unknown-field", "range-in-file", "range-via-set",
         "bad-name-via-set", "unknown-via-set", "set-without-equals", "steps-0", "steps-neg",
         "out-no-folder", "out-is-folder"],
)
def test_bad_input_exits_2_with_one_error_line(capsys, tmp_path, args, fragment):
    code, out, err = run(capsys, *args(tmp_path))
    assert code == 2
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err + out
    assert progress_rows(out) == []  # nothing was trained


def test_diverging_run_exits_1_with_the_divergence_message(capsys, tmp_path):
    path = tmp_path / "h.csv"
    code, out, err = run(capsys, "run", EXPERIMENTS / "exploding_lr.toml", "--steps", 100,
                         "--every", 10, "--out", path)
    assert code == 1 and "Traceback" not in err
    session, snap = expected_snapshot(EXPERIMENTS / "exploding_lr.toml", 100)
    d = snap.divergence
    assert f"# {d.message}" in out.splitlines()
    assert f"Training diverged at step {d.step}" in out
    assert [int(r[0]) for r in progress_rows(out)] == [d.step - 1]
    with path.open() as fh:
        assert len(list(csv.reader(fh))) == 1 + d.step - 1  # the finite steps


# -- as a program -------------------------------------------------------------------------
def _python_m_engine(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_m_engine_run(tmp_path):
    done = _python_m_engine("run", SPIRAL, "--steps", 50, "--every", 10, "--out", "h.csv",
                            cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [int(r[0]) for r in progress_rows(done.stdout)] == [10, 20, 30, 40, 50]
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 51


def test_python_m_engine_bad_input(tmp_path):
    done = _python_m_engine("run", "missing.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: missing.toml: no such file\n"
    assert done.stdout == ""
