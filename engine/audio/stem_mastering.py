"""Mastering a mix and its stems together, so the delivered stems still sum to the delivered mix.

Loudness normalisation is measured on the mix only; whatever it does to the mix (one gain, and where the true peak
would pass the ceiling the look-ahead limiter's per-sample gain, `loudness.limiter_gain`) is done, sample for
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
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..options import DEFAULTS  # the render options' defaults (engine/options.py)
from .loudness import CHUNK, TRUE_PEAK_CEILING_DBTP, Workers, in_turn, normalize_source
from .mastering import Channels, Mastered, resampled_spill
from .spill import Spill


class _Followed:
    """Rows of a stem times the mix's gain curve (float64): what `Mastered` scales by the final gain."""

    def __init__(self, stem: Spill, curve: Spill):
        self.stem, self.curve, self.shape = stem, curve, stem.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.stem[rows].astype(np.float64) * self.curve[rows].astype(np.float64)


class MasteredStems(ExitStack):
    """The mastered mix and stems of a cue, each read a block at a time (`Mastered`); `report`: the mix's loudness
    report as JSON; `placed_s`: the seconds stereo placement took (the render's `stereo` stage). It owns their
    working files: close it (or use it as a context manager) to free them."""

    def __init__(self, mix: Mastered, stems: dict[str, Mastered], placed_s: float):
        super().__init__()
        self.mix, self.stems, self.report, self.placed_s = mix, stems, mix.report, placed_s


def master_stems(stereo, names, sr_in: int, sr_out: int, n_samples: int,
                 target_lufs: float = DEFAULTS.target_lufs, folder: str | Path | None = None,
                 ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP, workers: Workers = in_turn) -> MasteredStems:
    """Master the mix of `stereo` (a `StereoStems`: its blocks of stereo stems and their sum, at `sr_in`) and the
    stems `names` of it: each resampled to `sr_out` and cut or zero-padded to exactly `n_samples`; the mix brought to
    `target_lufs` with true peak <= ceiling (`normalize_source`, v1's normalisation) and every stem given the same
    gains; placement, resampling, measuring and limiting on `workers` (loudness.py). Working files go to `folder`
    (the output's folder); on an error every one is closed."""
    names = tuple(names)
    with ExitStack() as owned:  # the working files the result reads; handed to it at the end
        with ExitStack() as placing:  # the model-rate signals: read once, by the resampling
            t0 = time.perf_counter()
            placed = {k: placing.enter_context(Spill(stereo.n, 2, folder)) for k in ("mix", *names)}

            def place(a: int) -> None:  # a block a unit on `workers`, each writing its own rows
                rows, total = stereo.block(a, min(a + CHUNK, stereo.n), names)
                placed["mix"][a:a + len(total)] = total
                for k in names:
                    placed[k][a:a + len(total)] = rows[k]

            workers(place, range(0, stereo.n, CHUNK))
            placed_s = time.perf_counter() - t0
            at_rate = {k: owned.enter_context(resampled_spill(Channels(v), sr_in, sr_out, n_samples, folder,
                                                              workers))
                       for k, v in placed.items()}
        curve = None
        if names:  # the limiter's gains, for the stems to follow (ones: a signal never limited is only scaled)
            curve = owned.enter_context(Spill(n_samples, 1, folder))
            for a in range(0, n_samples, CHUNK):
                b = min(a + CHUNK, n_samples)
                curve[a:b] = np.ones((b - a, 1), np.float32)
        chain = [at_rate["mix"]]  # the mix at the delivered rate, then each limited version of it

        def store(shape: tuple[int, int]) -> Spill:
            if len(chain) > 1:  # a limited signal is made from the one before; older ones are not read again
                chain.pop(0).close()
            chain.append(owned.enter_context(Spill(shape[0], shape[1], folder)))
            return chain[-1]

        signal, gain, report = normalize_source(chain[0], sr_out, target_lufs, ceiling_dbtp, store=store,
                                                curve=curve, workers=workers)
        mixed = Mastered(signal, gain, report.to_json(), [])
        stems = {k: Mastered(_Followed(at_rate[k], curve) if report.limited else at_rate[k], gain, mixed.report, [])
                 for k in names}
        result = MasteredStems(mixed, stems, placed_s)
        result.push(owned.pop_all())
    return result
