"""Measurements of corpus v2 audio: content bandwidth, stereo width, the stems-sum relation (`check_corpus`), and
the rate / SoundFont comparison that chose v2's settings (`compare_renders`). docs/dataset.md quotes both with the
commands that made them (`filmscore data check`, `filmscore data compare-renders`).

Bandwidth is read off the long-term average spectrum of the mono sum (Welch, 4096-point Hann segments):
`top_hz` is the highest frequency whose power is within 60 dB of the spectrum's peak, `above_8k_db` /
`above_12k_db` the share of power above 8 / 12 kHz in dB (as ../shared/MEASURED.md measured the shipped bundle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .index import read_index


def spectrum_stats(wave: np.ndarray, sr: int) -> dict[str, float | None]:
    """Bandwidth and stereo figures of `(n,)` or `(n, 2)` audio (module docstring); `lr_corr` None for mono."""
    from scipy.signal import welch

    x = np.asarray(wave, np.float64)
    mono = x.mean(axis=1) if x.ndim == 2 else x
    f, p = welch(mono, sr, nperseg=4096)
    total = float(p.sum()) or 1e-30
    db = 10 * np.log10(p + 1e-30)
    top = float(f[np.nonzero(db >= db.max() - 60.0)[0].max()])

    def share(lo: float) -> float | None:
        m = f > lo
        return round(10 * np.log10(max(float(p[m].sum()), 1e-30) / total), 2) if lo < sr / 2 and m.any() else None

    lr = None
    if x.ndim == 2 and x.shape[1] == 2 and x[:, 0].std() > 0 and x[:, 1].std() > 0:
        lr = round(float(np.corrcoef(x[:, 0], x[:, 1])[0, 1]), 4)
    return {"top_hz": round(top, 1), "above_8k_db": share(8000.0), "above_12k_db": share(12000.0), "lr_corr": lr}


def _summary(values: list[float]) -> dict[str, float] | None:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not v.size:
        return None
    return {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "p5": round(float(np.percentile(v, 5)), 4), "p95": round(float(np.percentile(v, 95)), 4)}


BEAT_TOLERANCE_S = 0.07


def label_checks(mix: np.ndarray, accompaniment: np.ndarray, sr: int, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The labels against independent extractors run on the audio (librosa, mir_eval; not the project's code):
    `beat_f1`: mir_eval's beat F-measure (70 ms) of librosa's beat tracker on the mix against `beat_s`;
    `beat_amlt`: mir_eval's AMLt of the same (double / half tempo and off-beat allowed);
    `chord_iou`: per beat, the intersection over union of the 3 strongest pitch classes of the accompaniment stem
    (librosa chroma_stft, mean over the beat) with the labelled triad, averaged over beats with sound."""
    import librosa
    import mir_eval

    y = librosa.resample(mix.mean(axis=1).astype(np.float32), orig_sr=sr, target_sr=22_050)
    _, est = librosa.beat.beat_track(y=y, sr=22_050, units="time")
    ref, est = np.asarray(arrays["beat_s"], float), np.asarray(est, float)
    f1 = float(mir_eval.beat.f_measure(ref, est, BEAT_TOLERANCE_S))
    # AMLt: the tracker's beats count at double / half tempo or on the off-beat too (metrical-level errors)
    amlt = float(mir_eval.beat.continuity(ref, est)[3]) if len(ref) > 1 and len(est) > 1 else 0.0
    acc = librosa.resample(accompaniment.mean(axis=1).astype(np.float32), orig_sr=sr, target_sr=22_050)
    chroma = librosa.feature.chroma_stft(y=acc, sr=22_050, hop_length=512)
    times = librosa.frames_to_time(np.arange(chroma.shape[1]), sr=22_050, hop_length=512)
    beats = np.asarray(arrays["beat_s"], float)
    ends = np.append(beats[1:], times[-1] if len(times) else beats[-1])
    ious = []
    for k, (a, b) in enumerate(zip(beats, ends)):
        m = (times >= a) & (times < b)
        if not m.any() or chroma[:, m].max() <= 0:
            continue
        top = set(np.argsort(chroma[:, m].mean(axis=1))[-3:].tolist())
        triad = set(np.flatnonzero(arrays["beat_chord_pcs"][k]).tolist())
        ious.append(len(top & triad) / len(top | triad))
    return {"beat_f1": round(f1, 4), "beat_amlt": round(amlt, 4), "chord_iou": round(float(np.mean(ious)), 4) if ious else None}


def _mood_vs_music(moods: list[tuple[dict, float, str, float, list[tuple[float, float]]]]) -> dict[str, Any] | None:
    """Does the cue plan read the pairing rules back from the films? Pearson r of the clip's energy with its mean
    dynamics level across clips, and of each shot's energy with the shot's mean level within clips (both less
    their clip's mean) (rule 2), mean valence of major and minor clips (rule 4), r of tension with the mean bar
    tension (rule 4)."""
    if len(moods) < 3:
        return None

    def r(a, b) -> float | None:
        a, b = np.asarray(a, float), np.asarray(b, float)
        return round(float(np.corrcoef(a, b)[0, 1]), 3) if a.std() > 0 and b.std() > 0 else None

    val = {m: [x[0]["valence"] for x in moods if x[2] == m] for m in ("major", "minor")}
    within = [(e - np.mean([a for a, _ in x[4]]), lv - np.mean([b for _, b in x[4]]))
              for x in moods if len(x[4]) > 1 for e, lv in x[4]]
    return {"clips": len(moods), "energy_vs_level_r": r([x[0]["energy"] for x in moods], [x[1] for x in moods]),
            "valence_major": round(float(np.mean(val["major"])), 3) if val["major"] else None,
            "valence_minor": round(float(np.mean(val["minor"])), 3) if val["minor"] else None,
            "tension_vs_bar_tension_r": r([x[0]["tension"] for x in moods], [x[3] for x in moods]),
            "shot_energy_vs_level_r_within_clips": r([p[0] for p in within], [p[1] for p in within])
            if len(within) > 2 else None}


def check_corpus(corpus_dir: str | Path, limit: int | None = 50) -> dict[str, Any]:
    """Over the first `limit` v2 clips: bandwidth and L/R correlation of the mix and each stem, the largest
    |lead + accompaniment + percussion - mix| in PCM16 steps, melody agreement of the mix and of the lead stem,
    the labels against independent extractors (`label_checks`)."""
    import soundfile as sf

    from .labels import load_labels
    from .orchestration_v2 import STEMS

    corpus_dir = Path(corpus_dir).expanduser()
    recs = [r for r in read_index(corpus_dir) if r.get("version") == 2][:limit]
    per: dict[str, list] = {k: [] for k in ("top_hz", "above_8k_db", "lr_corr", "sum_err_lsb",
                                            "melody_agreement", "melody_agreement_lead", "beat_f1", "beat_amlt",
                                            "chord_iou")}
    stems: dict[str, dict[str, list]] = {s: {"top_hz": [], "above_8k_db": [], "lr_corr": []} for s in STEMS}
    moods: list[tuple[dict, float, str, float, list[tuple[float, float]]]] = []
    for r in recs:
        mix, sr = sf.read(corpus_dir / r["audio"], dtype="float64", always_2d=True)
        st = spectrum_stats(mix, sr)
        for k in ("top_hz", "above_8k_db", "lr_corr"):
            per[k].append(st[k])
        total = np.zeros_like(mix)
        audio = {}
        for s in STEMS:
            y = audio[s] = sf.read(corpus_dir / r["stems"][s], dtype="float64", always_2d=True)[0]
            total += y
            if r["stems_present"][s]:
                ss = spectrum_stats(y, sr)
                for k in stems[s]:
                    stems[s][k].append(ss[k])
        per["sum_err_lsb"].append(float(np.abs(total - mix).max() * 32768))
        per["melody_agreement"].append(r.get("melody_agreement"))
        per["melody_agreement_lead"].append(r.get("melody_agreement_lead"))
        arrays, scalars = load_labels(corpus_dir / r["labels"].rsplit("/", 1)[0])
        for k, v in label_checks(mix, audio["accompaniment"], sr, arrays).items():
            per[k].append(v)
        if "mood" in scalars:
            meta = json.loads((corpus_dir / r["meta"]).read_text())
            level = arrays["dynamics_level"]
            shots = [(sh["energy"], float(level[int(sh["start_s"] * 100):int(sh["end_s"] * 100)].mean()))
                     for sh in scalars["mood"]["shots"] if int(sh["end_s"] * 100) > int(sh["start_s"] * 100)]
            moods.append((scalars["mood"]["clip"], float(level.mean()), r["mode"],
                          float(np.mean(meta["tension"])) if meta.get("tension") else 0.0, shots))
    return {"corpus_dir": str(corpus_dir), "clips": len(recs), "mood_vs_music": _mood_vs_music(moods),
            "mix": {k: _summary(v) for k, v in per.items()} | {"sum_err_lsb_max": max(per["sum_err_lsb"], default=None)},
            "stems": {s: {k: _summary(v) for k, v in d.items()} for s, d in stems.items()}}


def compare_renders(n_clips: int = 6, rates: tuple[int, ...] = (24_000, 32_000),
                    soundfonts: tuple[str, ...] = (), composers: tuple[str, ...] = ("bach", "folk"),
                    seed: int = 0) -> dict[str, Any]:
    """Render the same `n_clips` v2 clips (the first jobs of a build with `seed`, first clip of each) at every rate
    with every SoundFont; per setting: CPU seconds per clip (this process and FluidSynth: the render, hall and mix;
    CPU time, not wall time, so a busy machine does not inflate it), FLAC bytes of the four files per second of
    audio, and the mix's spectrum figures (median over clips)."""
    import io

    import soundfile as sf

    from ..audio.fluidsynth import MUSESCORE_SOUNDFONT, find_soundfont
    from .arrange import base_qpm, plan_clips
    from .arrange_v2 import ClipSpecV2, arrange_clip_v2
    from .build import cpu_seconds, stable_seed, plan_jobs, variant
    from .music21_source import iter_works, parse_work
    from .orchestration_v2 import ORCHESTRATIONS_V2, STEMS
    from .soundfont import expanded_sf2
    from .stems import render_stems

    fonts = [str(find_soundfont(f)) for f in soundfonts] if soundfonts else [str(find_soundfont())] + (
        [str(MUSESCORE_SOUNDFONT)] if MUSESCORE_SOUNDFONT.is_file() else [])
    # an .sf3 is measured both as FluidSynth loads it and as the build renders it (expanded once to .sf2)
    fonts += [str(expanded_sf2(f)) for f in fonts if f.lower().endswith(".sf3")]
    arrangements = []
    for job in plan_jobs(list(iter_works(composers)), seed, tiny=False):
        if len(arrangements) >= n_clips:
            break
        parsed = parse_work(job.work)
        transpose, scale, orch, rng = variant(job, len(ORCHESTRATIONS_V2))
        qpm = base_qpm(parsed) * scale
        windows = plan_clips(parsed, qpm, rng)
        if not windows:
            continue
        a, b = windows[0]
        clip_id = f"{job.work.work_id.split('/', 1)[1]}.p{job.pass_index}.c0"
        arrangements.append((clip_id, arrange_clip_v2(parsed, ClipSpecV2(a, b, transpose, qpm, scale,
                                                                          ORCHESTRATIONS_V2[orch], stable_seed(clip_id)))))
    out = []
    for font in fonts:
        for sr in rates:
            rows = []
            for clip_id, arr in arrangements:
                n = int(round(arr.duration_s * 100)) * sr // 100
                t0 = cpu_seconds()
                audio = render_stems(arr, n, sr, stable_seed(clip_id), font)
                cpu = cpu_seconds() - t0
                size = 0
                for w in [audio.mix, *(audio.stems[s] for s in STEMS)]:
                    buf = io.BytesIO()
                    sf.write(buf, w, sr, format="FLAC", subtype="PCM_16")
                    size += len(buf.getvalue())
                rows.append({"cpu_s": cpu, "audio_s": n / sr, "flac_bytes_per_s": size / (n / sr),
                             **spectrum_stats(audio.mix, sr)})
            med = {k: round(float(np.median([r[k] for r in rows if r[k] is not None])), 3)
                   for k in rows[0] if k not in ("cpu_s", "audio_s") and any(r[k] is not None for r in rows)}
            out.append({"soundfont": Path(font).resolve().name, "sample_rate": sr, "clips": len(rows),
                        "cpu_s_per_clip": round(float(np.mean([r["cpu_s"] for r in rows])), 3),
                        "cpu_s_per_audio_s": round(sum(r["cpu_s"] for r in rows) / sum(r["audio_s"] for r in rows), 4),
                        "median": med})
    return {"clips": [c for c, _ in arrangements], "settings": out}
