"""GUI tests run offscreen; pytest-qt provides qtbot and fails tests on Qt warnings."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_settings(tmp_path_factory):
    """Window state and recent files go to a temporary folder, not the user's settings."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    yield folder


@pytest.fixture(scope="session", autouse=True)
def _pyqtgraph_theme():
    from desktop_app.theme import configure_pyqtgraph

    configure_pyqtgraph()
