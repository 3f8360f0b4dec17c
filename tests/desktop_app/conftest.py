"""GUI tests run offscreen; pytest-qt provides qtbot and fails tests on Qt warnings."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
