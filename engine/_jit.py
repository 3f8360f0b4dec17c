"""One decorator for every kernel, and numba's cache folder set before numba loads.

numba caches compiled kernels next to the source by default, which fails in a read-only
install (a lab machine's /opt). We point it at a per-user cache folder keyed on a hash of
the engine's sources, because numba does not notice edits to a jitted function in another
file that a cached function calls.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_ENGINE_DIR = Path(__file__).resolve().parent


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_ENGINE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        try:
            digest.update(path.read_bytes())
        except OSError:  # frozen bundles may ship only bytecode
            pass
    return digest.hexdigest()[:16]


def _default_cache_dir() -> Path:
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("gradient-lab", appauthor=False))
    except Exception:  # pragma: no cover - platformdirs is a dependency
        base = Path.home() / ".cache" / "gradient-lab"
    return base / "numba" / _source_hash()


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def configure_cache() -> str | None:
    """Set NUMBA_CACHE_DIR unless the user already did; return the folder used."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return os.environ["NUMBA_CACHE_DIR"]
    candidates = [_default_cache_dir()]
    import tempfile

    # An unprivileged user without a home folder still gets a cache.
    user = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = Path(tempfile.gettempdir()) / f"gradient-lab-{user}" / "numba" / _source_hash()
    candidates.append(fallback)
    for path in candidates:
        if _writable(path):
            os.environ["NUMBA_CACHE_DIR"] = str(path)
            _prune_siblings(path)
            return str(path)
    return None


KEEP_CACHES = 4  # cache folders of other engine versions kept (the newest)
PRUNE_AGE = 2 * 24 * 3600  # ... and any used within this many seconds


def _prune_siblings(current: Path) -> None:
    """Remove cache folders of old engine versions (one appears per source change)."""
    import shutil
    import time

    try:
        siblings = [p for p in current.parent.iterdir() if p.is_dir() and p != current]
        siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        now = time.time()
        for old in siblings[KEEP_CACHES:]:
            if now - old.stat().st_mtime > PRUNE_AGE:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:  # another process pruning at the same time, a read-only folder, ...
        pass


CACHE_DIR = configure_cache()

import numba  # noqa: E402  (must come after the cache folder is set)

# numba reads NUMBA_CACHE_DIR once, when it is first imported. If the host imported it
# before us (pytest does, to resolve the NumbaPerformanceWarning filter in pyproject.toml),
# the kernels would be cached beside the sources with numba's per-file staleness check,
# and an edit to a callee in another file would run stale code: make numba re-read it.
numba.core.config.reload_config()

# Kernels assume valid, C-contiguous float64 arrays and never raise. fastmath without
# 'nnan'/'ninf', so the divergence checks (x != x) are not optimized away; 'reassoc' lets
# LLVM vectorize sums. error_model="numpy": x / 0 gives inf instead of raising, which also
# lets loops with a division vectorize (numba's Python error model blocks that).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
OPTIONS = {"cache": True, "nogil": True, "fastmath": FASTMATH, "error_model": "numpy"}


def kernel(func):
    """Compile `func` with the one decorator all engine kernels share."""
    return numba.njit(**OPTIONS)(func)


def inline(func):
    """A scalar helper that kernels inline (so their loops vectorize)."""
    return numba.njit(inline="always", **OPTIONS)(func)


@inline
def nonfinite(x):
    """True if x is NaN or +-inf. Use this, not math.isfinite, inside kernels: under the
    kernels' fast-math flags LLVM was seen to fold math.isfinite(a + b) to True."""
    return x * 0.0 != 0.0
