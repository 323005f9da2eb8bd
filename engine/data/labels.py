"""Corpus v2 labels: what the score says, per clip, frame-exact at 100 frames/s (the control grid).

Everything is computed from the notes exactly as written to the clip's MIDI (`ClipArrangementV2.notes`, tick-exact
seconds), with the frame rule of `controls.midi` (a note covers the frames whose centre (i + 0.5)/100 s it spans).
`labels.npz` holds the arrays, `labels.json` the scalars, names and the schema version (`LABELS_SCHEMA`); a reader
checks the version (`load_labels`). Keys (T frames, K beats, S harmony slots):

frame arrays `(T, ...)`:
- `melody_pitch` int16: MIDI pitch of the lead (the melody track's highest sounding note), 0 where it rests.
  The pitch class one-hot of v1's melody control is `melody_chroma(melody_pitch)`; the register is the pitch.
- `dynamics_level` float32: the phrase-dynamics level L(t) in [0, 1] at the frame start (`DynamicsPlan.curve`).
- `dynamics_db` float32: the mix's loudness as `controls_from_audio` extracts it (what evaluation re-extracts).
- `chord_chroma` uint8 `(T, 12)`: pitch classes of the harmony slot's triad; `chord_root` int8 (-1: none).
- `bass_pitch` int16: lowest accompaniment-stem pitch sounding at the frame (0: none).
- `beat`, `downbeat` uint8: 1 on the frame that holds a beat / downbeat time (floor(t * 100)).
- `density` float32 `(T, 3)`: onsets per second per stem (lead, accompaniment, percussion) in a 1 s window
  centred on the frame; notes starting on the same frame (a chord, a doubling) are one onset.
- `stem_active` uint8 `(T, 3)`: 1 where a stem has a note sounding.
beat arrays `(K, ...)`: `beat_s` float64 (seconds), `beat_downbeat` bool, `beat_chord_root` int8,
  `beat_chord_pcs` uint8 `(K, 12)` (the triad in effect at the beat), `beat_sounding_pcs` uint8 `(K, 12)` (pitch
  classes of accompaniment notes sounding at any time within the beat), `beat_bass_pitch` int16 (lowest
  accompaniment pitch sounding at the beat time, 0: none).
slot arrays `(S,)`: `slot_s`, `slot_root`; `(S, 3)`: `slot_pcs`.
picture (the paired film's drivers at 10 frames/s, `film_pairing.FilmPlan`): `film_level`, `film_hue`,
  `film_saturation`, `film_value`, `film_flash`: the raw picture facts the cue plan's mood is computed from.
labels.json: schema, frame_rate, n_frames, duration_s, tempo_qpm (quarter notes per minute), beat_ql, beat_bpm,
  tonic (0-11), key (name), mode, master, orchestration {name, tracks [{name, stem, program, channel, pan}]},
  lead {median, low, high, octave_shift, range}, stems, cuts_s, hits_s, and `mood` {clip: {energy, valence,
  tension}, shots: [{start_s, end_s, energy, valence, tension}]} computed from the film encoder's features of the
  paired film by the cue plan's own `engine.plan.mood.mood_of_film` (`mood_labels`; absent for a clip built
  without film features or where the cue plan is not installed).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import sidecar
from ..constants import CONTROL_FRAME_RATE, N_PITCH_CLASSES
from .arrange_v2 import ClipArrangementV2
from .film_pairing import FilmPlan
from .music21_source import PITCH_NAMES
from .orchestration_v2 import LEAD_RANGE, DEFAULT_LEAD_RANGE, STEMS

LABELS_SCHEMA = sidecar.LABELS.tag
DENSITY_WINDOW_S = 1.0


class LabelsError(ValueError):
    """A labels file of another schema version, or a missing key."""


def note_frames(on_s: np.ndarray, off_s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last frame whose centre a note covers (the rule of `controls.midi._note_frames`)."""
    a = np.floor(on_s * CONTROL_FRAME_RATE + 0.5).astype(np.int64)
    b = np.floor(off_s * CONTROL_FRAME_RATE + 0.5).astype(np.int64)
    return np.clip(a, 0, n), np.clip(b, 0, n)


def melody_chroma(melody_pitch: np.ndarray) -> np.ndarray:
    """`(T, 12)` float32 one-hot pitch class of `melody_pitch` (rows of zeros where it is 0): v1's melody control."""
    out = np.zeros((len(melody_pitch), N_PITCH_CLASSES), np.float32)
    voiced = melody_pitch > 0
    out[np.nonzero(voiced)[0], melody_pitch[voiced] % N_PITCH_CLASSES] = 1.0
    return out


def _stem_notes(arr: ClipArrangementV2, stem: str, pitched_only: bool = False) -> np.ndarray:
    rows = [arr.notes[t.name] for t in arr.stem_tracks(stem) if not (pitched_only and t.program is None)]
    rows = [r for r in rows if len(r)]
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def compute_labels(arr: ClipArrangementV2, n_frames: int, dynamics_db: np.ndarray, film: FilmPlan | None,
                   master: str, orchestration: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, scalars) of one clip (module docstring)."""
    n = n_frames
    arrays: dict[str, np.ndarray] = {}
    # melody: highest sounding note of the melody track per frame
    lead = arr.notes["melody"]
    top = np.zeros(n, np.int16)
    a, b = note_frames(lead[:, 0], lead[:, 0] + lead[:, 1], n)
    for lo, hi, p in zip(a, b, lead[:, 2].astype(np.int16)):
        if hi > lo:
            np.maximum(top[lo:hi], p, out=top[lo:hi])
    arrays["melody_pitch"] = top
    arrays["dynamics_level"] = arr.dynamics.curve(CONTROL_FRAME_RATE)[:n]
    arrays["dynamics_db"] = np.asarray(dynamics_db, np.float32)[:n]

    # harmony slots: the triad in effect per frame and per beat
    slot_frames = np.floor(arr.slots_s * CONTROL_FRAME_RATE + 0.5).astype(np.int64)
    slot_pcs = np.asarray([c.pcs for c in arr.chords], np.int8).reshape(-1, 3)
    slot_root = np.asarray([c.root for c in arr.chords], np.int8)
    frame_slot = np.searchsorted(slot_frames, np.arange(n), side="right") - 1
    chord_chroma = np.zeros((n, N_PITCH_CLASSES), np.uint8)
    chord_root = np.full(n, -1, np.int8)
    has = frame_slot >= 0
    for j in range(3):
        chord_chroma[np.nonzero(has)[0], slot_pcs[frame_slot[has], j]] = 1
    chord_root[has] = slot_root[frame_slot[has]]
    arrays.update(chord_chroma=chord_chroma, chord_root=chord_root, slot_s=arr.slots_s.astype(np.float64),
                  slot_root=slot_root, slot_pcs=slot_pcs)

    acc = _stem_notes(arr, "accompaniment")
    bass = np.full(n, 128, np.int16)
    a, b = note_frames(acc[:, 0], acc[:, 0] + acc[:, 1], n)
    for lo, hi, p in zip(a, b, acc[:, 2].astype(np.int16)):
        if hi > lo:
            np.minimum(bass[lo:hi], p, out=bass[lo:hi])
    bass[bass == 128] = 0
    arrays["bass_pitch"] = bass

    # beats
    beat_s = arr.beats_s.astype(np.float64)
    beat_frame = np.clip(np.floor(beat_s * CONTROL_FRAME_RATE + 1e-6).astype(np.int64), 0, n - 1)
    beat = np.zeros(n, np.uint8)
    downbeat = np.zeros(n, np.uint8)
    beat[beat_frame] = 1
    downbeat[beat_frame[arr.downbeats]] = 1
    beat_end = np.append(beat_s[1:], arr.duration_s)
    beat_slot = np.clip(np.searchsorted(arr.slots_s, beat_s + 1e-9, side="right") - 1, 0, len(arr.chords) - 1)
    beat_chord = np.zeros((len(beat_s), N_PITCH_CLASSES), np.uint8)
    for j in range(3):
        beat_chord[np.arange(len(beat_s)), slot_pcs[beat_slot, j]] = 1
    sounding = np.zeros((len(beat_s), N_PITCH_CLASSES), np.uint8)
    beat_bass = np.zeros(len(beat_s), np.int16)
    for k, (s, e) in enumerate(zip(beat_s, beat_end)):
        inside = acc[(acc[:, 0] < e - 1e-9) & (acc[:, 0] + acc[:, 1] > s + 1e-9)]
        sounding[k, inside[:, 2].astype(np.int64) % N_PITCH_CLASSES] = 1
        at = acc[(acc[:, 0] <= s + 1e-9) & (acc[:, 0] + acc[:, 1] > s + 1e-9)]
        beat_bass[k] = int(at[:, 2].min()) if len(at) else 0
    arrays.update(beat=beat, downbeat=downbeat, beat_s=beat_s, beat_downbeat=arr.downbeats.astype(bool),
                  beat_chord_root=slot_root[beat_slot], beat_chord_pcs=beat_chord, beat_sounding_pcs=sounding,
                  beat_bass_pitch=beat_bass)

    # density and activity per stem
    density = np.zeros((n, len(STEMS)), np.float32)
    active = np.zeros((n, len(STEMS)), np.uint8)
    half = int(round(DENSITY_WINDOW_S * CONTROL_FRAME_RATE / 2))
    for j, stem in enumerate(STEMS):
        notes = _stem_notes(arr, stem)
        onsets = np.zeros(n + 1, np.float64)
        if len(notes):
            f = np.clip(np.floor(notes[:, 0] * CONTROL_FRAME_RATE + 1e-6).astype(np.int64), 0, n - 1)
            onsets[np.unique(f)] = 1.0  # a chord or a doubling is one onset
            a, b = note_frames(notes[:, 0], notes[:, 0] + notes[:, 1], n)
            for lo, hi in zip(a, b):
                active[lo:hi, j] = 1
        c = np.concatenate([[0.0], np.cumsum(onsets[:n])])
        lo = np.clip(np.arange(n) - half, 0, n)
        hi = np.clip(np.arange(n) + half, 0, n)
        density[:, j] = (c[hi] - c[lo]) / DENSITY_WINDOW_S
    arrays.update(density=density, stem_active=active)

    if film is not None:
        arrays.update(film_level=film.level.astype(np.float32), film_hue=film.hue.astype(np.float32),
                      film_saturation=film.saturation.astype(np.float32), film_value=film.value.astype(np.float32),
                      film_flash=film.flash.astype(np.float32))

    voiced = lead[:, 2]
    beat_ql = float(np.median(np.diff(beat_s))) * arr.qpm / 60.0 if len(beat_s) > 1 else 1.0
    prog = next(t.program for t in arr.tracks if t.name == "melody")
    scalars: dict[str, Any] = {
        sidecar.KEY: LABELS_SCHEMA, "frame_rate": CONTROL_FRAME_RATE, "n_frames": n,
        "duration_s": round(n / CONTROL_FRAME_RATE, 3), "tempo_qpm": round(arr.qpm, 4), "beat_ql": round(beat_ql, 4),
        "beat_bpm": round(arr.qpm / beat_ql, 4), "tonic": arr.tonic, "key": PITCH_NAMES[arr.tonic], "mode": arr.mode,
        "master": master,
        "orchestration": {"name": orchestration, "tracks": [asdict(t) for t in arr.tracks]},
        "lead": {"median": float(np.median(voiced)) if len(voiced) else None,
                 "low": int(voiced.min()) if len(voiced) else None,
                 "high": int(voiced.max()) if len(voiced) else None,
                 "octave_shift": arr.lead_octave, "range": list(LEAD_RANGE.get(prog, DEFAULT_LEAD_RANGE))},
        "stems": list(STEMS), "hits_s": [round(h, 4) for h in arr.hits_s],
    }
    if film is not None:
        scalars["cuts_s"] = [round(c, 4) for c in film.cuts_s]
        scalars["film_fps"] = film.fps
    return arrays, scalars


def mood_labels(features, cuts_s: list[float], duration_s: float) -> dict[str, Any] | None:
    """The picture's mood as the cue plan reads it (`engine.plan.mood.mood_of_film`, the film encoder's features):
    over the whole clip and per shot (between the paired film's cuts). None when the cue plan is not installed."""
    try:
        from ..plan.mood import mood_of_film
    except ImportError:
        return None
    edges = [0.0, *[float(c) for c in cuts_s], float(duration_s)]
    return {"clip": mood_of_film(features, 0.0, duration_s).to_json(),
            "shots": [{"start_s": round(a, 4), "end_s": round(b, 4), **mood_of_film(features, a, b).to_json()}
                      for a, b in zip(edges[:-1], edges[1:]) if b > a]}


def save_labels(dir_: Path, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
    """Write `labels.npz` and `labels.json` into `dir_` (each written whole, then renamed)."""
    tmp = dir_ / f".labels.{os.getpid()}.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, dir_ / "labels.npz")
    tmp = dir_ / f".labels.{os.getpid()}.json"
    tmp.write_text(json.dumps(scalars, indent=1))
    os.replace(tmp, dir_ / "labels.json")


def load_labels(dir_: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, scalars) of a clip directory; raises `LabelsError` for another schema version."""
    dir_ = Path(dir_)
    try:  # checked, and upgraded from an older major, by engine/sidecar.py
        scalars = sidecar.load(sidecar.LABELS, dir_ / "labels.json")
    except sidecar.SchemaError as e:
        raise LabelsError(f"{e}; this reader knows schema {LABELS_SCHEMA!r}") from None
    with np.load(dir_ / "labels.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, scalars
