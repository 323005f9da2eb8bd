"""Delivery mastering: model-rate waveform -> the timeline's rate, exact length in samples, loudness-normalised
with true peak under the ceiling (engine/audio/loudness.py).

Two forms of one computation: `master` returns the mastered cue as an array; `master_streamed` keeps the
delivered-rate signal in a working file (engine/audio/spill.py) and gives the mastered cue a block at a time, so a
delivery holds a few blocks however long the cue (a 10-minute cue at 48 kHz is 115 MB of float32 per copy). Both
resample, trim, measure and limit in the same chunks, so they give the same samples (tests/test_streamed_delivery.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..options import DEFAULTS  # the render options' defaults (engine/options.py)
from .io import resample, resample_piece, resample_spans
from .loudness import CHUNK, TRUE_PEAK_CEILING_DBTP, Workers, in_turn, normalize_loudness, normalize_source
from .spill import Spill


def master(wave: np.ndarray, sr_in: int, sr_out: int, n_samples: int,
           target_lufs: float = DEFAULTS.target_lufs) -> tuple[np.ndarray, dict]:
    """Resample `(n,)` float audio, trim/pad to exactly `n_samples`, normalise it to `target_lufs` with true peak
    <= -1 dBTP. Returns the audio and the loudness report as JSON."""
    wave = np.asarray(wave, np.float32)
    out = resample(wave, sr_in, sr_out)
    out = out[:n_samples] if out.shape[0] >= n_samples else np.pad(out, (0, n_samples - out.shape[0]))
    # normalised in place unless `out` is still the caller's array (no resampling, nothing trimmed or padded)
    out, report = normalize_loudness(out, sr_out, target_lufs, in_place=not np.shares_memory(out, wave))
    return out, report.to_json()


class Mastered:
    """A mastered cue read a block at a time: `m[a:b]` is float32 `(b - a, channels)`, the delivered samples
    (the normalised signal times its gain, in float64, as `normalize_loudness` makes them); `report` is the
    loudness report as JSON. Reads like the row slices of an array (delivery.py writes it a block at a time).
    Close it (or use it as a context manager) to free its working files."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, signal, gain: float, report: dict, spills: list[Spill]):
        self.signal, self.gain, self.report, self._spills = signal, gain, report, spills
        self.shape = signal.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return (self.signal[rows].astype(np.float64) * self.gain).astype(np.float32)

    def blocks(self, size: int = CHUNK):
        """The delivered samples in order, `size` rows at a time."""
        for a in range(0, self.shape[0], size):
            yield self[a:a + size]

    def close(self) -> None:
        for s in self._spills:
            s.close()
        self._spills = []

    def __enter__(self) -> Mastered:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resampled_spill(wave, sr_in: int, sr_out: int, n_samples: int, folder: str | Path | None = None,
                    workers: Workers = in_turn) -> Spill:
    """`(n,)` or `(channels, n)` model-rate audio (an array, or a `Spill` read through `Channels`) resampled a piece
    at a time into a working file `(n_samples, channels)` at `sr_out`: trimmed, or zero-padded as `master` pads.
    The pieces (engine/audio/io.py `resample_spans`) are units on `workers`, each writing its own rows."""
    channels = 1 if len(wave.shape) == 1 else wave.shape[0]
    out = Spill(n_samples, channels, folder)

    def piece(span: tuple[int, int, int, int]) -> None:
        a, y = resample_piece(wave, span, sr_in, sr_out)
        take = y[..., :max(0, min(y.shape[-1], n_samples - a))]
        if take.size:
            out[a:a + take.shape[-1]] = take.reshape(channels, -1).T
        # rows past the resampled length stay zero: `master`'s padding

    try:
        workers(piece, resample_spans(wave.shape[-1], sr_in, sr_out))
    except BaseException:
        out.close()
        raise
    return out


class Channels:
    """A `(n, channels)` sample source (a `Spill`) read as `(channels, n)`, the layout `resample_blocks` slices."""

    def __init__(self, rows):
        self.rows = rows
        self.shape = (rows.shape[1], rows.shape[0])

    def __getitem__(self, key) -> np.ndarray:
        _, cols = key  # x[..., a:b]
        return self.rows[cols].T

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # a short signal is resampled in one call
        return np.asarray(self[..., 0:self.shape[1]], dtype)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self, dtype)


def master_streamed(wave: np.ndarray, sr_in: int, sr_out: int, n_samples: int,
                    target_lufs: float = DEFAULTS.target_lufs,
                    folder: str | Path | None = None, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP,
                    workers: Workers = in_turn) -> Mastered:
    """`master` without a whole-cue array at the delivered rate: `(n,)` model-rate audio is resampled a piece at a
    time into a working file in `folder` (the output's folder: the file has no name and is gone when closed),
    trimmed or zero-padded to exactly `n_samples`, measured and, where needed, limited into another working file
    (the previous one closed), the measuring and limiting on `workers` (loudness.py). Returns the `Mastered` cue;
    the same samples and report as `master`."""
    spills = [resampled_spill(np.asarray(wave, np.float32), sr_in, sr_out, n_samples, folder, workers)]
    try:
        base = spills[0]

        def store(shape: tuple[int, int]) -> Spill:
            if len(spills) > 1:  # a limited signal is made from the one before; older ones are not read again
                spills.pop(0).close()
            spills.append(Spill(shape[0], shape[1], folder))
            return spills[-1]

        signal, gain, report = normalize_source(base, sr_out, target_lufs, ceiling_dbtp,
                                                store=store, workers=workers)
    except BaseException:
        for s in spills:
            s.close()
        raise
    return Mastered(signal, gain, report.to_json(), spills)
