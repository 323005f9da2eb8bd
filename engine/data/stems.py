"""Corpus v2 audio: one FluidSynth pass renders the three stems dry; a synthetic hall is added per stem; the
stereo mix is their sum.

- **One pass, three stems.** The stems' tracks go into one MIDI file, stem k shifted by k x (clip length +
  `STEM_GAP_S`), and FluidSynth renders it once, dry (its own reverb and chorus off), stereo, with the pan of every
  channel (CC10) and the SoundFont's stereo samples. Each stem is then cut out of that render. Stems use disjoint
  channels and each segment is followed by a gap longer than any release tail, so a segment is the stem as a render
  of its tracks alone would be (events land on FluidSynth's 64-sample blocks, as in any render), and the SoundFont
  (a compressed .sf3 takes ~1.4 s to load its samples) loads once per clip, not three times.
- **Hall.** `hall_ir`: a fixed synthetic stereo impulse response (seed `REVERB_SEED`): 20 ms pre-delay, six early
  reflections within 7-45 ms, then a diffuse tail of independent Gaussian noise per channel (so it decorrelates
  left and right) in three bands decaying with RT60 2.4 s below 500 Hz, 2.0 s to 4 kHz and 1.2 s above (air
  absorbs the highs first); each channel normalised to unit energy. A clip's wet level `wet_db` is drawn from its
  seed in `WET_DB_RANGE` (energy of the reverberated signal relative to the dry one).
- **The relation, exactly:** `stem = g * (dry + 10^(wet_db/20) * dry (*) ir)` per channel, with (*) convolution,
  cut to the clip length; `mix = lead + accompaniment + percussion`; `g` is one gain per clip that brings the
  mix's RMS to -20 dBFS (peak at most -0.5 dBFS). Stored as PCM16, the three stems sum to the stored mix within
  3 quantisation steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import mido
import numpy as np

from .arrange_v2 import ClipArrangementV2
from .clip import PEAK_LIMIT, TARGET_RMS_DBFS
from .orchestration_v2 import STEMS

STEM_GAP_S = 4.0
FLUID_SETTINGS: dict[str, str | int | float] = {"synth.dynamic-sample-loading": 1}
REVERB_SEED = 20261202
PREDELAY_S = 0.02
IR_LENGTH_S = 2.6
RT60_BANDS = ((500.0, 2.4), (4000.0, 2.0), (None, 1.2))  # (upper edge Hz, RT60 s); None: up to Nyquist
WET_DB_RANGE = (-14.0, -8.0)


@dataclass
class StemAudio:
    """Rendered clip: `stems[name]` and `mix` `(n, 2)` float32 at `sample_rate`, after the clip gain `gain`;
    `wet_db` the hall level used; `present[name]` whether the stem holds any note."""

    stems: dict[str, np.ndarray]
    mix: np.ndarray
    sample_rate: int
    gain: float
    wet_db: float
    present: dict[str, bool]


@lru_cache(maxsize=4)
def hall_ir(sample_rate: int, seed: int = REVERB_SEED) -> np.ndarray:
    """`(n, 2)` float32 stereo impulse response of the synthetic hall (module docstring)."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n = int(IR_LENGTH_S * sample_rate)
    t = np.arange(n) / sample_rate
    pre = int(PREDELAY_S * sample_rate)
    out = np.zeros((n, 2), np.float64)
    for c in range(2):
        noise = rng.standard_normal(n)
        tail = np.zeros(n)
        lo_edge = None
        for hi_edge, rt60 in RT60_BANDS:
            if lo_edge is None:
                sos = butter(4, hi_edge, "lowpass", fs=sample_rate, output="sos")
            elif hi_edge is None or hi_edge >= sample_rate / 2:
                sos = butter(4, lo_edge, "highpass", fs=sample_rate, output="sos")
            else:
                sos = butter(4, [lo_edge, hi_edge], "bandpass", fs=sample_rate, output="sos")
            # amplitude falls 60 dB in rt60 seconds: exp(-ln(1000) t / rt60)
            tail += sosfilt(sos, noise) * np.exp(-np.log(1000.0) * t / rt60)
            lo_edge = hi_edge
        tail[:pre] = 0.0
        tail[pre:pre + int(0.01 * sample_rate)] *= np.linspace(0, 1, int(0.01 * sample_rate))  # diffuse onset
        for _ in range(6):  # early reflections (walls, stage), sparser and stronger than the tail
            k = int(rng.uniform(0.007, 0.045) * sample_rate)
            tail[k] += rng.uniform(0.3, 0.7) * rng.choice([-1.0, 1.0]) * np.abs(tail).max()
        out[:, c] = tail / np.sqrt(np.sum(tail ** 2))
    return out.astype(np.float32)


def stems_midi(arr: ClipArrangementV2) -> tuple[mido.MidiFile, dict[str, float]]:
    """One MIDI file with each stem's tracks shifted to its own segment; returns it and each stem's start in
    seconds."""
    tempo = mido.bpm2tempo(arr.qpm)
    tpb = arr.midi.ticks_per_beat
    sec_per_tick = tempo / 1e6 / tpb
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    mid.tracks.append(arr.midi.tracks[0].copy())
    starts = {}
    for k, stem in enumerate(STEMS):
        shift = int(round(k * (arr.duration_s + STEM_GAP_S) / sec_per_tick))
        starts[stem] = shift * sec_per_tick
        for info in arr.stem_tracks(stem):
            src = arr.midi.tracks[info.index]
            track = mido.MidiTrack(msg.copy() for msg in src)
            # every track opens with its name at delta 0: moving the first delta moves the whole track
            track[0] = track[0].copy(time=track[0].time + shift)
            mid.tracks.append(track)
    return mid, starts


def render_stems(arr: ClipArrangementV2, n_samples: int, sample_rate: int, seed: int,
                 soundfont: str | Path | None = None) -> StemAudio:
    """Render the three stems, add the hall, sum the mix, set the clip gain (module docstring)."""
    from scipy.signal import fftconvolve

    from ..audio.fluidsynth import render_midi

    mid, starts = stems_midi(arr)
    wave = render_midi(mid, sample_rate, soundfont, reverb=False, chorus=False, stereo=True,
                       settings=FLUID_SETTINGS)
    rng = np.random.default_rng(seed)
    wet_db = float(rng.uniform(*WET_DB_RANGE))
    wet = 10 ** (wet_db / 20)
    ir = hall_ir(sample_rate)
    stems, present = {}, {}
    for stem in STEMS:
        a = int(round(starts[stem] * sample_rate))
        dry = wave[a:a + n_samples]
        dry = np.pad(dry, ((0, n_samples - len(dry)), (0, 0)))
        present[stem] = bool(arr.stem_tracks(stem)) and any(len(arr.notes[t.name]) for t in arr.stem_tracks(stem))
        if not present[stem]:
            stems[stem] = np.zeros((n_samples, 2), np.float64)
            continue
        rev = np.stack([fftconvolve(dry[:, c], ir[:, c])[:n_samples] for c in range(2)], 1)
        stems[stem] = dry.astype(np.float64) + wet * rev
    mix = sum(stems.values())
    rms = float(np.sqrt(np.mean(mix ** 2)))
    peak = float(np.abs(mix).max())
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / max(rms, 1e-9), PEAK_LIMIT / max(peak, 1e-9))
    return StemAudio({k: (v * gain).astype(np.float32) for k, v in stems.items()}, (mix * gain).astype(np.float32),
                     sample_rate, gain, wet_db, present)
