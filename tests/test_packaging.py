"""The installer bundle: PyInstaller builds it, and the frozen program passes --self-test.

Slow (a PyInstaller build and a numba compile from an empty cache, a few minutes), so it
runs only when asked: `pytest -m packaging`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "pyinstaller" / "gradient_lab.spec"
EXE = "gradient-lab.exe" if sys.platform == "win32" else "gradient-lab"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    pytest.importorskip("PyInstaller")
    work = tmp_path_factory.mktemp("pyinstaller")
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(work / "dist"), "--workpath", str(work / "build"), str(SPEC)],
        cwd=ROOT, check=True, timeout=1800,
    )
    return work / "dist" / "gradient-lab"


def test_bundle_ships_presets_and_engine_sources(bundle):
    internal = bundle / "_internal"
    assert (internal / "resources" / "experiments" / "spiral_tanh.toml").is_file()
    assert (internal / "resources" / "icons" / "gradient-lab.png").is_file()
    # numba caches only functions whose source file exists (see the spec)
    assert (internal / "engine" / "network.py").is_file()


def test_frozen_self_test_passes_from_an_empty_cache(bundle, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    for run in ("compiling", "cached"):
        done = subprocess.run([str(bundle / EXE), "--self-test"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{run}: {done.stdout}\n{done.stderr}"
        assert "passed" in done.stdout, f"{run}: {done.stdout}"
    assert any((tmp_path / "numba").rglob("*.nbi")), "numba wrote no cache"
