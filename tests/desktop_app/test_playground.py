"""The optimizer playground: the lecture's slide presets, surfaces, clipping, export."""

import numpy as np
import pytest

from desktop_app.views.playground import ALL_PRESETS, MAX_RUNS, PlaygroundView
from engine.surfaces import SURFACES, slide_presets


@pytest.fixture
def view(qtbot):
    v = PlaygroundView()
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    qtbot.waitExposed(v)
    return v


def distance_to_minimum(view, path, step: int = -1) -> float:
    return float(np.linalg.norm(path.points[step] - np.array(view.surface().minima[0])))


def test_too_small_is_slow(view):
    view.apply_preset("too small: slow")
    (path,) = view.paths()
    start = distance_to_minimum(view, path, step=0)
    assert path.steps == view.steps_spin.value() and not path.diverged
    assert distance_to_minimum(view, path) > 0.4 * start  # 100 steps, still far away
    assert "diverg" not in view.legend_texts()[0]


def test_too_large_oscillates_across_the_steep_direction(view):
    view.apply_preset("too large: oscillates")
    (path,) = view.paths()
    lam1, lam2 = view.surface().curvatures
    steep = int(np.argmax([lam1, lam2]))  # the quadratic's eigenvectors are the axes
    along = path.points[:30, steep]
    assert np.all(along[1:] * along[:-1] < 0)  # the sign alternates every step
    assert distance_to_minimum(view, path) < 1e-3  # yet it converges (η·λmax < 2)


def test_larger_diverges_and_says_so(view):
    view.apply_preset("larger: diverges")
    (path,) = view.paths()
    (entry,) = view.legend_texts()
    assert "left the plot" in entry or "diverged" in entry
    assert "left the plot" in view.status_label.text()
    x0, x1, y0, y1 = view.surface().extent
    end = path.points[-1]
    assert not (x0 <= end[0] <= x1 and y0 <= end[1] <= y1)


def test_near_optimal_ends_at_the_minimum(view):
    view.apply_preset("near-optimal")
    (path,) = view.paths()
    assert distance_to_minimum(view, path) < 1e-3
    assert view.legend_texts() == [f"SGD, η={path.lr:.3g}"]


def test_all_four_presets_follow_the_eigenvalues(view):
    view.set_surface("quadratic", lam1=2.0, lam2=50.0)
    view.apply_preset(ALL_PRESETS)
    lrs = [p.lr for p in view.paths()]
    assert lrs == pytest.approx([s["lr"] for s in slide_presets(view.surface()).values()])
    assert "κ = λmax/λmin = 25" in view.condition_label.text()


def test_preset_from_another_surface_returns_to_the_quadratic(view):
    view.set_surface("rosenbrock")
    view.preset_combo.textActivated.emit("near-optimal")
    assert view.surface().name == "quadratic"
    assert view.surface_combo.currentData() == "quadratic"


def test_switching_surfaces_redraws_with_the_new_extent(view):
    view.set_surface("rnn_cliff")
    x0, x1, y0, y1 = SURFACES["rnn_cliff"].extent
    rect = view.image.mapRectToParent(view.image.boundingRect())
    assert rect.center().x() == pytest.approx((x0 + x1) / 2)
    assert rect.center().y() == pytest.approx((y0 + y1) / 2)
    assert rect.width() == pytest.approx((x1 - x0) * 101 / 100)  # half a pixel each side
    (vx0, vx1), (vy0, vy1) = view.surface_plot.getPlotItem().viewRange()
    assert vx0 <= x0 + 1e-9 and vx1 >= x1 - 1e-9 and vy0 <= y0 + 1e-9 and vy1 >= y1 - 1e-9
    assert vx1 - vx0 < 2 * (x1 - x0)  # and not zoomed far out
    assert view.minima.data["x"].tolist() == [0.0]
    assert "w" in view.surface_plot.getPlotItem().getAxis("bottom").labelText
    assert view.formula_label.text() == SURFACES["rnn_cliff"].formula
    assert not view.lam_row.isVisible()


def test_paths_drawn_equal_runs(view):
    specs = [{"optimizer": "sgd", "lr": 0.01}, {"optimizer": "momentum", "lr": 0.01},
             {"optimizer": "adam", "lr": 0.1}]
    view.set_runs(specs)
    assert [p.optimizer for p in view.paths()] == ["sgd", "momentum", "adam"]
    drawn = [c for c in view.path_curves if c.xData is not None and c.xData.size]
    losses = [c for c in view.loss_curves if c.xData is not None and c.xData.size]
    assert len(drawn) == len(losses) == len(view.legend_texts()) == 3
    assert view.table.rowCount() == 3
    view.set_runs([{"optimizer": "sgd", "lr": 0.01}] * (MAX_RUNS + 2))
    assert len(view.paths()) == MAX_RUNS and not view.add_button.isEnabled()


def test_add_and_remove_rows(view, qtbot):
    view.set_runs([{"optimizer": "sgd", "lr": 0.01}])
    view.add_button.click()
    assert len(view.paths()) == 2
    view.remove_button.click()
    view.remove_button.click()
    assert view.paths() == [] and not view.remove_button.isEnabled()


def test_clipping_bounds_the_step_on_the_cliff(view):
    view.set_surface("rnn_cliff")
    lr, tau = 0.05, 1.0
    view.set_runs([{"optimizer": "sgd", "lr": lr},
                   {"optimizer": "sgd", "lr": lr, "clip": ("global_norm", tau)}])
    free, clipped = view.paths()
    steps = [np.linalg.norm(np.diff(p.points, axis=0), axis=1) for p in (free, clipped)]
    assert steps[0].max() > 10 * lr * tau  # the wall throws the unclipped run far
    assert steps[1].max() <= lr * tau * (1 + 1e-9)
    assert clipped.clipped.any() and clipped.grad_norms.max() > tau
    assert "clip 1" in view.legend_texts()[1]


def test_typing_a_rate_recomputes(view, qtbot):
    view.set_runs([{"optimizer": "sgd", "lr": 0.01}])
    edit = view.table.cellWidget(0, 1)
    edit.selectAll()
    qtbot.keyClicks(edit, "2e-2")
    qtbot.waitUntil(lambda: view.paths()[0].lr == pytest.approx(0.02))
    edit.setText("fast")  # not a number: the row is skipped and the user told why
    qtbot.waitUntil(lambda: view.paths() == [])
    assert "Run 1" in view.status_label.text()


def test_changing_lambda_redraws_the_bowl(view, qtbot):
    view.lam_spins[1].setValue(100.0)
    qtbot.waitUntil(lambda: view.surface().curvatures == (1.0, 100.0))
    assert "κ = λmax/λmin = 100" in view.condition_label.text()


def test_export_writes_nonempty_files(view, tmp_path):
    written = view.export_figures(tmp_path, "lecture")
    assert {p.suffix for p in written} == {".png", ".svg"} and len(written) == 4
    assert all(p.exists() and p.stat().st_size > 1000 for p in written)


@pytest.mark.parametrize("name", list(SURFACES))
def test_every_surface_renders(view, name):
    view.set_surface(name)
    view.set_runs([{"optimizer": "sgd", "lr": 1e-3}, {"optimizer": "adam", "lr": 0.05},
                   {"optimizer": "momentum", "lr": 1e-3, "clip": ("global_norm", 1.0)}])
    image = view.grab().toImage()
    assert not image.isNull() and image.width() >= 1000
    assert len(view.paths()) == 3 and view.image.image is not None
    assert np.isfinite(view.image.image).all()
