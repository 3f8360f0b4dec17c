#!/usr/bin/env bash
# Build the one-folder bundle dist/gradient-lab/ with PyInstaller (Linux, macOS, Windows/bash).
#   packaging/build_bundle.sh            # uses $PYTHON, else .venv/bin/python, else python3
# The Python used must have the project's dependencies and pyinstaller installed.
# Output: dist/gradient-lab/gradient-lab (+ dist/Gradient Lab.app on macOS).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi

"$PY" -c "import PyInstaller" 2>/dev/null || {
    echo "error: PyInstaller is not installed for $PY (pip install pyinstaller)" >&2; exit 2; }

# Stale numba caches beside the sources would be shipped as data: never bundle them.
find engine -name '*.nbi' -o -name '*.nbc' | xargs -r rm -f

"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
    packaging/pyinstaller/gradient_lab.spec

echo "bundle: $ROOT/dist/gradient-lab ($(du -sh dist/gradient-lab | cut -f1))"
