"""Reference audio → local controls, with Music ControlNet's recipe (arXiv 2311.07069, sec. 3.1 and app. A).

- **Melody**: high-pass the audio at 261.2 Hz (middle C: keeps the bass line from taking the argmax), librosa
  chroma (power STFT, n_fft 2048, librosa's chroma filter bank at the estimated tuning), argmax → one-hot per frame.
  Frames that are too quiet to carry a pitch are all-zero rows (see `voiced_mask`). One departure from librosa's
  defaults, measured: the filter bank's octave weighting is centred on A4 (440 Hz) with 0.7 octave width
  (`CHROMA_OCTAVE_WEIGHTING`) instead of 880 Hz / 2 octaves, which favours a melody's fundamentals over its upper
  partials (a clarinet's 3rd harmonic otherwise wins the argmax: 0.18 → 0.77 of frames right). Pass
  `octave_weighting=LIBROSA_OCTAVE_WEIGHTING` to `chroma_from_audio` for librosa's exact filter bank;
  docs/controls.md gives both figures per instrument.
- **Dynamics**: frame energy of the unfiltered audio in dB (mean square over the 1024-sample Mel window), floored at
  `DYNAMICS_FLOOR_DB`, Savitzky-Golay smoothed over ~1 s, as the MIDI path does.

Frames sit on the Mel grid: 16 kHz, hop 160, frame i centred on sample 160*i + 80, i.e. covering [i/100, (i+1)/100)
s, as the Mel front-end (engine/audio/mel.py, AudioLDM padding) places them. The STFT runs in chunks of frames so
memory stays flat for long files (10 min: ~60 k frames).
"""

from __future__ import annotations

import numpy as np

from ..constants import CONTROL_FRAME_RATE, MEL_HOP, MODEL_SAMPLE_RATE, N_PITCH_CLASSES
from ..errors import FilmscoreError
from ..extras import require
from .midi import DYNAMICS_FLOOR_DB, smooth_db
from .types import Controls

HIGHPASS_HZ = 261.2
"""Music ControlNet's melody high-pass cutoff (middle C)."""
HIGHPASS_ORDER = 4
"""Butterworth order, applied forward and backward (zero phase, 8th-order magnitude roll-off)."""
CHROMA_N_FFT = 2048
"""128 ms at 16 kHz: 7.8 Hz bins, finer than the 15.6 Hz semitone step at middle C."""
CHROMA_OCTAVE_WEIGHTING: tuple[float, float | None] = (4.0, 0.7)
"""(ctroct, octwidth) of `librosa.filters.chroma`: octaves above A0 (27.5 Hz) → centre 440 Hz, Gaussian width."""
LIBROSA_OCTAVE_WEIGHTING: tuple[float, float | None] = (5.0, 2.0)
ENERGY_WINDOW = 1024
"""Dynamics window: the Mel front-end's window length."""
VOICED_ABS_DB = -70.0
"""A frame carries melody only if its high-passed level (mean square, dBFS) reaches this ..."""
VOICED_REL_DB = 50.0
"""... and is within this many dB of the loud frames of the unfiltered audio (99th percentile of frame levels)."""
SILENT_PEAK = 1e-4
"""Peak amplitude below which (-80 dBFS) the whole reference counts as silent."""
TUNING_MAX_FRAMES = 2000
"""Tuning is estimated on at most this many evenly spaced frames (librosa's piptrack is slow on long files)."""
CHUNK_FRAMES = 4096


class ReferenceAudioError(FilmscoreError):
    """A reference recording that cannot give controls: empty, silent, not finite, or not mono."""


def _highpass(wave: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(HIGHPASS_ORDER, HIGHPASS_HZ, btype="highpass", fs=sr, output="sos")
    return sosfiltfilt(sos, wave).astype(np.float32)


def _frames(x: np.ndarray, n_frames: int, win: int, hop: int = MEL_HOP) -> np.ndarray:
    """`(n_frames, win)` strided view: frame i centred on sample hop*i + hop/2 (zero-padded at both ends)."""
    left = (win - hop) // 2
    need = (n_frames - 1) * hop + win
    xp = np.zeros(need, np.float32)
    src = x[: max(0, need - left)]
    xp[left:left + src.size] = src
    return np.lib.stride_tricks.sliding_window_view(xp, win)[::hop][:n_frames]


def _frame_levels_db(x: np.ndarray, n_frames: int, win: int) -> np.ndarray:
    """Mean square per frame in dB (float64), via a cumulative sum: O(n), no framing copy."""
    left = (win - MEL_HOP) // 2
    sq = np.concatenate([np.zeros(left + 1), x.astype(np.float64) ** 2, np.zeros(win)])
    cs = np.cumsum(sq)
    starts = np.arange(n_frames) * MEL_HOP
    ms = np.maximum((cs[starts + win] - cs[starts]) / win, 0.0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.maximum(ms, 1e-20))


def voiced_mask(hp_levels_db: np.ndarray, raw_levels_db: np.ndarray) -> np.ndarray:
    """Frames that carry melody: high-passed level >= `VOICED_ABS_DB` dBFS and within `VOICED_REL_DB` dB of the
    loud frames of the unfiltered audio (99th percentile). Silence, room tone and passages with nothing above
    middle C (a bass line alone) are rests."""
    if hp_levels_db.size == 0:
        return np.zeros(0, bool)
    loud = float(np.percentile(raw_levels_db, 99))
    return hp_levels_db >= max(VOICED_ABS_DB, loud - VOICED_REL_DB)


def _chroma_filters(sr: int, tuning: float, octave_weighting: tuple[float, float | None]) -> np.ndarray:
    librosa = require("librosa", "reference", "chroma of a reference recording")

    ctroct, octwidth = octave_weighting
    return librosa.filters.chroma(sr=sr, n_fft=CHROMA_N_FFT, tuning=tuning, n_chroma=N_PITCH_CLASSES,
                                  ctroct=ctroct, octwidth=octwidth)


def _estimate_tuning(frames: np.ndarray, window: np.ndarray, sr: int) -> float:
    librosa = require("librosa", "reference", "chroma of a reference recording")

    n = frames.shape[0]
    idx = np.linspace(0, n - 1, min(n, TUNING_MAX_FRAMES)).astype(np.int64)
    from scipy import fft

    mag = np.abs(fft.rfft(frames[idx] * window, axis=1)).T
    return float(librosa.estimate_tuning(S=mag, sr=sr, n_fft=CHROMA_N_FFT))


def chroma_from_audio(wave: np.ndarray, sr: int = MODEL_SAMPLE_RATE, n_frames: int | None = None,
                      tuning: float | None = None,
                      octave_weighting: tuple[float, float | None] = CHROMA_OCTAVE_WEIGHTING,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`(T, 12)` float32 chroma (each frame scaled to max 1) of the 261.2 Hz high-passed 16 kHz audio, and `(T,)`
    high-passed frame levels in dB. `tuning` None: estimated (fraction of a semitone, librosa's convention)."""
    if sr != MODEL_SAMPLE_RATE:
        raise ValueError(f"chroma_from_audio expects {MODEL_SAMPLE_RATE} Hz audio, got {sr}")
    if n_frames is None:
        n_frames = int(np.ceil(wave.size / MEL_HOP))
    if n_frames <= 0:
        return np.zeros((0, N_PITCH_CLASSES), np.float32), np.zeros(0)
    hp = _highpass(wave, sr)
    frames = _frames(hp, n_frames, CHROMA_N_FFT)
    window = np.hanning(CHROMA_N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa.stft uses
    if tuning is None:
        tuning = _estimate_tuning(frames, window, sr) if n_frames else 0.0
    filt = _chroma_filters(sr, tuning, octave_weighting).astype(np.float32)
    chroma = np.zeros((n_frames, N_PITCH_CLASSES), np.float32)
    from scipy import fft

    for a in range(0, n_frames, CHUNK_FRAMES):
        spec = fft.rfft(frames[a:a + CHUNK_FRAMES] * window, axis=1)  # float32 in, complex64 out: 10x numpy's
        power = spec.real ** 2 + spec.imag ** 2
        chroma[a:a + CHUNK_FRAMES] = power @ filt.T
    peak = chroma.max(axis=1, keepdims=True)
    chroma = np.divide(chroma, peak, out=np.zeros_like(chroma), where=peak > 0)
    return chroma, _frame_levels_db(hp, n_frames, ENERGY_WINDOW)


def energy_db(wave: np.ndarray, n_frames: int) -> np.ndarray:
    """`(n_frames,)` float32 raw frame energy in dB (mean square over the 1024-sample Mel window, floored)."""
    return np.maximum(_frame_levels_db(wave, n_frames, ENERGY_WINDOW), DYNAMICS_FLOOR_DB).astype(np.float32)


def controls_from_audio(wave: np.ndarray, sr: int, n_frames: int | None = None) -> Controls:
    """Melody and dynamics of a mono recording `(n,)` at `sr` Hz, at 100 frames/s on the Mel grid.

    `n_frames` None: ceil(duration * 100). Audio at another rate is resampled to 16 kHz first. Raises
    `ReferenceAudioError` for empty, non-finite, multi-channel or silent input. A recording with no voiced frame
    (e.g. only bass) gives a dynamics-only control (melody absent)."""
    from ..audio.io import resample

    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ReferenceAudioError(f"reference audio must be mono (n,), got shape {wave.shape}")
    if wave.size == 0:
        raise ReferenceAudioError("reference audio holds no samples")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ReferenceAudioError(f"sample rate must be a positive integer, got {sr!r}")
    wave = wave.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wave)):
        raise ReferenceAudioError("reference audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENT_PEAK:
        raise ReferenceAudioError(f"reference audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    wave = resample(wave, int(sr), MODEL_SAMPLE_RATE)
    if n_frames is None:
        n_frames = int(np.ceil(wave.size * CONTROL_FRAME_RATE / MODEL_SAMPLE_RATE))
    chroma, hp_db = chroma_from_audio(wave, MODEL_SAMPLE_RATE, n_frames)
    raw_db = _frame_levels_db(wave, n_frames, ENERGY_WINDOW)
    voiced = voiced_mask(hp_db, raw_db) & (chroma.max(axis=1) > 0)
    melody = np.zeros((n_frames, N_PITCH_CLASSES), np.float32)
    rows = np.nonzero(voiced)[0]
    melody[rows, chroma[rows].argmax(axis=1)] = 1.0
    dynamics = smooth_db(np.maximum(raw_db, DYNAMICS_FLOOR_DB))
    return Controls(melody, dynamics, melody_present=bool(rows.size), dynamics_present=True)
