#!/usr/bin/env bash
# Build the bundle and the .deb, install it on this machine, run the installed
# `gradient-lab --self-test` as root and as an unprivileged user without a home folder,
# uninstall, check nothing is left, and print sizes and start times. Needs root (Debian).
#   packaging/test_install.sh [--no-build]    # --no-build: use the existing dist/ files
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
[ "$(id -u)" = 0 ] || { echo "error: run as root (it installs a package)" >&2; exit 2; }

if [ "${1:-}" != "--no-build" ]; then
    packaging/build_deb.sh --build
fi
DEB="$(ls -t "$ROOT"/dist/gradient-lab_*.deb | head -1)"
TESTER=gl-tester
WORK="$(mktemp -d)"
export QT_QPA_PLATFORM=offscreen
cleanup() {
    userdel "$TESTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
# timed LABEL COMMAND...: run it, keep its output, print it and the seconds it took
timed() {
    local label="$1"; shift
    local t0 t1
    t0="$(now)"
    "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; fail "$label exited non-zero"; }
    t1="$(now)"
    grep -h "self-test" "$WORK/out" | sed "s/^/  $label: /"
    grep -q "passed" "$WORK/out" || fail "$label did not pass"
    TIMES["$label"]="$(echo "$t1 - $t0" | bc)"
}
declare -A TIMES

echo "== install $DEB"
dpkg -P gradient-lab >/dev/null 2>&1 || true
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "$DEB" >/dev/null 2>"$WORK/apt.err" || {
    cat "$WORK/apt.err" >&2; dpkg -i "$DEB" || fail "the package did not install"; }
command -v gradient-lab >/dev/null || fail "gradient-lab is not on the PATH"
dpkg -L gradient-lab | sort >"$WORK/files"
touch "$WORK/installed-stamp"

echo "== root (fresh numba cache in a new XDG_CACHE_HOME)"
export XDG_CACHE_HOME="$WORK/root-cache"
timed root-first gradient-lab --self-test
timed root-second gradient-lab --self-test
unset XDG_CACHE_HOME

echo "== $TESTER: unprivileged, home /nonexistent (cache falls back to the temp folder)"
userdel "$TESTER" >/dev/null 2>&1 || true
useradd --no-create-home --home-dir /nonexistent --shell /bin/sh "$TESTER"
uid="$(id -u "$TESTER")"
rm -rf "/tmp/gradient-lab-$uid"
as_tester() { (cd /tmp && su "$TESTER" -s /bin/sh -c \
    "QT_QPA_PLATFORM=offscreen gradient-lab --self-test" 2>&1); }
timed tester-first as_tester
timed tester-second as_tester
[ -d "/tmp/gradient-lab-$uid" ] || fail "the tester's cache is not in /tmp/gradient-lab-$uid"

written="$(find /opt/gradient-lab -newer "$WORK/installed-stamp" | head -5)"
[ -z "$written" ] || fail "the program wrote into its install folder: $written"

echo "== uninstall"
apt-get purge -y -qq gradient-lab >/dev/null 2>&1 || dpkg -P gradient-lab >/dev/null
[ ! -e /opt/gradient-lab ] || fail "/opt/gradient-lab is left after removal"
! dpkg -s gradient-lab >/dev/null 2>&1 || fail "dpkg still lists gradient-lab after purge"
left=0
while read -r f; do
    [ -f "$f" ] || [ -L "$f" ] || continue
    echo "left over: $f" >&2; left=1
done <"$WORK/files"
[ "$left" = 0 ] || fail "files left after removal"
rm -rf "/tmp/gradient-lab-$uid"

echo "== figures"
printf '  bundle size:        %s\n' "$(du -sh dist/gradient-lab | cut -f1)"
printf '  package size:       %s (installed %s KiB)\n' "$(du -h "$DEB" | cut -f1)" \
    "$(dpkg-deb -f "$DEB" Installed-Size)"
printf '  first start (root, compiling):    %.1f s\n' "${TIMES[root-first]}"
printf '  second start (root, cached):      %.1f s\n' "${TIMES[root-second]}"
printf '  first start (no home, compiling): %.1f s\n' "${TIMES[tester-first]}"
printf '  second start (no home, cached):   %.1f s\n' "${TIMES[tester-second]}"
echo "OK"
