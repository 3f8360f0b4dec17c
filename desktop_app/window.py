"""The main window: controls, transport, views, divergence banner, files.

It only shows and asks: the worker thread trains, the views draw frames drained from the
worker's mailbox on a ~30 Hz timer.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.banner import DivergenceBanner
from desktop_app.controls import ControlsPanel
from desktop_app.messages import merge_frames
from desktop_app.views.decision import DecisionView
from desktop_app.views.dynamics import DynamicsView
from desktop_app.views.gradient_flow import GradientFlowView
from desktop_app.views.inside import InsideView
from desktop_app.views.landscape import LandscapeView
from desktop_app.views.training import LearningRateView, LossView
from desktop_app.worker import MAX_SPEED, Mailbox
from desktop_app.worker_process import ProcessWorker
from engine import config as config_io
from engine.config import ConfigError, ExperimentConfig
from engine.session import fields_needing_reset

DRAIN_MS = 25  # 40 Hz ticks, so that ~30 frames a second get drawn even when some run long
VIEWS_PER_TICK = 1  # while training, views take turns (see _show_due_views)
MAX_RECENT = 8
LAYOUT_VERSION = 6  # bump when the arrangement of views changes: old saved states are ignored
SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, MAX_SPEED]


class WorkerSignals(QObject):
    """The worker's rare events as Qt signals (queued to the window's thread)."""

    compiling = Signal(int, int, str)
    ready = Signal()
    errored = Signal(str)
    diverged = Signal(object)
    paused = Signal()
    notice = Signal(str)
    range_test_done = Signal(object)
    landscape_done = Signal(object)


class SignalReporter:
    """The reporter the worker calls (plain methods); each emits one signal."""

    def __init__(self, signals: WorkerSignals):
        self.signals = signals

    def compiling(self, done: int, total: int, text: str) -> None:
        self.signals.compiling.emit(done, total, text)

    def ready(self) -> None:
        self.signals.ready.emit()

    def errored(self, message: str) -> None:
        self.signals.errored.emit(message)

    def diverged(self, divergence) -> None:
        self.signals.diverged.emit(divergence)

    def paused(self) -> None:
        self.signals.paused.emit()

    def notice(self, message: str) -> None:
        self.signals.notice.emit(message)

    def range_test_done(self, result) -> None:
        self.signals.range_test_done.emit(result)

    def landscape_done(self, result) -> None:
        self.signals.landscape_done.emit(result)


class MainWindow(QMainWindow):
    """Gradient Lab's window."""

    def __init__(self, config: ExperimentConfig | None = None, path: Path | None = None,
                 warm_up: bool = True):
        super().__init__()
        self.setWindowTitle("Gradient Lab")
        self.resize(1600, 1000)
        self.config = config or ExperimentConfig()
        self.path = path
        self.ready = False
        self.last_snapshot = None
        self.info = None
        self.errors: list[str] = []
        self.frames_drawn = 0
        self.frame_times: list[float] = []
        self.mailbox = Mailbox()
        self._pending: dict[str, list] = {}
        self._shown_at: dict[str, float] = {}
        self.signals = WorkerSignals()
        self.worker = ProcessWorker(self.config, SignalReporter(self.signals), self.mailbox,
                                    warm_up=warm_up)
        self._build_views()
        self._build_controls()
        self._build_toolbar()
        self._build_menus()
        self._build_status()
        self._connect_worker()
        self._restore_settings()
        self._update_title()
        self.worker.start()
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self.drain)
        self.timer.start()

    # -- building ------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.loss_view = LossView()
        self.lr_view = LearningRateView()
        self.flow_view = GradientFlowView()
        self.inside_view = InsideView()
        self.decision_view = DecisionView()
        self.dynamics_view = DynamicsView()
        self.landscape_view = LandscapeView()
        self.views = {
            "loss": self.loss_view, "learning_rate": self.lr_view,
            "gradient_flow": self.flow_view, "inside": self.inside_view,
            "decision": self.decision_view, "dynamics": self.dynamics_view,
            "landscape": self.landscape_view,
        }
        self.flow_view.layer_clicked.connect(self.inside_view.select_layer)
        # Three columns: loss (three stacked plots) | gradient flow (three stacked plots) |
        # decision boundary and layer histograms as tabs, over the learning rate. Clicking a
        # gradient bar opens that layer's histograms.
        self.right_tabs = QTabWidget()
        self.right_tabs.setObjectName("right_tabs")
        self.right_tabs.addTab(self.decision_view, "Decision boundary")
        self.right_tabs.addTab(self.inside_view, "Inside the network")
        self.flow_view.layer_clicked.connect(
            lambda _l: self.right_tabs.setCurrentWidget(self.inside_view)
        )
        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("right_splitter")
        right.addWidget(self.right_tabs)
        right.addWidget(self.lr_view)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_splitter")
        for w in (self.loss_view, self.flow_view, right):
            self.splitter.addWidget(w)
        for i in range(3):
            self.splitter.setStretchFactor(i, 1)
        self.splitters = [right, self.splitter]
        # default proportions (a saved layout replaces them); the gradient-flow plots need
        # this much width for one labelled bar per layer
        self.flow_view.setMinimumWidth(460)
        self.loss_view.setMinimumWidth(380)
        self.splitter.setSizes([420, 470, 490])
        right.setSizes([600, 340])
        self.banner = DivergenceBanner()
        self.banner.rollback_requested.connect(self.rollback)
        self.banner.lower_lr_requested.connect(self.lower_lr_and_rollback)
        self.banner.keep_requested.connect(self.keep_last_finite)
        # pages: the live training views, then the learning-rate dynamics
        self.pages = QTabWidget()
        self.pages.setObjectName("pages")
        self.pages.addTab(self.splitter, "Training")
        self.pages.addTab(self.landscape_view, "Loss landscape")
        self.landscape_view.recompute_requested.connect(
            lambda kind, n, span: self.worker.landscape(kind, n, span))
        self.landscape_view.auto_changed.connect(lambda k: self.worker.landscape_every(k))
        self.pages.addTab(self.dynamics_view, "Learning-rate dynamics")
        # the playground needs no worker: its surfaces are two-parameter functions; it is
        # built when its page is first opened (drawing every surface's contours takes time)
        self.playground_view = None
        self._playground_page = QWidget()
        QVBoxLayout(self._playground_page).setContentsMargins(0, 0, 0, 0)
        self.pages.addTab(self._playground_page, "Optimizer playground")
        self.pages.currentChanged.connect(self._page_changed)
        self.dynamics_view.sharpness_requested.connect(lambda k: self.worker.track_sharpness(k))
        self.dynamics_view.range_test_requested.connect(self._range_test)
        self.dynamics_view.apply_learning_rate.connect(self._apply_learning_rate)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

    def _build_controls(self) -> None:
        self.controls = ControlsPanel(self.config)
        self.controls.config_changed.connect(self.apply_config)
        self.controls.invalid.connect(lambda m: self.show_message(m, error=True))
        self.controls.open_csv_requested.connect(self.open_csv)
        self.controls_dock = QDockWidget("Controls", self)
        self.controls_dock.setObjectName("controls_dock")
        self.controls_dock.setWidget(self.controls)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.controls_dock)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _build_toolbar(self) -> None:
        bar = QToolBar("Transport")
        bar.setObjectName("transport")
        self.addToolBar(bar)
        self.play_action = self._action("▶ Play", self.toggle_play, Qt.Key.Key_Space,
                                        "Play or pause training (Space)")
        self.step_action = self._action("Step", lambda: self.step(1), Qt.Key.Key_Right,
                                        "Train one minibatch step (→)")
        self.step_n_box = QSpinBox()
        self.step_n_box.setRange(1, 1_000_000)
        self.step_n_box.setValue(100)
        self.step_n_action = self._action("Step N", lambda: self.step(self.step_n_box.value()),
                                          tip="Train N steps, then pause")
        self.reset_action = self._action("⟲ Reset", self.reset, Qt.Key.Key_R,
                                         "Start again from step 0 (R)")
        for a in (self.play_action, self.step_action):
            bar.addAction(a)
        bar.addWidget(self.step_n_box)
        bar.addAction(self.step_n_action)
        bar.addAction(self.reset_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Speed "))
        self.speed_slider = QSlider(Qt.Orientation.Horizontal)
        self.speed_slider.setRange(0, len(SPEEDS) - 1)
        self.speed_slider.setValue(len(SPEEDS) - 1)
        self.speed_slider.setMaximumWidth(180)
        self.speed_label = QLabel()
        self.speed_slider.valueChanged.connect(self._speed_changed)
        bar.addWidget(self.speed_slider)
        bar.addWidget(self.speed_label)
        self._speed_changed(self.speed_slider.value())

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        m.addAction(self._action("&Open experiment…", self.open_experiment, QKeySequence.Open))
        self.recent_menu = m.addMenu("Open &recent")
        m.addAction(self._action("&Save experiment", self.save_experiment, QKeySequence.Save))
        m.addAction(self._action("Save experiment &as…", self.save_experiment_as,
                                 QKeySequence.SaveAs))
        m.addSeparator()
        m.addAction(self._action("Export &figures…", self.export_figures))
        m.addAction(self._action("Export &history (CSV)…", self.export_history))
        m.addAction(self._action("Save &window screenshot…", self.save_screenshot))
        m.addSeparator()
        m.addAction(self._action("&Quit", self.close, QKeySequence.Quit))
        v = self.menuBar().addMenu("&View")
        v.addAction(self.controls_dock.toggleViewAction())
        h = self.menuBar().addMenu("&Help")
        h.addAction(self._action("&About Gradient Lab", self.about))
        self._fill_recent()

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Starting…")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.status_label)

    def _connect_worker(self) -> None:
        r = self.signals
        r.compiling.connect(self._compiling)
        r.ready.connect(self._ready)
        r.errored.connect(self._errored)
        r.diverged.connect(self._diverged)
        r.paused.connect(self._paused)
        r.notice.connect(self.show_message)
        r.range_test_done.connect(self._range_test_done)
        r.landscape_done.connect(self._landscape_done)

    # -- worker events -------------------------------------------------------------------
    def _compiling(self, done: int, total: int, text: str) -> None:
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{text}… %p%")
        self.status_label.setText(f"{text} (first start compiles; later starts use the cache)"
                                  if done < total else "Ready")

    def _ready(self) -> None:
        self.ready = True
        self.progress.setVisible(False)
        self.show_message("Ready: press Space to train, → to step.")

    def _errored(self, message: str) -> None:
        self.errors.append(message)
        self._set_playing(False)
        self.show_message(f"Error: {message}", error=True)

    def _diverged(self, divergence) -> None:
        self._set_playing(False)
        self.banner.show_divergence(divergence)

    def _paused(self) -> None:
        self._set_playing(False)

    # -- the 30 Hz drain -----------------------------------------------------------------
    def drain(self) -> None:
        t0 = time.perf_counter()
        info = self.mailbox.take_info()
        if info is not None:
            self.info = info
            for view in self.views.values():
                view.set_run(info)
        update = self.mailbox.take_update()
        if update is not None:
            self.info = update
            self.lr_view.set_planned(update.lr_curve)
        if info is not None:
            self._pending = {name: [] for name in self.views}
        frame = self.mailbox.take()
        if frame is not None and self.info is not None:
            for pending in self._pending.values():
                pending.append(frame)
            self.last_snapshot = frame.snapshot
            self.frames_drawn += 1
            self._status(frame)
        self._show_due_views(flush=frame is not None and not frame.running)
        self.frame_times.append(time.perf_counter() - t0)
        if len(self.frame_times) > 600:
            del self.frame_times[:300]

    def _show_due_views(self, flush: bool) -> None:
        """Hand each view the frames it has not seen, merged into one.

        While training, painting every view at 30 Hz costs more than the GUI thread has on a
        small machine (and starves the worker of the GIL), so each tick redraws the views
        that waited longest, at most VIEWS_PER_TICK of them; when training stops, all views
        catch up at once.
        """
        waiting = [(self._shown_at.get(n, 0.0), n) for n, p in self._pending.items() if p]
        if not waiting:
            return
        waiting.sort()
        chosen = [n for _, n in waiting] if flush else [n for _, n in waiting[:VIEWS_PER_TICK]]
        now = time.perf_counter()
        for name in chosen:
            frames = self._pending[name]
            self._pending[name] = []
            self.views[name].show_frame(merge_frames(frames))
            self._shown_at[name] = now

    def mailbox_empty(self) -> bool:
        """True when every frame the worker published has been drawn."""
        return self.mailbox.empty()

    def _status(self, frame) -> None:
        s = frame.snapshot
        n_train = len(self.info.x_train) if self.info is not None else 0
        parts = [f"step {s.step}", f"epoch {s.epoch:.2f}"]
        if frame.running:
            parts.append(f"{frame.steps_per_second:,.0f} steps/s")
        parts.append(f"loss {s.loss:.4g}")
        if s.eval is not None:
            parts.append(f"val loss {s.eval.val_loss:.4g}")
            if s.eval.val_accuracy == s.eval.val_accuracy:
                parts.append(f"val acc {s.eval.val_accuracy:.1%}")
        parts.append(f"lr {s.learning_rate:.3g}")
        if n_train:
            parts.append(f"{n_train} training points")
        self.status_label.setText("  ·  ".join(parts))

    # -- transport -----------------------------------------------------------------------
    playing = False

    def _set_playing(self, playing: bool) -> None:
        self.playing = playing
        self.play_action.setText("⏸ Pause" if playing else "▶ Play")

    def toggle_play(self) -> None:
        if self.playing:
            self.worker.pause()
            self._set_playing(False)
        else:
            if self.last_snapshot is not None and self.last_snapshot.diverged:
                self.show_message("The run diverged: roll back (banner) or reset first.",
                                  error=True)
                return
            self.worker.play()
            self._set_playing(True)

    def step(self, n: int = 1) -> None:
        self._set_playing(False)
        self.worker.step(n)

    def reset(self) -> None:
        self._set_playing(False)
        self.banner.hide()
        self.worker.reset(self.config)
        self.show_message("Run reset to step 0.")

    def _speed_changed(self, index: int) -> None:
        speed = SPEEDS[index]
        self.speed_label.setText("max" if speed == MAX_SPEED else f"{speed}/s")
        self.worker.set_speed(speed)

    def rollback(self) -> None:
        self.banner.hide()
        self.worker.rollback()
        self.show_message("Rolled back to a state before the blow-up; change a setting and play.")

    def keep_last_finite(self) -> None:
        self.banner.hide()
        self.worker.rollback(to_kept_state=False)
        self.show_message("Kept the last finite state; change a setting before playing.")

    def lower_lr_and_rollback(self) -> None:
        lr = self.config.optimizer.learning_rate / 10
        self.banner.hide()
        self.worker.rollback()
        self.apply_config(self.config.replace(**{"optimizer.learning_rate": lr}))
        self.controls.set_config(self.config)
        self.show_message(f"Rolled back; learning rate now {lr:.3g}.")

    def _page_changed(self, index: int) -> None:
        if self.pages.widget(index) is self._playground_page and self.playground_view is None:
            from desktop_app.views.playground import PlaygroundView

            self.playground_view = PlaygroundView()
            self._playground_page.layout().addWidget(self.playground_view)
            self.playground_view.show()

    def _landscape_done(self, result) -> None:
        v = self.landscape_view
        v.show_slice(result.slice)
        self.show_message(f"Loss landscape computed at step {result.slice.step}.")
        if result.interpolation is not None:
            v.show_interpolation(*result.interpolation)
        if result.gradient_line is not None:
            v.show_gradient_line(result.gradient_line)

    # -- learning-rate dynamics ------------------------------------------------------------
    def _range_test(self, n_steps: int) -> None:
        self._set_playing(False)
        self.worker.pause()
        self.worker.range_test(n_steps)

    def _range_test_done(self, result) -> None:
        self.dynamics_view.show_range_test(result)
        self.show_message(f"Range test done: steepest descent at η = {result.steepest:.3g}, "
                          f"minimum ÷ 10 = {result.min_div_10:.3g}.")

    def _apply_learning_rate(self, lr: float) -> None:
        config = self.config.replace(**{"optimizer.learning_rate": float(f"{lr:.3g}")})
        self.controls.set_config(config)
        self.apply_config(config)
        self.show_message(f"Learning rate set to {config.optimizer.learning_rate:g}.")

    # -- settings ------------------------------------------------------------------------
    def apply_config(self, config: ExperimentConfig) -> None:
        """Hot changes go to the running session; others reset the run, saying so."""
        blocked = fields_needing_reset(self.config, config)
        self.config = config
        if blocked:
            self._set_playing(False)
            self.banner.hide()
            self.worker.reset(config)
            self.show_message(f"Changed {', '.join(blocked)}: the run was reset.")
        else:
            self.worker.update_config(config)
        self._update_title(modified=True)

    def show_message(self, text: str, error: bool = False) -> None:
        self.statusBar().showMessage(text, 10000 if error else 5000)

    # -- files ---------------------------------------------------------------------------
    def load_experiment(self, path: Path) -> bool:
        try:
            config = config_io.load(path)
        except ConfigError as exc:
            QMessageBox.warning(self, "Cannot open experiment", str(exc))
            return False
        self.path = Path(path)
        self.config = config
        self.controls.set_config(config)
        self.banner.hide()
        self._set_playing(False)
        self.worker.reset(config)
        self._add_recent(self.path)
        self._update_title()
        self.show_message(f"Opened {self.path.name}")
        return True

    def open_experiment(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open experiment", str(self._folder()),
                                              "Experiments (*.toml);;All files (*)")
        if path:
            self.load_experiment(Path(path))

    def open_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open data (CSV)", str(self._folder()),
                                              "CSV files (*.csv);;All files (*)")
        if not path:
            return
        try:
            config = self.config.replace(**{"data.dataset": "csv", "data.csv_path": path})
            from engine.data import make_dataset
            ds = make_dataset(config.data, 0)
            if ds.task == "regression" and config.network.loss != "mse":
                config = config.replace(**{"network.loss": "mse"})
            elif ds.task == "classification" and config.network.loss == "bce" and \
                    ds.n_classes != 2:
                config = config.replace(**{"network.loss": "softmax_ce"})
        except ConfigError as exc:
            QMessageBox.warning(self, "Cannot use this CSV file", str(exc))
            return
        self.controls.set_config(config)
        self.apply_config(config)

    def save_experiment(self) -> bool:
        if self.path is None:
            return self.save_experiment_as()
        return self._save_to(self.path)

    def save_experiment_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save experiment", str(self._folder()),
                                              "Experiments (*.toml)")
        if not path:
            return False
        path = Path(path)
        if path.suffix != ".toml":
            path = path.with_suffix(".toml")
        return self._save_to(path)

    def _save_to(self, path: Path) -> bool:
        try:
            config_io.save(self.config, path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        self.path = path
        self._add_recent(path)
        self._update_title()
        self.show_message(f"Saved {path}")
        return True

    def export_figures(self, folder: Path | None = None) -> list[Path]:
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self, "Export figures to",
                                                      str(self._folder()))
            if not chosen:
                return []
            folder = Path(chosen)
        written: list[Path] = []
        stem = (self.path.stem if self.path else "gradient_lab")
        try:
            for view in self.views.values():
                written += view.export_figures(Path(folder), stem)
            if self.playground_view is not None:
                written += self.playground_view.export_figures(Path(folder), stem)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot export", str(exc))
        self.show_message(f"Exported {len(written)} files to {folder}")
        return written

    def export_history(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export history", str(self._folder()),
                                                    "CSV files (*.csv)")
            if not chosen:
                return
            path = Path(chosen)
        self.worker.export_history(path)
        self.show_message(f"History written to {path}")

    def save_screenshot(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(self._folder()),
                                                    "PNG images (*.png)")
            if not chosen:
                return
            path = Path(chosen)
        if not self.grab().save(str(path)):
            self.show_message(f"Could not write {path}", error=True)

    def _folder(self) -> Path:
        return self.path.parent if self.path else Path.home()

    def _update_title(self, modified: bool = False) -> None:
        name = self.path.name if self.path else self.config.name
        self.setWindowTitle(f"{name}{' *' if modified else ''} — Gradient Lab")

    # -- recent files and window state (QSettings: window state only) ------------------------
    def _settings(self) -> QSettings:
        return QSettings("GradientLab", "Gradient Lab")

    def _recent(self) -> list[str]:
        value = self._settings().value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        items = [str(path)] + [p for p in self._recent() if p != str(path)]
        self._settings().setValue("recent_files", items[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            self.recent_menu.addAction(
                self._action(p, lambda _=False, p=p: self.load_experiment(Path(p)))
            )
        self.recent_menu.setEnabled(bool(self._recent()))

    def _restore_settings(self) -> None:
        s = self._settings()
        geometry = s.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window_state")
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)
        for splitter in self.splitters:
            value = s.value(f"layout{LAYOUT_VERSION}/{splitter.objectName()}")
            if value is not None:
                splitter.restoreState(value)
            sizes = splitter.sizes()
            if len(sizes) != splitter.count() or min(sizes, default=1) <= 0:
                splitter.setSizes([1000] * splitter.count())  # a view was collapsed: even out

    def _save_settings(self) -> None:
        s = self._settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("window_state", self.saveState(LAYOUT_VERSION))
        for splitter in self.splitters:
            s.setValue(f"layout{LAYOUT_VERSION}/{splitter.objectName()}", splitter.saveState())

    def about(self) -> None:
        QMessageBox.about(self, "About Gradient Lab",
                          "Gradient Lab shows why learning rates and initialization make deep "
                          "networks train or fail.")

    # -- closing -------------------------------------------------------------------------
    def stop_worker(self, timeout: float = 10.0) -> bool:
        """Ask the worker to stop and wait for it; True if its process ended."""
        self.timer.stop()
        self.worker.quit()
        return self.worker.join(timeout)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._save_settings()
        self.stop_worker()
        super().closeEvent(event)
