#!/usr/bin/env bash
# Make dist/gradient-lab_VERSION_ARCH.deb from the bundle dist/gradient-lab/ (build_bundle.sh).
#   packaging/build_deb.sh [--build]     # --build: run build_bundle.sh first
# Layout: /opt/gradient-lab (the bundle), /usr/bin/gradient-lab (launcher), a .desktop entry
# and a 256x256 icon. Needs dpkg-deb; desktop-file-validate (desktop-file-utils) if present.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

[ "${1:-}" = "--build" ] && packaging/build_bundle.sh
BUNDLE="$ROOT/dist/gradient-lab"
[ -x "$BUNDLE/gradient-lab" ] || { echo "error: no bundle at $BUNDLE (run packaging/build_bundle.sh)" >&2; exit 2; }

VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)"
ARCH="$(dpkg --print-architecture)"
# glibc: the newest symbol version any bundled file asks for (the bundle carries the build
# machine's libraries, so this is the build machine's glibc, or older).
GLIBC="$(find "$BUNDLE" -type f \( -name '*.so*' -o -name gradient-lab \) -exec objdump -T {} + 2>/dev/null \
         | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2,2n -u | tail -1 | sed 's/GLIBC_//')"
# What the bundle does not carry (ldd of the bundle's Qt plugins and libraries): OpenGL/EGL
# through glvnd, libdrm, libxcb, Wayland client libraries. libfontconfig1 and libxkbcommon0
# are carried, but their Debian packages bring what they read at run time: the fontconfig
# configuration with a font, and the xkb keyboard data.
DEPENDS="libc6 (>= $GLIBC), libgl1, libegl1, libdrm2, libxcb1, libwayland-client0, \
libwayland-cursor0, libwayland-egl1, libfontconfig1, libxkbcommon0"

STAGE="$ROOT/build/deb/gradient-lab_${VERSION}_${ARCH}"
OUT="$ROOT/dist/gradient-lab_${VERSION}_${ARCH}.deb"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
         "$STAGE/usr/share/icons/hicolor/256x256/apps"
cp -a "$BUNDLE" "$STAGE/opt/gradient-lab"
find "$STAGE/opt/gradient-lab" \( -name '__pycache__' -o -name '*.nbi' -o -name '*.nbc' \) -prune \
    -exec rm -rf {} +
install -m 755 packaging/linux/gradient-lab.sh "$STAGE/usr/bin/gradient-lab"
install -m 644 packaging/linux/gradient-lab.desktop "$STAGE/usr/share/applications/"
install -m 644 resources/icons/gradient-lab.png "$STAGE/usr/share/icons/hicolor/256x256/apps/"
install -m 755 packaging/linux/postrm "$STAGE/DEBIAN/postrm"
chmod -R u=rwX,go=rX "$STAGE/opt" "$STAGE/usr"

if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$STAGE/usr/share/applications/gradient-lab.desktop"
else
    echo "note: desktop-file-validate not found (apt-get install desktop-file-utils)" >&2
fi

cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: gradient-lab
Version: $VERSION
Architecture: $ARCH
Maintainer: Gradient Lab <gradient-lab@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: $DEPENDS
Section: science
Priority: optional
Description: see why deep networks train or fail
 Gradient Lab trains small deep networks step by step and shows the gradient flow,
 activations, learning-rate dynamics and loss landscapes as they change. It runs
 offline; numba compiles its kernels on first start into each user's cache folder.
CONTROL

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT" >/dev/null
echo "package: $OUT ($(du -h "$OUT" | cut -f1), installed $(du -sh --exclude=DEBIAN "$STAGE" | cut -f1))"
