"""Where the film encoder keeps what it can reuse: features per media file + range, the exported backbone.

`$FILMSCORE_CACHE_DIR` if set, else `$XDG_CACHE_HOME/filmscore`, else `~/.cache/filmscore`. A media file is keyed by
the hash of its content (whole file up to 8 MiB; else its size and three 1 MiB samples: start, middle, end), so a
copied or renamed file hits and an edited one misses without reading gigabytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_WHOLE_LIMIT = 8 << 20
_SAMPLE = 1 << 20


def cache_root() -> Path:
    env = os.environ.get("FILMSCORE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "filmscore"


def features_dir() -> Path:
    return cache_root() / "features"


def onnx_dir() -> Path:
    return cache_root() / "onnx"


def media_hash(path: str | Path) -> str:
    """sha256 hex of the file's content (sampled past 8 MiB, with the size mixed in)."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(f"size={size};".encode())
    with open(p, "rb") as f:
        if size <= _WHOLE_LIMIT:
            h.update(f.read())
        else:
            for offset in (0, size // 2 - _SAMPLE // 2, size - _SAMPLE):
                f.seek(offset)
                h.update(f.read(_SAMPLE))
    return h.hexdigest()


def features_key(media: str, start_s: float, duration_s: float | None, layout: str) -> str:
    """File name (no directory) of the cached features of one media hash, range and layout."""
    rng = f"{start_s:.4f}-{'end' if duration_s is None else f'{duration_s:.4f}'}"
    tag = hashlib.sha256(f"{media}|{rng}|{layout}".encode()).hexdigest()[:32]
    return f"{media[:16]}-{tag}.npz"
