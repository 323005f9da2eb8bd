"""Mastering a mix and its stems together, so the delivered stems still sum to the delivered mix.

Loudness normalisation is measured on the mix only; whatever it does to the mix (one gain, and where the true peak
would pass the ceiling the look-ahead limiter's per-sample gain, `loudness.limiter_gains`) is done, sample for
sample, to every stem: the limiter's gains are gathered in a gain curve (`normalize_source`'s `curve`) and a stem is
delivered as `stem * curve * gain`. Resampling and trimming are linear, so `sum(stems) == mix` before mastering
stays true after it up to float rounding. Normalising each stem on its own would not: a quiet percussion stem would
be raised to -23 LUFS like the mix, and the stems would no longer add up to anything the editor heard.

Streamed, as a v1 delivery is (engine/audio/mastering.py `master_streamed`): stereo placement (engine/stereo_v2.py),
the stems and the mix at the model rate, at the delivered rate, and the limited mix live in nameless working files
and are read a block at a time, so a delivery holds a few blocks however long the cue (a 10-minute stereo cue at
48 kHz is 230 MB of float32 per signal). The mix is mastered exactly as v1 masters a cue, and the same whether or
not stems are delivered (only the stems asked for are placed, resampled and followed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..options import DEFAULTS  # the render options' defaults (engine/options.py)
from .loudness import CHUNK, TRUE_PEAK_CEILING_DBTP, normalize_source
from .mastering import Channels, Mastered, resampled_spill
from .spill import Spill


class _Followed:
    """Rows of a stem times the mix's gain curve (float64): what `Mastered` scales by the final gain."""

    def __init__(self, stem: Spill, curve: Spill):
        self.stem, self.curve, self.shape = stem, curve, stem.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.stem[rows].astype(np.float64) * self.curve[rows].astype(np.float64)


class MasteredStems:
    """The mastered mix and stems of a cue, each read a block at a time (`Mastered`); `report`: the mix's loudness
    report as JSON; `placed_s`: the seconds stereo placement took (the render's `stereo` stage). Close it (or use
    it as a context manager) to free the working files."""

    def __init__(self, mix: Mastered, stems: dict[str, Mastered], placed_s: float, spills: list[Spill]):
        self.mix, self.stems, self.report, self.placed_s = mix, stems, mix.report, placed_s
        self._spills = spills

    def close(self) -> None:
        for m in (self.mix, *self.stems.values()):
            m.close()
        for s in self._spills:
            s.close()
        self._spills = []

    def __enter__(self) -> MasteredStems:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def master_stems(stereo, names, sr_in: int, sr_out: int, n_samples: int,
                 target_lufs: float = DEFAULTS.target_lufs, folder: str | Path | None = None,
                 ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> MasteredStems:
    """Master the mix of `stereo` (a `StereoStems`: its blocks of stereo stems and their sum, at `sr_in`) and the
    stems `names` of it: each resampled to `sr_out` and cut or zero-padded to exactly `n_samples`; the mix brought to
    `target_lufs` with true peak <= ceiling (`normalize_source`, v1's normalisation) and every stem given the same
    gains. Working files go to `folder` (the output's folder)."""
    names = tuple(names)
    spills: list[Spill] = []
    out_stems: dict[str, Mastered] = {}
    mixed = None
    try:
        t0 = time.perf_counter()
        placed = {k: Spill(stereo.n, 2, folder) for k in ("mix", *names)}
        spills += placed.values()
        for a, rows, total in stereo.blocks(CHUNK):
            placed["mix"][a:a + len(total)] = total
            for k in names:
                placed[k][a:a + len(total)] = rows[k]
        placed_s = time.perf_counter() - t0
        at_rate = {k: resampled_spill(Channels(v), sr_in, sr_out, n_samples, folder) for k, v in placed.items()}
        for v in placed.values():  # read once: the model-rate signals are not needed again
            v.close()
        spills = list(at_rate.values())
        curve = None
        if names:  # the limiter's gains, for the stems to follow (ones: a signal never limited is only scaled)
            curve = Spill(n_samples, 1, folder)
            spills.append(curve)
            for a in range(0, n_samples, CHUNK):
                b = min(a + CHUNK, n_samples)
                curve[a:b] = np.ones((b - a, 1), np.float32)
        chain = [at_rate["mix"]]  # the mix at the delivered rate, then each limited version of it
        spills.remove(at_rate["mix"])

        def store(shape: tuple[int, int]) -> Spill:
            if len(chain) > 1:  # a limited signal is made from the one before; older ones are not read again
                chain.pop(0).close()
            chain.append(Spill(shape[0], shape[1], folder))
            return chain[-1]

        try:
            signal, gain, report = normalize_source(chain[0], sr_out, target_lufs, ceiling_dbtp, store=store,
                                                    curve=curve)
        except BaseException:
            for s in chain:
                s.close()
            raise
        mixed = Mastered(signal, gain, report.to_json(), chain)
        for k in names:
            source = _Followed(at_rate[k], curve) if report.limited else at_rate[k]
            out_stems[k] = Mastered(source, gain, mixed.report, [at_rate[k]])
            spills.remove(at_rate[k])
    except BaseException:
        for s in spills:
            s.close()
        for m in ([mixed] if mixed is not None else []) + list(out_stems.values()):
            m.close()
        raise
    return MasteredStems(mixed, out_stems, placed_s, spills)
