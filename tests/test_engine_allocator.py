"""`allocator.release`: the freed memory glibc keeps between live blocks goes back to the system (engine/allocator.py;
the renders call it after each denoising step and vocoder group, so a long cue's resident set stays flat)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from filmscore.engine.allocator import release


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim; elsewhere release() is a no-op")
def test_release_returns_the_freed_blocks_kept_between_live_ones():
    release()
    blocks = [np.ones(8192) for _ in range(4000)]  # 64 KB each, from the heap (under the mmap threshold): 250 MB
    kept = blocks[::8]  # a live block every 512 KB: the heap cannot shrink from its top
    del blocks
    held = _rss_mb()
    assert release() is True
    # 7 of 8 blocks (219 MB) were free but resident; they are handed back, the live ones untouched
    assert held - _rss_mb() > 150
    assert all(float(b.sum()) == 8192.0 for b in kept)
