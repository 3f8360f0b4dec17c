"""The 'inside the network' and decision-boundary views, fed frames from real sessions."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

import engine
from desktop_app import theme
from desktop_app.messages import GRID, Frame, make_boundary, make_delta, make_run_info
from desktop_app.views.decision import DecisionView, class_palette
from desktop_app.views.inside import HISTOGRAMS, InsideView

EXPERIMENTS = "resources/experiments"


def trained(config: engine.ExperimentConfig, steps: int):
    session = engine.TrainingSession(config)
    session.step(steps)
    return session, make_run_info(session)


def frame_of(session, info, with_boundary: bool = True) -> Frame:
    return Frame(snapshot=session.snapshot(), delta=make_delta(session, 0, -1),
                 boundary=make_boundary(session, info) if with_boundary else None,
                 steps_per_second=0.0, running=False)


@pytest.fixture(scope="module")
def sigmoid_deep():
    return trained(engine.load_config(f"{EXPERIMENTS}/sigmoid_deep.toml"), 300)


@pytest.fixture(scope="module")
def spiral():
    return trained(engine.load_config(f"{EXPERIMENTS}/spiral_tanh.toml"), 600)


@pytest.fixture(scope="module")
def moons():
    config = engine.ExperimentConfig().replace(
        **{"data.dataset": "moons", "data.n_classes": 2, "network.loss": "bce"})
    return trained(config, 400)


@pytest.fixture(scope="module")
def ripple():
    config = engine.ExperimentConfig().replace(
        **{"data.dataset": "ripple", "network.loss": "mse"})
    return trained(config, 300)


@pytest.fixture(scope="module")
def dead_relu():
    config = engine.ExperimentConfig().replace(
        **{"network.activation": "relu", "init.biases": "constant", "init.bias_scale": -5.0})
    return trained(config, 100)


@pytest.fixture(scope="module")
def saturated_sigmoid():
    config = engine.load_config(f"{EXPERIMENTS}/sigmoid_deep.toml").replace(
        **{"init.weight_scale": 3.0})
    return trained(config, 100)


@pytest.fixture(autouse=True)
def plot_defaults():
    theme.configure_pyqtgraph()


def shown(qtbot, view):
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def inside(qtbot):
    return shown(qtbot, InsideView())


@pytest.fixture
def decision(qtbot):
    return shown(qtbot, DecisionView())


# -- inside the network ----------------------------------------------------------------------
def test_lists_one_entry_per_layer_with_its_activation(inside, sigmoid_deep):
    session, info = sigmoid_deep
    inside.set_run(info)
    items = [inside.layer_list.item(i).text() for i in range(inside.layer_list.count())]
    assert len(items) == info.n_layers == 11
    assert items[2] == "hidden 3 (sigmoid)"
    assert items[-1] == "output (sigmoid)"


def test_histograms_show_the_probe_counts_of_the_selected_layer(inside, sigmoid_deep):
    session, info = sigmoid_deep
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    probe = session.snapshot().probe
    for layer in (0, 4, info.n_layers - 1):
        inside.select_layer(layer)
        for field, *_ in HISTOGRAMS:
            expected = getattr(probe.layers[layer], field)
            x, y = inside.curves[field].getData()
            assert y.sum() == expected.counts.sum() > 0
            np.testing.assert_array_equal(x, expected.edges)
        assert probe.layers[layer].name in inside.status.text()
        assert f"step {probe.step}" in inside.status.text()


def test_activation_title_shows_the_saturated_share(inside, saturated_sigmoid):
    session, info = saturated_sigmoid
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    probe = session.snapshot().probe
    layer = int(np.argmax(probe.saturated))
    inside.select_layer(layer)
    assert probe.layers[layer].saturated > 0.3
    title = inside.plots["activations"].titleLabel.text
    assert f"{probe.layers[layer].saturated:.0%} saturated" in title
    heights = inside.saturated_bars.opts["height"]
    np.testing.assert_allclose(heights, probe.saturated)


def test_dead_relu_units_are_named_in_the_title_and_bars(inside, dead_relu):
    session, info = dead_relu
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    probe = session.snapshot().probe
    inside.select_layer(1)
    assert probe.layers[1].dead >= 0.5
    title = inside.plots["activations"].titleLabel.text
    assert f"{probe.layers[1].dead:.0%} dead units" in title
    np.testing.assert_allclose(inside.dead_bars.opts["height"], probe.dead)


def test_select_layer_from_outside_moves_the_list(inside, qtbot, sigmoid_deep):
    session, info = sigmoid_deep
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    with qtbot.waitSignal(inside.layer_selected) as blocker:
        inside.select_layer(6)
    assert blocker.args == [6]
    assert inside.layer_list.currentRow() == 6
    assert "hidden 7" in inside.status.text()
    inside.select_layer(99)  # out of range: ignored
    assert inside.layer_list.currentRow() == 6


def test_before_the_first_probe_it_says_no_data_yet(inside):
    session = engine.session_from_toml(f"{EXPERIMENTS}/spiral_tanh.toml")
    info = make_run_info(session)
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    assert session.snapshot().probe is None
    assert "No data yet" in inside.status.text()
    assert all(text.isVisible() for text in inside.empty_texts.values())
    session.step(info.config.run.eval_every)
    inside.show_frame(frame_of(session, info))
    assert "No data yet" not in inside.status.text()
    assert not any(text.isVisible() for text in inside.empty_texts.values())


def test_a_new_probe_is_drawn_and_a_repeated_one_is_not(inside):
    session = engine.session_from_toml(f"{EXPERIMENTS}/spiral_tanh.toml")
    info = make_run_info(session)
    inside.set_run(info)
    session.step(50)
    inside.show_frame(frame_of(session, info, with_boundary=False))
    assert "step 50" in inside.status.text()
    inside.status.setText("untouched")
    session.step(10)  # no new evaluation: the same probe again
    inside.show_frame(frame_of(session, info, with_boundary=False))
    assert inside.status.text() == "untouched"
    session.step(40)
    inside.show_frame(frame_of(session, info, with_boundary=False))
    assert "step 100" in inside.status.text()


@pytest.mark.parametrize("size", [(460, 420), (900, 600)])
def test_histograms_fit_in_a_narrow_and_a_wide_view(inside, qtbot, sigmoid_deep, size):
    session, info = sigmoid_deep
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    inside.resize(*size)

    def fits(plot, widget) -> bool:
        box, visible = plot.sceneBoundingRect(), widget.rect()
        return (box.width() > 100 and box.height() > 60
                and box.right() <= visible.right() + 1 and box.bottom() <= visible.bottom() + 1)

    qtbot.waitUntil(lambda: all(fits(p, inside.histogram_widget)
                                for p in inside.plots.values()))
    summary = inside.summary_plot.sceneBoundingRect()
    assert summary.right() <= inside.summary_widget.rect().right() + 1


def test_inside_exports_png_and_svg(inside, sigmoid_deep, tmp_path):
    session, info = sigmoid_deep
    inside.set_run(info)
    inside.show_frame(frame_of(session, info))
    files = inside.export_figures(tmp_path / "figures", "run1")
    names = {f.name for f in files}
    for plot in ("activations", "pre_activations", "weights", "gradients", "saturation"):
        assert {f"run1_{plot}.png", f"run1_{plot}.svg"} <= names
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert not QImage(str(f)).isNull()
        else:
            assert "<svg" in f.read_text(encoding="utf-8")


# -- decision boundary -----------------------------------------------------------------------
def image_rect(item):
    r = item.mapRectToParent(item.boundingRect())
    return (r.left(), r.right(), r.top(), r.bottom())


def test_binary_boundary_is_a_probability_image_over_the_extent(decision, moons):
    session, info = moons
    decision.set_run(info)
    frame = frame_of(session, info)
    decision.show_frame(frame)
    image = decision.probability_image
    assert image.image.shape == (GRID, GRID)
    np.testing.assert_allclose(image.image, frame.boundary.values)
    np.testing.assert_allclose(image_rect(image), info.extent)
    assert decision.color_bar.scene() is not None  # the colour bar is on screen
    assert tuple(decision.color_bar.levels()) == (0.0, 1.0)
    assert decision.plot.getViewBox().state["aspectLocked"] == 1.0


def test_training_points_are_drawn_in_their_class_colours(decision, moons):
    session, info = moons
    decision.set_run(info)
    points = decision.scatter.data
    assert len(points) == info.x_train.shape[0]
    np.testing.assert_allclose(points["x"], info.x_train[:, 0])
    colors = [b.color().name() for b in points["brush"]]
    expected = [theme.CLASS_COLORS[int(k)] for k in info.y_train]
    assert colors == expected


def test_three_classes_are_coloured_by_the_predicted_class(decision, spiral):
    session, info = spiral
    decision.set_run(info)
    frame = frame_of(session, info)
    decision.show_frame(frame)
    rgba = decision.class_image.image
    assert rgba.shape == (GRID, GRID, 4)
    classes = frame.boundary.classes
    assert len(np.unique(classes)) == 3
    np.testing.assert_array_equal(rgba[..., :3], class_palette(3)[classes])
    # surer regions are more opaque
    conf = frame.boundary.confidence
    assert rgba[..., 3][conf > 0.9].mean() > rgba[..., 3][conf < 0.5].mean()
    np.testing.assert_allclose(image_rect(decision.class_image), info.extent)
    assert decision.color_bar.scene() is None  # no probability bar for k classes
    assert len(decision.scatter.data) == info.x_train.shape[0]


def test_a_frame_without_a_boundary_keeps_the_last_image(decision, spiral):
    session, info = spiral
    decision.set_run(info)
    decision.show_frame(frame_of(session, info))
    before = decision.class_image.image.copy()
    decision.show_frame(frame_of(session, info, with_boundary=False))
    np.testing.assert_array_equal(decision.class_image.image, before)


def test_regression_shows_the_fitted_surface_and_targets(decision, ripple):
    session, info = ripple
    decision.set_run(info)
    frame = frame_of(session, info)
    decision.show_frame(frame)
    image = decision.probability_image
    np.testing.assert_allclose(image.image, frame.boundary.values)
    lo, hi = decision.color_bar.levels()
    assert (lo, hi) == (info.y_train.min(), info.y_train.max())
    np.testing.assert_allclose(image.levels, (lo, hi))
    assert decision.color_bar.scene() is not None
    assert "surface" in decision.plot.titleLabel.text
    # the point with the highest target gets the colour map's top colour
    top = int(np.argmax(info.y_train))
    brush = decision.scatter.data["brush"][top]
    assert brush.color().name() == decision.color_bar.colorMap().map(1.0, mode="qcolor").name()


def test_switching_runs_switches_the_colour_bar(decision, spiral, ripple):
    for session, info in (spiral, ripple, spiral):
        decision.set_run(info)
        decision.show_frame(frame_of(session, info))
    assert decision.color_bar.scene() is None
    assert len(decision.scatter.data) == spiral[1].x_train.shape[0]


def test_data_with_three_features_explains_why_there_is_no_boundary(decision, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    rows = [f"{a:.4f},{b:.4f},{c:.4f},{int(a + b > 0)}" for a, b, c in x]
    csv = tmp_path / "three.csv"
    csv.write_text("a,b,c,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = engine.ExperimentConfig().replace(
        **{"data.dataset": "csv", "data.csv_path": str(csv), "network.loss": "bce"})
    session, info = trained(config, 20)
    assert info.extent is None
    decision.set_run(info)
    decision.show_frame(frame_of(session, info))
    assert decision.message.isVisible()
    assert decision.message.text() == \
        "Decision boundary needs 2 input features (this data has 3)."
    assert not decision.graphics.isVisible()
    assert decision.export_figures(tmp_path, "x") == []


def test_decision_exports_png_and_svg(decision, moons, tmp_path):
    session, info = moons
    decision.set_run(info)
    decision.show_frame(frame_of(session, info))
    files = decision.export_figures(tmp_path, "moons")
    assert [f.name for f in files] == ["moons_decision_boundary.png",
                                       "moons_decision_boundary.svg"]
    png = QImage(str(files[0]))
    assert png.width() >= 1200
    assert "<svg" in files[1].read_text(encoding="utf-8")
    # the scatter is exported as vector symbols, not as one pixmap atlas per point
    assert files[1].stat().st_size < 2_000_000
