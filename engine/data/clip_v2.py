"""One corpus v2 clip, end to end: arranged MIDI -> three stems + stereo mix -> labels -> paired film, written
atomically (docs/dataset.md, "Corpus v2").

Files of a clip, in `clips/<master>/<clip id>/`:
- `mix.flac`, `lead.flac`, `accompaniment.flac`, `percussion.flac`: stereo PCM16 at the corpus rate, exactly
  `duration_s` long; the stems sum to the mix (`stems.py` states the relation and the hall);
- `score.mid`: the arranged MIDI (track names are the roles; `labels.json` maps them to stems);
- `labels.npz` + `labels.json`: the frame-exact labels (`labels.py`);
- `controls.npz` (`Controls.save_npz`, v1's layout): melody = the lead's pitch class, dynamics = the mix's loudness;
- `film.mp4` (+ `features.npz` with `features=True`): the paired synthetic film, v1's rules;
- `meta.json`: the record plus the dynamics plan, bar starts, tension per bar, source.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import CONTROL_FRAME_RATE
from .arrange_v2 import ClipSpecV2, arrange_clip_v2
from .clip import clip_dir, melody_agreement, new_clip_tmp, publish_clip
from .film_pairing import plan_film, render_film
from .index import split_of
from .labels import compute_labels, melody_chroma, mood_labels, save_labels
from .music21_source import PITCH_NAMES, ParsedScore
from .orchestration_v2 import STEMS
from .stems import render_stems

MIX_NAME = "mix.flac"


def render_clip_v2(parsed: ParsedScore, spec: ClipSpecV2, clip_id: str, corpus_dir: Path, sample_rate: int,
                   soundfont: str | Path | None, features: bool = False,
                   soundfont_name: str | None = None) -> dict[str, Any]:
    """Arrange, render and write one v2 clip; returns its index record (paths relative to `corpus_dir`).
    `soundfont_name`: the font to record (default the file's name; the build passes the installed .sf3's name
    when it renders from its expanded copy)."""
    import soundfile as sf

    from ..controls.audio import controls_from_audio
    from ..controls.types import Controls

    work = parsed.work
    final = clip_dir(corpus_dir, work.master, clip_id)
    tmp = new_clip_tmp(final, clip_id)
    try:
        arr = arrange_clip_v2(parsed, spec)
        arr.midi.save(str(tmp / "score.mid"))
        n_frames = int(round(arr.duration_s * CONTROL_FRAME_RATE))
        n_samples = n_frames * sample_rate // CONTROL_FRAME_RATE
        audio = render_stems(arr, n_samples, sample_rate, spec.seed, soundfont)
        sf.write(str(tmp / MIX_NAME), audio.mix, sample_rate, subtype="PCM_16")
        for stem in STEMS:
            sf.write(str(tmp / f"{stem}.flac"), audio.stems[stem], sample_rate, subtype="PCM_16")

        mix_ctl = controls_from_audio(audio.mix.mean(axis=1), sample_rate, n_frames)
        plan = plan_film(arr, spec.qpm)
        arrays, scalars = compute_labels(arr, n_frames, mix_ctl.dynamics, plan, work.master,
                                         spec.orchestration.name)
        scalars["sample_rate"] = sample_rate
        save_labels(tmp, arrays, scalars)
        melody = melody_chroma(arrays["melody_pitch"])
        Controls(melody, mix_ctl.dynamics).save_npz(tmp / "controls.npz")
        agreement = melody_agreement(melody, mix_ctl.melody)
        lead_agreement = float("nan")
        if audio.present["lead"]:
            lead_ctl = controls_from_audio(audio.stems["lead"].mean(axis=1), sample_rate, n_frames)
            lead_agreement = melody_agreement(melody, lead_ctl.melody)
        render_film(plan, tmp / "film.mp4", spec.seed)

        rel = final.relative_to(corpus_dir).as_posix()
        record: dict[str, Any] = {
            "id": clip_id, "version": 2, "work": work.work_id, "master": work.master,
            "split": split_of(work.work_id), "title": parsed.title, "key": PITCH_NAMES[arr.tonic], "mode": arr.mode,
            "tempo_bpm": round(spec.qpm, 3), "beat_bpm": scalars["beat_bpm"], "transpose": spec.transpose,
            "tempo_scale": round(spec.tempo_scale, 4), "orchestration": spec.orchestration.name,
            "lead_program": spec.orchestration.lead, "lead_octave": arr.lead_octave,
            "lead_median": scalars["lead"]["median"], "bars": [spec.bar_start, spec.bar_end],
            "duration_s": round(n_frames / CONTROL_FRAME_RATE, 3), "sample_rate": sample_rate, "channels": 2,
            "audio": f"{rel}/{MIX_NAME}", "stems": {s: f"{rel}/{s}.flac" for s in STEMS},
            "stems_present": audio.present, "midi": f"{rel}/score.mid", "controls": f"{rel}/controls.npz",
            "labels": f"{rel}/labels.npz", "labels_meta": f"{rel}/labels.json", "video": f"{rel}/film.mp4",
            "meta": f"{rel}/meta.json", "cuts_s": [round(c, 3) for c in plan.cuts_s],
            "hits_s": [round(h, 3) for h in arr.hits_s],
            "melody_agreement": None if np.isnan(agreement) else round(agreement, 4),
            "melody_agreement_lead": None if np.isnan(lead_agreement) else round(lead_agreement, 4),
            "reverb_wet_db": round(audio.wet_db, 2), "gain_db": round(20 * np.log10(audio.gain), 2),
            "soundfont": soundfont_name or (Path(soundfont).resolve().name if soundfont else None), "seed": spec.seed,
        }
        if features:
            from ..film import encode_video

            # synthetic films without faces: the face branch is left off, as v1's build does
            feats = encode_video(tmp / "film.mp4", 0.0, record["duration_s"], cache=False, faces=False)
            feats.save_npz(tmp / "features.npz")
            record["features"] = f"{rel}/features.npz"
            mood = mood_labels(feats, list(plan.cuts_s), record["duration_s"])
            if mood is not None:
                scalars["mood"] = mood
                save_labels(tmp, arrays, scalars)
                record["mood"] = mood["clip"]
        meta = dict(record, phrases=arr.dynamics.to_json(), bar_starts_s=np.round(arr.bar_starts_s, 4).tolist(),
                    tension=np.round(arr.tension, 3).tolist(), source=work.path, source_number=work.number)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        publish_clip(tmp, final)
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
