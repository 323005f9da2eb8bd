"""Bundle v2's stereo: the model generates each stem's mid signal (mono); each stem gets a side signal from the
corpus's own hall, and the mix is the sum of the stereo stems, so stems sum to the mix by construction.

Why not generate stereo: two Mels per stem double the Mel cache (~19 GB -> ~38 GB for 70 h), the VAE and vocoder
work of a cue and the UNet's input, and two independently vocoded channels of one centred source drift apart in
phase (a phasey, hollow centre). The corpus's stereo image is itself a fixed documented function of the score
(a pan per instrument, engine/data/stems.py's hall); its decorrelated part is the hall's. So:

    side = g_stem * (mid (*) d),   d = (hall_L - hall_R) / |hall_L - hall_R|   (engine/data/stems.py `hall_ir`)
    left = mid + side,  right = mid - side,  mix = sum of the stems

`d` is the difference of the hall's two independent noise tails: a reverberant, decorrelating filter of unit energy
with no direct sound, so mid = (L + R) / 2 is exactly what the model made (melody, chords and beats measured on the
mid are the model's own) and `g_stem` sets the width. `side_gains` measures g per stem on corpus clips: the RMS of a
stem's side over the RMS of its mid (pans and hall together); a bundle records the values it was built with.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio.spill import SpillColumn
from .data.stems import hall_ir

PLACE_BLOCK = 1 << 18  # rows per block of stereo placement: ~4x the side filter, so its history costs little


@lru_cache(maxsize=4)
def side_filter(sample_rate: int) -> np.ndarray:
    """`(n,)` float32 unit-energy decorrelating filter from the corpus hall (module docstring)."""
    ir = hall_ir(sample_rate).astype(np.float64)
    d = ir[:, 0] - ir[:, 1]
    return (d / np.sqrt(np.sum(d * d))).astype(np.float32)


class StereoStems:
    """The stereo stems of mono mids and their mix (module docstring), made a block of rows at a time, so a long
    cue's stereo signals need not be held whole: the side of rows [a, b) is the mid's rows [a - len(d) + 1, b)
    convolved with d, the same sum `place_stems` takes over the whole signal (to float rounding)."""

    def __init__(self, mids: dict[str, np.ndarray], side_gains: dict[str, float], sample_rate: int):
        # arrays, or columns of a working file read a block at a time (engine/audio/spill.py `SpillColumn`)
        self.mids = {k: v if isinstance(v, SpillColumn) else np.asarray(v, np.float32) for k, v in mids.items()}
        self.gains = {k: float(side_gains.get(k, 0.0)) for k in self.mids}
        self.d = side_filter(sample_rate)
        self.n = len(next(iter(self.mids.values()))) if self.mids else 0

    def _side(self, history: np.ndarray, a: int, s0: int) -> np.ndarray:
        """Rows [a, b) of `history` (rows [s0, b) of a mid, float64) convolved with the side filter."""
        from scipy.signal import fftconvolve

        return fftconvolve(history, self.d)[a - s0:len(history)]

    def _histories(self, a: int, b: int, names) -> tuple[int, dict[str, np.ndarray]]:
        """`s0` and `{name: rows [s0, b) of its mid, float64}`: the mid's history that reaches row a through the
        filter, read once for whatever is made of it."""
        s0 = max(a - len(self.d) + 1, 0)
        return s0, {name: self.mids[name][s0:b].astype(np.float64) for name in names}

    def _stem_rows(self, histories: dict[str, np.ndarray], a: int, s0: int, names) -> dict[str, np.ndarray]:
        out = {}
        for name in names:
            history = histories[name]
            m = history[a - s0:]
            g = self.gains[name]
            side = g * self._side(history, a, s0) if g > 0 and len(m) else np.zeros_like(m)
            out[name] = np.stack([m + side, m - side], axis=1)
        return out

    def _mix_rows(self, histories: dict[str, np.ndarray], a: int, s0: int) -> np.ndarray:
        mid = sum(h[a - s0:] for h in histories.values())
        weighted = sum(self.gains[k] * h for k, h in histories.items() if self.gains[k] > 0)
        side = self._side(weighted, a, s0) if np.any(weighted) else np.zeros_like(mid)
        return np.stack([mid + side, mid - side], axis=1)

    def rows(self, a: int, b: int, names=None) -> dict[str, np.ndarray]:
        """`{name: (b - a, 2) float64}`: rows [a, b) of the stereo stems `names` (default: every stem)."""
        names = tuple(self.mids if names is None else names)
        s0, histories = self._histories(a, b, names)
        return self._stem_rows(histories, a, s0, names)

    def mix_rows(self, a: int, b: int) -> np.ndarray:
        """`(b - a, 2) float64`: rows [a, b) of the mix, the stems' sum made whole: its mid the mids' sum, its side
        the side filter on the gain-weighted sum of the mids (the filter is linear: one convolution, not one per
        stem). The stems' own rows sum to it up to float rounding."""
        s0, histories = self._histories(a, b, self.mids)
        return self._mix_rows(histories, a, s0)

    def block(self, a: int, b: int, names=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`({name: rows}, mix rows)` of rows [a, b) (float64): the stems `names` (default: every stem) and the mix
        (`mix_rows`), made the same whichever stems are asked for; each mid read once. Blocks are independent (a
        delivery places several at once)."""
        names = tuple(self.mids if names is None else names)
        s0, histories = self._histories(a, b, self.mids)
        return self._stem_rows(histories, a, s0, names), self._mix_rows(histories, a, s0)

    def blocks(self, size: int, names=None):
        """`(a, {name: rows}, mix rows)` for consecutive blocks of `size` rows (`block`)."""
        for a in range(0, self.n, size):
            yield a, *self.block(a, min(a + size, self.n), names)


def place_stems(mids: dict[str, np.ndarray], side_gains: dict[str, float], sample_rate: int
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mono stems `{name: (n,)}` -> stereo stems `{name: (n, 2)}` float32 and their sum, the mix `(n, 2)`, whole
    (`StereoStems` makes them a block at a time)."""
    placed = StereoStems(mids, side_gains, sample_rate)
    stereo = {k: np.zeros((placed.n, 2), np.float32) for k in placed.mids}
    mix = np.zeros((placed.n, 2), np.float32)
    for a, rows, total in placed.blocks(PLACE_BLOCK):
        for k, v in rows.items():
            stereo[k][a:a + len(v)] = v
        mix[a:a + len(total)] = total
    return stereo, mix


def side_ratio(stereo: np.ndarray) -> float | None:
    """RMS of (L - R) / 2 over RMS of (L + R) / 2 of a `(n, 2)` signal; None for silence."""
    x = np.asarray(stereo, np.float64)
    mid = np.sqrt(np.mean(((x[:, 0] + x[:, 1]) / 2) ** 2))
    side = np.sqrt(np.mean(((x[:, 0] - x[:, 1]) / 2) ** 2))
    return float(side / mid) if mid > 1e-6 else None


def side_gains(stem_files: dict[str, list[Path]]) -> dict[str, float]:
    """Median `side_ratio` per stem over its files (stereo FLACs of corpus stems); silent files are skipped."""
    import soundfile as sf

    out = {}
    for stem, files in stem_files.items():
        ratios = [r for f in files if (r := side_ratio(sf.read(str(f), dtype="float32", always_2d=True)[0]))
                  is not None]
        out[stem] = round(float(np.median(ratios)), 4) if ratios else 0.0
    return out
