"""`Spill`: float32 audio `(n, channels)` kept in an unnamed temporary file instead of memory.

Delivery masters a cue in passes (measure, perhaps limit and measure again, then write), so the delivered-rate
signal is needed more than once; a 10-minute cue at 48 kHz is 115 MB of float32. Held in a file and read a block at
a time, the process keeps a few blocks, flat in the cue's length, at the cost of writing and reading the file once
more (the page cache usually serves it). The file is opened with O_TMPFILE where the filesystem has it
(`tempfile.TemporaryFile`): it has no name, so nothing is left behind by a crash.

A `Spill` reads and writes like the row slices of a 2-D array (`s[a:b]`, `s[a:b, c]`, `s[a:b] = block`), which is
all the chunked loudness code (engine/audio/loudness.py) does to its input. Unwritten rows read as zeros.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import FilmscoreError

_ITEM = np.dtype(np.float32).itemsize


class Spill:
    """float32 samples `(n, channels)` in an unnamed file in `folder` (default: the system's temporary folder)."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, n: int, channels: int = 1, folder: str | Path | None = None):
        self.shape = (int(n), int(channels))
        self.folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        try:
            self._file = tempfile.TemporaryFile(dir=self.folder)
            self._file.truncate(self.shape[0] * self.shape[1] * _ITEM)  # sparse: zeros until written
        except OSError as e:
            raise self._error(e) from e
        self._fd = self._file.fileno()

    def _error(self, e: OSError) -> FilmscoreError:
        full = e.errno == errno.ENOSPC or (self.folder.exists() and shutil.disk_usage(self.folder).free < (1 << 20))
        why = "no space left on device" if full else (e.strerror or str(e))
        return FilmscoreError(f"{self.folder}: cannot write the delivery's working file ({why})")

    def _rows(self, key) -> tuple[int, int, int | slice]:
        rows, col = (key if isinstance(key, tuple) else (key, slice(None)))
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"a Spill reads and writes row slices, not {key!r}")
        a, b, _ = rows.indices(self.shape[0])
        return a, max(a, b), col

    def __getitem__(self, key) -> np.ndarray:
        a, b, col = self._rows(key)
        width = self.shape[1] * _ITEM
        raw = os.pread(self._fd, (b - a) * width, a * width)
        block = np.frombuffer(raw, np.float32).reshape(b - a, self.shape[1])
        return block[:, col].copy() if not isinstance(col, slice) or col != slice(None) else block.copy()

    def __setitem__(self, key, values) -> None:
        a, b, col = self._rows(key)
        if not isinstance(col, slice) or col != slice(None):
            raise TypeError("a Spill is written whole rows at a time")
        block = np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.float32).reshape(b - a, -1),
                                                     (b - a, self.shape[1])))
        data, off = memoryview(block).cast("B"), a * self.shape[1] * _ITEM
        try:
            while data:
                done = os.pwrite(self._fd, data, off)
                data, off = data[done:], off + done
        except OSError as e:
            raise self._error(e) from e

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SpillColumn:
    """Column `c` of a `Spill` read as a 1-D float32 signal: `col[a:b]`, `len(col)`, and `np.asarray(col)` (the whole
    column, for a caller that wants it in memory). A v2 render's stems' waves live in one Spill, a stem a column."""

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, spill: Spill, c: int):
        self.spill, self.c = spill, c
        self.shape = (spill.shape[0],)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.spill[rows, self.c]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[0:self.shape[0]], dtype)

