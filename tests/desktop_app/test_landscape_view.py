"""Landscape view fed with slices of a real trained session (offscreen; one test on Xvfb)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication

import engine
from desktop_app import theme
from desktop_app.views import landscape as landscape_module
from desktop_app.views.landscape import GL_NOTE, LR_LABEL, LandscapeView, shown_values
from engine.landscape import (
    TrajectoryRecorder,
    session_gradient_line,
    session_interpolation,
    session_slice_2d,
)

EXPERIMENTS = Path(__file__).resolve().parents[2] / "resources" / "experiments"
N = 11


@pytest.fixture(scope="module", autouse=True)
def _pyqtgraph_options(qapp):
    theme.configure_pyqtgraph()


@pytest.fixture(scope="module")
def computed():
    """A spiral run trained 200 steps, with its random and PCA slices and 1-D slices."""
    session = engine.session_from_toml(EXPERIMENTS / "spiral_tanh.toml")
    recorder = TrajectoryRecorder(session, every=10)
    recorder.step(200)
    return {
        "random": session_slice_2d(session, kind="random", n=N, span=1.0),
        "pca": session_slice_2d(session, kind="pca", n=N, span=1.0, trajectory=recorder),
        "interpolation": session_interpolation(session, n=21),
        "gradient_line": session_gradient_line(session, n=21),
    }


@pytest.fixture
def view(qtbot):
    v = LandscapeView()
    qtbot.addWidget(v)
    v.resize(1000, 800)
    return v


def image_rect(item) -> QRectF:
    return item.mapRectToParent(item.boundingRect())


def xy(item) -> tuple[np.ndarray, np.ndarray]:
    x, y = item.getData()
    return (np.zeros(0) if x is None else np.asarray(x),
            np.zeros(0) if y is None else np.asarray(y))


def test_random_slice_heatmap(view, computed):
    sl = computed["random"]
    view.show_slice(sl)
    assert view.image.image.shape == (N, N)
    np.testing.assert_allclose(view.image.image, sl.loss)
    # pixel centres sit on the grid points: the image spans the extent plus half a cell
    cell = (sl.alphas[-1] - sl.alphas[0]) / (N - 1)
    rect = image_rect(view.image)
    assert rect.left() == pytest.approx(sl.alphas[0] - cell / 2)
    assert rect.right() == pytest.approx(sl.alphas[-1] + cell / 2)
    assert rect.top() == pytest.approx(sl.betas[0] - cell / 2)
    assert rect.bottom() == pytest.approx(sl.betas[-1] + cell / 2)
    assert view.color_bar.levels() == pytest.approx((sl.loss.min(), sl.loss.max()))
    assert [iso.level for iso in view.isocurves] == sorted(iso.level for iso in view.isocurves)
    assert all(sl.loss.min() < iso.level < sl.loss.max() for iso in view.isocurves)
    for iso in view.isocurves:  # drawn, on the image
        r = iso.mapRectToItem(view.plot.vb.childGroup, iso.boundingRect())
        assert not r.isEmpty()
        assert rect.left() - 1e-9 <= r.left() <= r.right() <= rect.right() + 1e-9
        assert rect.top() - 1e-9 <= r.top() <= r.bottom() <= rect.bottom() + 1e-9
    assert xy(view.center_marker)[0].tolist() == [0.0]
    assert xy(view.center_marker)[1].tolist() == [0.0]
    assert len(xy(view.path_curve)[0]) == 0  # random slices carry no path
    assert view.plot.getAxis("bottom").labelText == "α (direction 1)"
    assert view.plot.getAxis("left").labelText == "β (direction 2)"
    assert view.status_label.text() == f"Slice at step {sl.step}"


def test_log_toggle_redraws_from_the_stored_slice(view, computed):
    sl = computed["random"]
    view.show_slice(sl)
    view.log_check.setChecked(True)
    np.testing.assert_allclose(view.image.image, np.log10(sl.loss))
    assert view.color_bar.levels() == pytest.approx(
        (np.log10(sl.loss.min()), np.log10(sl.loss.max())))
    assert view.color_bar.getAxis("left").labelText == "log₁₀ loss"
    view.log_check.setChecked(False)
    np.testing.assert_allclose(view.image.image, sl.loss)


def test_non_finite_loss_is_drawn_at_the_top_of_the_scale():
    values = shown_values(np.array([[1.0, np.inf], [0.0, 100.0]]), log=True)
    assert np.isnan(values[0, 1]) and np.isnan(values[1, 0])
    assert values[1, 1] == pytest.approx(2.0)


def test_pca_slice_draws_the_trajectory(view, computed):
    sl = computed["pca"]
    view.show_slice(sl)
    x, y = xy(view.path_curve)
    np.testing.assert_allclose(np.stack([x, y], axis=1), sl.path)
    sx, sy = xy(view.start_marker)
    assert (sx[0], sy[0]) == pytest.approx(tuple(sl.path[0]))
    assert (x[-1], y[-1]) == pytest.approx((0.0, 0.0))  # the path ends at the weights
    share = f"{100 * sl.explained_variance[0]:.0f}% of path variance"
    assert share in view.plot.getAxis("bottom").labelText


def test_set_path_and_set_current_move_the_items(view, computed):
    view.show_slice(computed["pca"])
    image_before = view.image.image.copy()
    points = np.array([[-0.5, -0.4], [-0.2, -0.1], [0.1, 0.05]])
    view.set_path(points)
    view.set_current(points[-1])
    np.testing.assert_allclose(np.stack(xy(view.path_curve), axis=1), points)
    assert (xy(view.current_marker)[0][0], xy(view.current_marker)[1][0]) == \
        pytest.approx((0.1, 0.05))
    np.testing.assert_array_equal(view.image.image, image_before)  # no recompute
    view.set_path(None)
    view.set_current(None)
    assert len(xy(view.path_curve)[0]) == 0 and len(xy(view.current_marker)[0]) == 0


def test_compute_and_auto_controls_emit(view, qtbot):
    view.kind_combo.setCurrentIndex(view.kind_combo.findData("pca"))
    view.grid_spin.setValue(21)
    view.span_spin.setValue(2.5)
    with qtbot.waitSignal(view.recompute_requested) as blocker:
        qtbot.mouseClick(view.compute_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["pca", 21, 2.5]
    assert view.status_label.text() == "Computing…"
    assert [view.kind_combo.itemText(i) for i in range(view.kind_combo.count())] == \
        ["Random directions (filter-normalized)", "Trajectory PCA directions"]
    assert (view.grid_spin.minimum(), view.grid_spin.maximum()) == (11, 101)
    view.auto_spin.setValue(50)
    with qtbot.waitSignal(view.auto_changed) as blocker:
        view.auto_check.setChecked(True)
    assert blocker.args == [50]
    with qtbot.waitSignal(view.auto_changed) as blocker:
        view.auto_check.setChecked(False)
    assert blocker.args == [0]


def test_3d_tab_offscreen_shows_the_note(view, qtbot, monkeypatch):
    if QGuiApplication.platformName() != "offscreen":
        pytest.skip("about the offscreen fallback")
    monkeypatch.setattr(landscape_module, "_gl_available", None)
    view.show()
    qtbot.waitExposed(view)
    assert view.gl_note is None  # nothing is built before the tab is opened
    view.tabs.setCurrentIndex(1)
    assert view.gl_view is None and view.surface is None
    assert view.gl_note is not None and view.gl_note.text() == GL_NOTE
    qtbot.waitUntil(view.gl_note.isVisible)
    assert "needs OpenGL" in view.gl_note.text()


def test_1d_plots_hold_the_data(view, computed):
    ts, loss = computed["interpolation"]
    view.show_interpolation(ts, loss)
    x, y = xy(view.interp_curve)
    np.testing.assert_allclose(x, ts)
    np.testing.assert_allclose(y, loss)
    gl = computed["gradient_line"]
    view.show_gradient_line(gl)
    x, y = xy(view.line_curve)
    np.testing.assert_allclose(x, gl.etas)
    np.testing.assert_allclose(y, gl.loss)
    assert view.lr_line.isVisible() and view.lr_line.value() == pytest.approx(gl.learning_rate)
    assert view.lr_line.label.format == LR_LABEL
    assert xy(view.lr_point)[1][0] == pytest.approx(gl.loss_at_lr)
    assert view.center_line.value() == pytest.approx(gl.center_loss)


def test_set_run_clears_everything(view, computed, tmp_path):
    view.show_slice(computed["pca"])
    view.show_gradient_line(computed["gradient_line"])
    view.set_current([0.1, 0.1])
    view.set_run(None)
    assert view.image.image is None
    assert all(len(xy(item)[0]) == 0 for item in (view.path_curve, view.center_marker,
                                                   view.current_marker, view.line_curve))
    assert not view.lr_line.isVisible()
    assert view.export_figures(tmp_path, "run") == []  # nothing left to export


def test_export_writes_png_and_svg(view, computed, tmp_path):
    view.show_slice(computed["pca"])
    view.show_interpolation(*computed["interpolation"])
    view.show_gradient_line(computed["gradient_line"])
    paths = view.export_figures(tmp_path, "run")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"run_{n}.{ext}" for n in ("landscape", "landscape_interpolation",
                                                       "landscape_gradient_line")
                           for ext in ("png", "svg"))
    assert all(p.stat().st_size > 1000 for p in paths)


def _real_display() -> bool:
    return bool(os.environ.get("DISPLAY")) and \
        os.environ.get("QT_QPA_PLATFORM", "") != "offscreen"


@pytest.mark.xvfb
@pytest.mark.skipif(not _real_display(), reason="needs a real X server (run under xvfb-run)")
def test_3d_surface_under_a_real_display(view, qtbot, computed, monkeypatch):
    monkeypatch.setattr(landscape_module, "_gl_available", None)
    sl = computed["random"]
    view.show_slice(sl)
    view.set_current([0.2, -0.1])
    view.show_interpolation(*computed["interpolation"])
    view.show_gradient_line(computed["gradient_line"])
    view.show()
    qtbot.waitExposed(view)
    shots = os.environ.get("LANDSCAPE_SCREENSHOTS")  # a folder, to look at the result
    if shots:
        view.grab().save(str(Path(shots) / "landscape_2d.png"))
    view.tabs.setCurrentIndex(1)
    if view.gl_view is None:
        pytest.skip("this X server has no OpenGL")
    assert view.gl_note is None
    qtbot.waitExposed(view.gl_view)
    qtbot.waitUntil(view.gl_view.isVisible)
    z = view.surface._z
    assert z.shape == (N, N)
    # alpha first: the surface's z[j, i] is the loss at (alphas[j], betas[i])
    order = np.argsort(sl.loss.T.ravel())
    assert np.all(np.diff(z.ravel()[order]) >= -1e-9)
    image = view.gl_view.grabFramebuffer()
    assert not image.isNull() and image.width() > 100
    pixels = {image.pixel(x, y) for x in range(0, image.width(), 7)
              for y in range(0, image.height(), 7)}
    assert len(pixels) > 20  # a coloured surface, not a blank background
    if shots:
        image.save(str(Path(shots) / "landscape_3d.png"))
        view.grab().save(str(Path(shots) / "landscape_3d_tab.png"))
