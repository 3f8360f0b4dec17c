"""Training and gradient-flow views fed with frames of real engine sessions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

import engine
from desktop_app import theme
from desktop_app.messages import Frame, HistoryDelta, make_delta, make_run_info
from desktop_app.views.gradient_flow import (
    HEATMAP_COLUMNS,
    GradientFlowView,
    PooledColumns,
    judge_flow,
)
from desktop_app.views.training import GrowingColumns, LearningRateView, LossView

EXPERIMENTS = Path(__file__).resolve().parents[2] / "resources" / "experiments"


@pytest.fixture(scope="module", autouse=True)
def _pyqtgraph_options(qapp):
    theme.configure_pyqtgraph()


class Feed:
    """A real session and the frames the worker would publish after each chunk of steps."""

    def __init__(self, name: str, **changes):
        config = engine.load_config(EXPERIMENTS / f"{name}.toml")
        if changes:
            config = config.replace(**changes)
        self.session = engine.TrainingSession(config)
        self.info = make_run_info(self.session)
        self.last_step, self.last_eval = 0, -1

    def frame(self) -> Frame:
        delta = make_delta(self.session, self.last_step, self.last_eval)
        self.last_step = self.session.step_count
        if delta.eval_steps.size:
            self.last_eval = int(delta.eval_steps[-1])
        return Frame(snapshot=self.session.snapshot(), delta=delta, boundary=None,
                     steps_per_second=0.0, running=True)

    def run(self, view, chunks=(30, 70, 125)):
        view.set_run(self.info)
        view.show_frame(self.frame())
        for n in chunks:
            self.session.step(n)
            view.show_frame(self.frame())
        return self.session


def brush_color(brush) -> str:
    return pg.mkBrush(brush).color().name()


# -- loss ------------------------------------------------------------------------------------
def test_loss_curve_holds_exactly_the_steps_trained(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    session = Feed("sigmoid_deep").run(view)
    x, y = view.step_curve.xData, view.step_curve.yData
    assert len(x) == len(y) == session.step_count == 225
    assert x[-1] == session.step_count
    np.testing.assert_array_equal(x, np.arange(1, 226))
    np.testing.assert_array_equal(y, session.history.loss)


def test_validation_points_appear_at_evaluation_steps(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    session = Feed("spiral_tanh").run(view)
    h = session.history
    np.testing.assert_array_equal(view.val_curve.xData, [0, 50, 100, 150, 200])
    np.testing.assert_array_equal(view.val_curve.yData, h.eval_val_loss)
    np.testing.assert_array_equal(view.train_curve.yData, h.eval_train_loss)
    np.testing.assert_allclose(view.val_acc_curve.yData, 100 * h.eval_val_accuracy)


def test_accuracy_plot_only_for_classification(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    view.set_run(Feed("spiral_tanh").info)
    assert view.accuracy_plot.isVisibleTo(view)
    Feed("exploding_lr").run(view, chunks=(20,))  # regression; diverges on the way
    assert not view.accuracy_plot.isVisibleTo(view)


def test_loss_log_scale_is_on_by_default_and_toggles(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    axis = view.loss_plot.getPlotItem().getAxis("left")
    assert view.log_checkbox.isChecked() and axis.logMode
    view.log_checkbox.setChecked(False)
    assert not axis.logMode


def _synthetic_frame(feed: Feed, loss: np.ndarray) -> Frame:
    n, layers = loss.size, feed.info.n_layers
    z = np.zeros(0)
    delta = HistoryDelta(np.arange(1, n + 1), loss, np.full(n, 0.1), np.ones(n),
                         np.ones((n, layers)), np.ones((n, layers)), np.zeros(0, np.int64),
                         z, z, z, z)
    return Frame(feed.session.snapshot(), delta, None, 0.0, True)


def test_oscillating_loss_shows_in_the_rise_strip(qtbot):
    view = LossView()
    qtbot.addWidget(view)
    feed = Feed("sigmoid_deep")
    view.set_run(feed.info)
    view.show_frame(_synthetic_frame(feed, np.tile([1.0, 2.0], 50)))  # up, down, up, ...
    assert np.nanmean(view.rise_curve.yData[20:]) == pytest.approx(0.5, abs=0.03)
    view.set_run(feed.info)
    view.show_frame(_synthetic_frame(feed, np.linspace(2.0, 1.0, 100)))  # steady descent
    assert np.nanmax(view.rise_curve.yData) == 0


def test_long_runs_keep_recent_steps_whole_and_spikes_visible():
    buffer = GrowingColumns(("step", "loss"), capacity=16, max_rows=1000, guide="loss")
    loss = np.ones(5000)
    loss[100] = 50.0  # an early spike
    for chunk in np.array_split(np.arange(5000), 50):
        buffer.append(step=chunk + 1.0, loss=loss[chunk])
    assert len(buffer) <= 1000
    steps = buffer["step"]
    assert np.all(np.diff(steps) > 0) and steps[-1] == 5000
    np.testing.assert_array_equal(steps[-400:], np.arange(4601, 5001))  # recent: every step
    assert buffer["loss"].max() == 50.0


# -- learning rate ---------------------------------------------------------------------------
def test_planned_schedule_is_drawn_before_training_and_marker_follows(qtbot):
    view = LearningRateView()
    qtbot.addWidget(view)
    feed = Feed("spiral_tanh", **{"schedule.name": "cosine", "schedule.total_steps": 3000})
    view.set_run(feed.info)
    steps = feed.session.config.run.steps
    assert len(view.planned_curve.xData) == steps
    assert view.planned_curve.xData[0] == 1 and view.planned_curve.xData[-1] == steps
    np.testing.assert_array_equal(view.planned_curve.yData, feed.info.lr_curve)
    assert view.step_marker.value() == 0
    for n in (40, 80):
        feed.session.step(n)
        view.show_frame(feed.frame())
        assert view.step_marker.value() == feed.session.step_count
    np.testing.assert_array_equal(view.used_curve.xData, np.arange(1, 121))
    np.testing.assert_array_equal(view.used_curve.yData, feed.session.history.lr)
    np.testing.assert_allclose(view.used_curve.yData, feed.info.lr_curve[:120])


def test_changing_the_schedule_mid_run_redraws_the_plan_and_keeps_the_past(qtbot):
    view = LearningRateView()
    qtbot.addWidget(view)
    feed = Feed("spiral_tanh")
    view.set_run(feed.info)
    feed.session.step(100)
    view.show_frame(feed.frame())
    feed.session.set_learning_rate(0.01)
    view.set_planned(feed.session.lr_curve())
    np.testing.assert_allclose(view.planned_curve.yData, 0.01)
    np.testing.assert_allclose(view.used_curve.yData, 0.05)  # what was really used
    assert len(view.used_curve.xData) == 100


def test_learning_rate_log_scale_is_off_by_default_and_toggles(qtbot):
    view = LearningRateView()
    qtbot.addWidget(view)
    axis = view.plot_widget.getPlotItem().getAxis("left")
    assert not view.log_checkbox.isChecked() and not axis.logMode
    view.log_checkbox.setChecked(True)
    assert axis.logMode


# -- gradient flow ---------------------------------------------------------------------------
def test_one_bar_per_layer_with_height_log10_of_the_norm(qtbot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    session = Feed("sigmoid_deep").run(view)
    norms = session.snapshot().layer_grad_norm
    opts = view.norm_bars.opts
    np.testing.assert_array_equal(opts["x"], np.arange(session.n_layers))
    np.testing.assert_allclose(opts["y1"], np.log10(norms))
    ratios = session.snapshot().layer_update_ratio
    np.testing.assert_allclose(view.ratio_bars.opts["y1"], np.log10(ratios))


def test_deep_sigmoid_vanishes_at_the_input_and_says_so(qtbot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    Feed("sigmoid_deep").run(view)
    colors = [brush_color(b) for b in view.norm_bars.opts["brushes"]]
    assert colors[0] == theme.VANISHING and colors[-1] == theme.HEALTHY
    text = view.verdict_label.text()
    assert "vanish" in text and "hidden 1" in text


def test_relu_with_he_init_is_healthy(qtbot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    Feed("relu_he").run(view)
    colors = [brush_color(b) for b in view.norm_bars.opts["brushes"]]
    assert colors[0] == theme.HEALTHY
    assert theme.VANISHING not in colors
    text = view.verdict_label.text()
    assert "healthy" in text and "vanish" not in text


def test_too_large_learning_rate_explodes(qtbot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    session = Feed("exploding_lr").run(view, chunks=(20,))
    assert session.diverged
    assert theme.EXPLODING in [brush_color(b) for b in view.norm_bars.opts["brushes"]]
    assert "explode" in view.verdict_label.text()


def test_verdict_rules():
    names = ("hidden 1", "hidden 2", "output")
    assert judge_flow([0.4, 0.5, 1.0], names).kind == "healthy"
    vanishing = judge_flow([1e-7, 1e-3, 1.0], names)
    assert vanishing.states == ("vanishing", "healthy", "healthy")
    assert "10⁻⁷" in vanishing.text
    exploding = judge_flow([5e4, 10.0, 1.0], names)
    assert exploding.states[0] == "exploding" and "hidden 1" in exploding.text
    assert judge_flow([0.0, 0.0, 0.0], names).kind == "none"
    assert judge_flow([0.0, 0.5, 1.0], names).states[0] == "vanishing"


def test_heatmap_has_a_row_per_layer_and_scrolls_with_training(qtbot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    feed = Feed("sigmoid_deep")
    session = feed.run(view, chunks=(50,) * 4)
    n = session.n_layers
    assert view.heatmap.image.shape == (n, 200)
    expected = np.log10(np.hypot(session.history.grad_w, session.history.grad_b)).T
    np.testing.assert_allclose(view.heatmap.image, expected)
    for _ in range(12):
        session.step(50)
        view.show_frame(feed.frame())
    assert view.heatmap.image.shape == (n, HEATMAP_COLUMNS)
    x0, x1 = view.heatmap_plot.getPlotItem().viewRange()[0]
    assert x1 == pytest.approx(session.step_count + 0.5)
    assert x0 == pytest.approx(session.step_count - HEATMAP_COLUMNS + 0.5)


def test_pooled_columns_stay_600_wide_and_keep_the_recent_steps():
    columns = PooledColumns(2, width=600, max_new=60)
    steps = np.arange(1, 10_001)
    values = np.column_stack([np.log10(steps), -np.log10(steps)])
    for chunk in np.array_split(np.arange(steps.size), 20):  # 500 steps a frame
        columns.add(steps[chunk], values[chunk])
    image = columns.image()
    assert image.shape[0] == 2 and image.shape[1] <= 600
    assert columns.stride == 16  # 500 steps / 16 = 32 new columns a frame
    x0, x1 = columns.x_span()
    assert x1 == pytest.approx(10_000.5) and x0 == pytest.approx(10_000.5 - 600 * 16)
    np.testing.assert_allclose(image[0, -1], np.log10(steps[-16:]).mean())


@pytest.mark.parametrize("plot", ["norm_plot", "ratio_plot", "heatmap_plot"])
def test_clicking_a_layer_emits_its_index(qtbot, plot):
    view = GradientFlowView()
    qtbot.addWidget(view)
    Feed("sigmoid_deep").run(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    widget = getattr(view, plot)
    vb = widget.getPlotItem().getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    # bars: x = layer index; heatmap: y = layer index (input layer at the bottom)
    point = QPointF(x0 + 0.4 * (x1 - x0), 3.1) if plot == "heatmap_plot" else QPointF(
        3.1, (y0 + y1) / 2)
    pos = widget.mapFromScene(vb.mapViewToScene(point))
    with qtbot.waitSignal(view.layer_clicked, timeout=2000) as blocker:
        QTest.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [3]


def test_non_finite_values_in_a_frame_do_not_break_the_views(qtbot):
    views = [LossView(), LearningRateView(), GradientFlowView()]
    feed = Feed("sigmoid_deep")
    feed.session.step(60)
    good = feed.frame()
    bad_layer = np.array([np.nan, np.inf, 0.0] + [1e-3] * (feed.info.n_layers - 3))
    snapshot = dataclasses.replace(good.snapshot, layer_grad_norm_w=bad_layer,
                                   layer_update_ratio=bad_layer)
    d = good.delta
    poison = d.loss.copy()
    poison[[3, 10]] = [np.nan, np.inf]
    grad_layer = d.grad_layer.copy()
    grad_layer[5] = bad_layer
    delta = dataclasses.replace(d, loss=poison, lr=poison, grad_layer=grad_layer,
                                val_loss=np.full(d.val_loss.size, np.nan),
                                val_accuracy=np.full(d.val_loss.size, np.inf))
    frame = dataclasses.replace(good, snapshot=snapshot, delta=delta)
    for view in views:
        qtbot.addWidget(view)
        view.set_run(feed.info)
        view.show_frame(frame)
        view.resize(900, 600)
        view.grab()  # paints every item
    loss_view, _, flow_view = views
    assert np.isnan(loss_view.step_curve.yData[[3, 10]]).all()
    assert np.isfinite(flow_view.norm_bars.opts["y1"]).all()
    assert "explode" in flow_view.verdict_label.text()  # an infinite gradient norm


def test_export_figures_writes_png_and_svg(qtbot, tmp_path):
    feed = Feed("spiral_tanh")
    written = []
    for view, prefix in ((LossView(), "loss"), (LearningRateView(), "lr"),
                         (GradientFlowView(), "flow")):
        qtbot.addWidget(view)
        view.resize(900, 600)
        view.set_run(feed.info)
        feed.session.step(60)
        view.show_frame(feed.frame())
        written += view.export_figures(tmp_path / "figures", prefix)
    names = {p.name for p in written}
    for stem in ("loss_loss", "loss_accuracy", "loss_loss_rise_share", "lr_learning_rate",
                 "flow_gradient_norms", "flow_update_ratio", "flow_gradient_heatmap"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for path in written:
        data = path.read_bytes()
        assert len(data) > 1000
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG")
        else:
            assert b"<svg" in data
