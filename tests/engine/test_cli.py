"""`python -m engine run`: progress lines (a progress bar on a terminal), overrides, the
history CSV, TensorBoard logs read back, and error exits (2 with one "error: ..." line for bad
input, 1 for a diverged run, 130 for Ctrl+C), never a traceback."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert "\r" not in out  # not a terminal: plain lines, no progress bar


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


# -- on a terminal ------------------------------------------------------------------------
class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run_on_terminal(monkeypatch, capsys, *argv) -> tuple[int, str]:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    code, _, err = run(capsys, *argv)
    assert err == ""
    return code, terminal.getvalue()


BAR = re.compile(r"^\s*(\d+)% \[([#-]+)\] (\d+)/(\d+)  (\S+) steps/s  ETA (\S+)  loss (\S+)\s*$")


def test_a_terminal_gets_one_self_updating_progress_line_then_the_summary(monkeypatch, capsys):
    monkeypatch.setattr(cli.ProgressBar, "REDRAW", 0.0)  # redraw at every stop
    code, out = run_on_terminal(monkeypatch, capsys, "run", SPIRAL, "--steps", 50)
    assert code == 0
    first, rest = out.split("\n", 1)
    assert first.startswith("# Spiral, tanh, Xavier")
    bar_line, summary = rest.split("\n", 1)
    frames = [BAR.match(f) for f in bar_line.split("\r")[1:]]
    assert len(frames) > 10 and all(frames)  # every redraw is a whole bar
    steps = [int(f[3]) for f in frames]
    assert steps[0] == 0 and steps[-1] == 50 and steps == sorted(steps)
    assert all(int(f[4]) == 50 for f in frames)
    assert [int(f[1]) for f in frames] == [100 * s // 50 for s in steps]
    bars = [f[2] for f in frames]
    assert len(set(map(len, bars))) == 1  # the bar keeps its length
    assert bars[0].count("#") == 0 and bars[-1].count("-") == 0
    _, snap = expected_snapshot(SPIRAL, 50)
    last = frames[-1]
    assert float(last[7]) == pytest.approx(snap.loss, rel=1e-3)
    assert float(last[5].replace(",", "")) > 0 and last[6] == "00:00"
    assert header_free(out)  # no table on a terminal
    lines = summary.splitlines()
    assert lines[0].startswith("# done: 50 steps in ") and " steps/s" in lines[0]
    assert lines[1].startswith("# train loss ") and "validation accuracy" in lines[1]


def header_free(out: str) -> bool:
    return all(line.split()[:1] != ["step"] for line in out.splitlines())


def test_no_progress_prints_plain_lines_on_a_terminal(monkeypatch, capsys):
    code, out = run_on_terminal(monkeypatch, capsys, "run", SPIRAL, "--steps", 20, "--every",
                                10, "--no-progress")
    assert code == 0 and "\r" not in out
    assert [int(r[0]) for r in progress_rows(out)] == [10, 20]


@pytest.mark.parametrize("terminal", [True, False])
def test_quiet_prints_only_the_summary(monkeypatch, capsys, terminal):
    if terminal:
        code, out = run_on_terminal(monkeypatch, capsys, "run", SPIRAL, "--steps", 20, "-q")
    else:
        code, out, _ = run(capsys, "run", SPIRAL, "--steps", 20, "--quiet")
    assert code == 0 and "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("# done: 20 steps") and lines[1].startswith("# train loss")


def test_a_diverging_run_ends_the_bar_and_says_why(monkeypatch, capsys):
    code, out = run_on_terminal(monkeypatch, capsys, "run", EXPERIMENTS / "exploding_lr.toml",
                                "--steps", 100)
    assert code == 1
    _, snap = expected_snapshot(EXPERIMENTS / "exploding_lr.toml", 100)
    bar_line = out.split("\n")[1]
    assert BAR.match(bar_line.split("\r")[-1])[3] == str(snap.step)
    assert out.splitlines()[-1] == f"# {snap.divergence.message}"


# -- TensorBoard --------------------------------------------------------------------------
def read_events(folder: Path):
    """The one event file in `folder`, every scalar and histogram loaded."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag: str) -> tuple[list[int], list[float]]:
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


LAYERS = ["hidden_1", "hidden_2", "hidden_3", "hidden_4", "output"]


def test_tensorboard_logs_read_back(capsys, tmp_path):
    logdir = tmp_path / "logs" / "spiral"  # made, parents and all
    code, out, err = run(capsys, "run", SPIRAL, "--steps", 120, "--tensorboard", logdir)
    assert code == 0 and err == ""
    assert f"# TensorBoard logs written to {logdir}" in out
    acc = read_events(logdir)
    session, _ = expected_snapshot(SPIRAL, 120)
    session.evaluate()  # the command line's summary evaluates at the end
    h = session.history

    # every step (a short run is not thinned); float32 in the file
    for tag, column in [("lr", h.lr), ("loss/minibatch", h.loss),
                        ("grad_norm/global", h.grad_norm)]:
        steps, values = scalars(acc, tag)
        assert steps == list(range(1, 121)), tag
        assert values == pytest.approx(column.tolist(), rel=1e-6), tag
    layer_norms = np.hypot(h.grad_w, h.grad_b)  # (steps, layers)
    for l, name in enumerate(LAYERS):
        steps, values = scalars(acc, f"grad_norm/{name}")
        assert steps == list(range(1, 121))
        assert values == pytest.approx(layer_norms[:, l].tolist(), rel=1e-6)

    # evaluations: at the start, every run.eval_every (50) steps and at the end
    assert h.eval_steps.tolist() == [0, 50, 100, 120]
    for tag, column in [("loss/train", h.eval_train_loss), ("loss/validation", h.eval_val_loss),
                        ("accuracy/train", h.eval_train_accuracy),
                        ("accuracy/validation", h.eval_val_accuracy)]:
        steps, values = scalars(acc, tag)
        assert steps == [0, 50, 100, 120], tag
        assert values == pytest.approx(column.tolist(), rel=1e-6), tag

    # histograms per layer, at the evaluation steps and the end
    tags = acc.Tags()["histograms"]
    assert sorted(tags) == sorted([f"{kind}/{n}" for kind in ("weights", "gradients")
                                   for n in LAYERS])
    _, grads = session.loss_and_gradients(session.probe_x, session.probe_y)
    for l, name in enumerate(LAYERS):
        weights, _ = session.get_layer(l)
        for kind, values in (("weights", weights), ("gradients", grads[l][0])):
            events = acc.Histograms(f"{kind}/{name}")
            assert [e.step for e in events] == [0, 50, 100, 120]
            last = events[-1].histogram_value
            assert last.num == values.size and sum(last.bucket) == values.size
            assert (last.min, last.max) == pytest.approx((values.min(), values.max()))


def test_tensorboard_thins_long_runs(capsys, tmp_path, monkeypatch):
    from engine import tensorboard_log

    monkeypatch.setattr(tensorboard_log, "MAX_POINTS", 10)
    monkeypatch.setattr(tensorboard_log, "MAX_LAYER_POINTS", 4)
    monkeypatch.setattr(tensorboard_log, "MAX_HISTOGRAMS", 1)
    code, _, _ = run(capsys, "run", SPIRAL, "--steps", 100, "--every", 30,
                     "--tensorboard", tmp_path)
    assert code == 0
    acc = read_events(tmp_path)
    assert scalars(acc, "lr")[0] == list(range(10, 101, 10))
    assert scalars(acc, "grad_norm/output")[0] == [25, 50, 75, 100]
    assert [e.step for e in acc.Histograms("weights/output")] == [0, 100]
    assert scalars(acc, "loss/validation")[0] == [0, 50, 100]


def test_tensorboard_logs_of_a_diverged_run_are_complete(capsys, tmp_path):
    code, _, _ = run(capsys, "run", EXPERIMENTS / "exploding_lr.toml", "--steps", 100,
                     "--tensorboard", tmp_path)
    assert code == 1
    _, snap = expected_snapshot(EXPERIMENTS / "exploding_lr.toml", 100)
    acc = read_events(tmp_path)
    assert scalars(acc, "lr")[0] == list(range(1, snap.divergence.step))  # the finite steps
    assert acc.Histograms("weights/output")[-1].step == snap.step


def test_ctrl_c_stops_the_run_and_still_writes_everything(capsys, tmp_path, monkeypatch):
    from engine.session import TrainingSession

    real_step = TrainingSession.step
    calls = []

    def step(self, n=1):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self, n)

    monkeypatch.setattr(TrainingSession, "step", step)
    csv_path = tmp_path / "h.csv"
    code, out, err = run(capsys, "run", SPIRAL, "--steps", 100, "--every", 10,
                         "--tensorboard", tmp_path / "tb", "--out", csv_path)
    assert code == 130 and "Traceback" not in err
    assert [int(r[0]) for r in progress_rows(out)] == [10, 20]
    assert "# interrupted: 20 steps in " in out and "# train loss" in out
    assert len(csv_path.read_text().splitlines()) == 1 + 20
    acc = read_events(tmp_path / "tb")
    assert scalars(acc, "lr")[0] == list(range(1, 21))
    assert scalars(acc, "loss/train")[0] == [0, 20]


def test_tensorboard_without_tensorboardx_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    code, out, err = run(capsys, "run", SPIRAL, "--tensorboard", tmp_path)
    assert code == 2 and out == ""
    assert err == ("error: --tensorboard needs the tensorboardX package: "
                   "pip install tensorboardX\n")


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
        (lambda t: ["run", SPIRAL, "--tensorboard", _bad_file(t, "")],
         "--tensorboard: '{t}/bad.toml' is a file, not a folder"),
        (lambda t: ["run", SPIRAL, "--tensorboard", _bad_file(t, "") / "logs"],
         "--tensorboard: cannot make the folder '{t}/bad.toml/logs'"),
    ],
    ids=["missing", "folder", "bad-toml", "unknown-field", "range-in-file", "range-via-set",
         "bad-name-via-set", "unknown-via-set", "set-without-equals", "steps-0", "steps-neg",
         "out-no-folder", "out-is-folder", "tensorboard-is-a-file",
         "tensorboard-under-a-file"],
)
def test_bad_input_exits_2_with_one_error_line(capsys, tmp_path, args, fragment):
    code, out, err = run(capsys, *args(tmp_path))
    assert code == 2
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert fragment.format(t=tmp_path) in err
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
