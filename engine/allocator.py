"""Hand the memory a render has freed back to the system between its passes (glibc's `malloc_trim`).

glibc keeps what a program frees in its arenas for reuse (one arena per thread that allocated, so one per model-stage
worker), and freed blocks lying between live ones stay resident. A render allocates and frees per denoising call,
per decoder and vocoder chunk; the memory so kept grows with the cue's length although what is in use does not.
Measured on a v2 bundle's 5 and 10-minute cues (mallinfo2, 2 denoising steps): in use at the end of vocoding
261 -> 277 MB, freed but resident 190 -> 286 MB; the resident set's peak grew 10-13 % from 5 to 10 minutes, most of
it that kept memory. `release()` after each denoising step and each group of vocoder chunks returns it
(`malloc_trim(0)` also gives back free pages inside the arenas, not only at their tops, since glibc 2.8); each call
costs about a millisecond. Where the C library has no `malloc_trim` (macOS, musl) it does nothing: those allocators
return memory on their own terms.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release() -> bool:
    """Return the freed memory glibc keeps to the system; False where the C library cannot (module docstring)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
