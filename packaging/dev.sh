#!/usr/bin/env bash
# Set up a development copy of Gradient Lab and run it: `app` (the window) or `test` (all tests).
# Installs what the machine lacks (Debian packages for Qt and Xvfb when run as root),
# creates .venv beside this repository and installs the project into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"
shift || true

PY="${PYTHON:-python3}"
VENV=".venv"

need_debs=()
if command -v dpkg >/dev/null 2>&1; then
    # Qt's xcb and offscreen platforms, Mesa for OpenGL, and Xvfb for the 3-D view's tests.
    for pkg in libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 \
               libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 \
               libxcb-xinerama0 libxcb-xkb1 libxcb-randr0 libxcb-cursor0 libglib2.0-0 \
               xvfb xauth; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need_debs+=("$pkg")
    done
fi
if ((${#need_debs[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing system packages: ${need_debs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
    else
        echo "note: missing system packages (install them with apt as root): ${need_debs[*]}" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    touch "$stamp"
fi

case "$what" in
    app)
        exec "$VENV/bin/python" -m desktop_app "$@"
        ;;
    test)
        "$VENV/bin/python" -m ruff check engine desktop_app tests packaging
        exec "$VENV/bin/python" -m pytest -q "$@"
        ;;
    *)
        echo "usage: packaging/dev.sh app|test [args...]" >&2
        exit 2
        ;;
esac
