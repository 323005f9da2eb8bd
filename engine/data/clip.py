"""One corpus clip, end to end: arranged MIDI -> FluidSynth audio -> controls -> paired film, written atomically.

Files of a clip, in `clips/<master>/<clip id>/` under the corpus directory:
- `audio.flac`: 16 kHz mono PCM16, exactly `duration_s` long (the render's release tail past the last bar line
  is cut), one gain per clip so that its RMS is -20 dBFS (peak at most -0.5 dBFS): the shape is untouched;
- `score.mid`: the rendered MIDI (track 1 "melody" is the leading voice);
- `controls.npz` (`Controls.save_npz`): melody from the MIDI's leading voice, dynamics from the rendered audio
  with `controls_from_audio` (what evaluation re-extracts from generated audio);
- `film.mp4`: the paired synthetic film (engine/data/film_pairing.py);
- `features.npz` (with `features=True`, else later by `filmscore data features`): the film encoder's output;
- `meta.json`: the record plus the dynamics plan, bar starts, tension per bar and hit times.
Everything is written to a temporary sibling directory that is renamed into place last.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import CONTROL_FRAME_RATE, MEL_HOP, MODEL_SAMPLE_RATE
from .arrange import ClipSpec, arrange_clip
from .film_pairing import plan_film, render_film
from .index import split_of
from .mel_cache import write_log_mel
from .music21_source import PITCH_NAMES, ParsedScore

TARGET_RMS_DBFS = -20.0
PEAK_LIMIT = 10 ** (-0.5 / 20)


def clip_dir(corpus_dir: Path, master: str, clip_id: str) -> Path:
    return corpus_dir / "clips" / master / clip_id


def new_clip_tmp(final: Path, clip_id: str) -> Path:
    """An empty temporary sibling of a clip's final directory (this process's own), for writing it whole."""
    tmp = final.parent / f".tmp-{clip_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish_clip(tmp: Path, final: Path) -> None:
    """Move a finished clip directory into place, replacing one a run that died before indexing it left."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def melody_agreement(midi_melody: np.ndarray, audio_melody: np.ndarray) -> float:
    """Share of the MIDI melody's voiced frames whose re-extracted pitch class (from the audio) is the same:
    Music ControlNet's melody accuracy with the real audio in place of a model output. NaN with no voiced frame."""
    voiced = midi_melody.sum(axis=1) > 0
    if not voiced.any():
        return float("nan")
    same = (midi_melody.argmax(axis=1) == audio_melody.argmax(axis=1)) & (audio_melody.sum(axis=1) > 0)
    return float(same[voiced].mean())


def render_clip(parsed: ParsedScore, spec: ClipSpec, clip_id: str, corpus_dir: Path,
                extra: dict[str, Any] | None = None, features: bool = False) -> dict[str, Any]:
    """Arrange, render and write one clip; returns its index record (paths relative to `corpus_dir`).
    `features`: also encode the film with the film encoder (`features.npz`, as `filmscore data features`)."""
    import soundfile as sf

    from ..audio.fluidsynth import render_midi
    from ..controls.audio import controls_from_audio
    from ..controls.midi import controls_from_midi
    from ..controls.types import Controls

    work = parsed.work
    final = clip_dir(corpus_dir, work.master, clip_id)
    tmp = new_clip_tmp(final, clip_id)
    try:
        arr = arrange_clip(parsed, spec)
        arr.midi.save(str(tmp / "score.mid"))
        n_frames = int(round(arr.duration_s * CONTROL_FRAME_RATE))
        n_samples = n_frames * MEL_HOP
        wave = render_midi(arr.midi, MODEL_SAMPLE_RATE)
        wave = np.pad(wave, (0, max(0, n_samples - wave.size)))[:n_samples]
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
        peak = float(np.abs(wave).max())
        gain = 10 ** (TARGET_RMS_DBFS / 20) / max(rms, 1e-9)
        gain = min(gain, PEAK_LIMIT / max(peak, 1e-9))
        wave = (wave * gain).astype(np.float32)
        sf.write(str(tmp / "audio.flac"), wave, MODEL_SAMPLE_RATE, subtype="PCM_16")

        midi_ctl = controls_from_midi(arr.midi, track=1, n_frames=n_frames)
        audio_ctl = controls_from_audio(wave, MODEL_SAMPLE_RATE, n_frames)
        Controls(midi_ctl.melody, audio_ctl.dynamics).save_npz(tmp / "controls.npz")
        agreement = melody_agreement(midi_ctl.melody, audio_ctl.melody)

        plan = plan_film(arr, spec.qpm)
        render_film(plan, tmp / "film.mp4", spec.seed)

        rel = final.relative_to(corpus_dir).as_posix()
        record: dict[str, Any] = {
            "id": clip_id, "work": work.work_id, "master": work.master, "split": split_of(work.work_id),
            "title": parsed.title, "key": PITCH_NAMES[arr.tonic], "mode": arr.mode,
            "tempo_bpm": round(spec.qpm, 3), "transpose": spec.transpose, "tempo_scale": round(spec.tempo_scale, 4),
            "orchestration": spec.orchestration.name, "lead_program": spec.orchestration.lead,
            "lead_octave": arr.lead_octave, "bars": [spec.bar_start, spec.bar_end],
            "duration_s": round(n_frames / CONTROL_FRAME_RATE, 3),
            "audio": f"{rel}/audio.flac", "midi": f"{rel}/score.mid", "controls": f"{rel}/controls.npz",
            "video": f"{rel}/film.mp4", "meta": f"{rel}/meta.json",
            "cuts_s": [round(c, 3) for c in plan.cuts_s], "hits_s": [round(h, 3) for h in arr.hits_s],
            "melody_agreement": None if np.isnan(agreement) else round(agreement, 4),
            "seed": spec.seed,
        }
        if features:
            from ..film import encode_video

            # the films are synthetic, without faces: the face branch (~40 % of a build worker's time) is left off,
            # as `filmscore data features` does
            encode_video(tmp / "film.mp4", 0.0, record["duration_s"], cache=False, faces=False).save_npz(
                tmp / "features.npz")
            record["features"] = f"{rel}/features.npz"
        if extra:
            record.update(extra)
        meta = dict(record, phrases=arr.dynamics.to_json(), bar_starts_s=np.round(arr.bar_starts_s, 4).tolist(),
                    tension=np.round(arr.tension, 3).tolist(), source=work.path, source_number=work.number)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        publish_clip(tmp, final)
        write_log_mel(corpus_dir, clip_id, final / "audio.flac")  # what training reads first (mel_cache.py)
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
