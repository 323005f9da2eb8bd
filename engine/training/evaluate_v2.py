"""Held-out evaluation of a v2 bundle against issue 18's criteria, beside the same measures on the corpus's own
renders of the same clips (the ceiling a model trained on that corpus can show).

Each held-out clip (spread over works as v1's `select_clips` does) is rendered for its first `seconds` from its
labels' controls (`ControlsV2.from_labels`), its clip mood and its master; then, on the render and on the corpus
audio of that window:
- `melody_accuracy_lead` / `melody_accuracy_mix`: Music ControlNet's melody accuracy (engine/metrics/adherence.py)
  re-extracted from the lead stem and from the mix (mid signals);
- `register_error`: median over the requested melody's voiced frames of the lead stem's pitch (librosa YIN,
  65-2,100 Hz) minus the median requested pitch, semitones; `in_register`: |error| <= 6;
- `chord_iou`: per frame with a requested chord and sound, |top-3 chroma pitch classes of the accompaniment stem
  (librosa chroma_stft) intersect the chord's| / |union|, averaged (JASCO reports chord IoU 0.69 on real music);
- `beat_f1`: mir_eval F-measure (70 ms) of librosa's beat tracker on the mix against the requested beats (the
  tracker starts from 120 bpm: on a 120 bpm request even an untrained model's noise scored 1.0 on the tiny test
  corpus, so read it beside the corpus row and across tempi);
- `dynamics_r`: Pearson r of requested and re-extracted loudness (mix);
- `lr_correlation`: Pearson r of the mix's left and right channels; `hf_db`: energy above 8 kHz over all energy
  of the mix, dB;
and `resynthesis` (`vocoder_vs_griffin_lim`): the VAE's reconstruction L1 and the vocoder against Griffin-Lim on
the held-out stems' true Mels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import CONTROL_FRAME_RATE
from ..controls.types import Controls
from ..data.labels import load_labels, melody_chroma
from ..errors import FilmscoreError
from ..extras import require
from ..models.controls_v2 import ControlsV2
from .corpus_v2 import CorpusV2

REGISTER_TOLERANCE = 6.0


def _lead_register(wave: np.ndarray, sr: int, requested: np.ndarray) -> float:
    librosa = require("librosa", "eval", "the v2 register metric")
    hop = sr // CONTROL_FRAME_RATE
    f0 = librosa.yin(wave.astype(np.float32), fmin=65.0, fmax=2100.0, sr=sr, frame_length=2048, hop_length=hop)
    n = min(len(f0), len(requested))
    voiced = requested[:n] > 0
    if not voiced.any():
        return float("nan")
    midi = 69 + 12 * np.log2(f0[:n][voiced] / 440.0)
    return float(np.median(midi) - np.median(requested[:n][voiced]))


def _chord_iou(wave: np.ndarray, sr: int, chord_chroma: np.ndarray) -> float:
    librosa = require("librosa", "eval", "the v2 chord metric")
    hop = sr // CONTROL_FRAME_RATE
    c = librosa.feature.chroma_stft(y=wave.astype(np.float32), sr=sr, hop_length=hop, n_fft=4096, norm=None)
    level = c.sum(axis=0)
    n = min(c.shape[1], len(chord_chroma))
    ious = []
    for t in range(n):
        want = set(np.nonzero(chord_chroma[t])[0])
        if not want or level[t] <= 1e-3 * max(level.max(), 1e-12):
            continue
        top = set(np.argsort(c[:, t])[-3:])
        ious.append(len(top & want) / len(top | want))
    return float(np.mean(ious)) if ious else float("nan")


def measure_clip(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int, arrays: dict[str, np.ndarray]
                 ) -> dict[str, float]:
    """The module docstring's measures of one render (stereo `(n, 2)` stems and mix) against the label arrays."""
    from ..metrics.adherence import measure_adherence
    from ..metrics.rhythm import beat_f1, beat_times

    n = len(mix) * CONTROL_FRAME_RATE // sr
    mid = {k: v.mean(axis=1) for k, v in stems.items()}
    mix_mid = mix.mean(axis=1)
    pitch = np.asarray(arrays["melody_pitch"])[:n]
    req = Controls(melody_chroma(pitch), np.asarray(arrays["dynamics_db"], np.float32)[:n])
    lead = measure_adherence(req, mid["lead"], sr)
    full = measure_adherence(req, mix_mid, sr)
    reg = _lead_register(mid["lead"], sr, pitch)
    beats = np.nonzero(np.asarray(arrays["beat"])[:n])[0] / CONTROL_FRAME_RATE
    spec = np.abs(np.fft.rfft(mix_mid)) ** 2
    freqs = np.fft.rfftfreq(len(mix_mid), 1 / sr)
    return {"melody_accuracy_lead": lead.melody_accuracy, "melody_accuracy_mix": full.melody_accuracy,
            "register_error": reg, "in_register": float(abs(reg) <= REGISTER_TOLERANCE) if np.isfinite(reg) else
            float("nan"), "chord_iou": _chord_iou(mid["accompaniment"], sr, np.asarray(arrays["chord_chroma"])[:n]),
            "beat_f1": beat_f1(beats, beat_times(mix_mid, sr)), "dynamics_r": full.dynamics_r,
            "lr_correlation": float(np.corrcoef(mix[:, 0], mix[:, 1])[0, 1]),
            "hf_db": float(10 * np.log10(spec[freqs > 8000].sum() / max(spec.sum(), 1e-20) + 1e-20))}


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: round(float(np.nanmean([r[k] for r in rows])), 4) if any(np.isfinite(r[k]) for r in rows)
            else float("nan") for k in keys}


def measure_corpus(corpus_dir: Path, split: str = "heldout", n_clips: int = 12, seconds: float = 10.24
                   ) -> dict[str, Any]:
    """The measures of the corpus's own audio alone (no model): the first `seconds` of `n_clips` clips of `split`
    (spread as `select_clips` does), read straight from the index (no Mel cache is computed)."""
    import soundfile as sf

    from ..data.index import read_index
    from .corpus_v2 import corpus_settings
    from .evaluate import select_clips

    corpus_dir = Path(corpus_dir)
    sr = int(corpus_settings(corpus_dir)["sample_rate"])
    recs = [r for r in read_index(corpus_dir) if r.get("version") == 2 and r["split"] == split]
    if not recs:
        raise FilmscoreError(f"{corpus_dir}: no {split} v2 clip")
    by_id = {r["id"]: r for r in recs}

    class _Ref:  # what select_clips reads
        def __init__(self, r: dict):
            self.id, self.work, self.master = r["id"], r["work"], r["master"]

    rows, ids = [], []
    for c in select_clips([_Ref(r) for r in recs], n_clips):
        r = by_id[c.id]
        arrays, _ = load_labels(corpus_dir / Path(r["labels"]).parent)
        n = int(round(min(seconds, r["duration_s"]) * CONTROL_FRAME_RATE)) * sr // CONTROL_FRAME_RATE
        stems = {s: sf.read(str(corpus_dir / p), frames=n, dtype="float32", always_2d=True)[0]
                 for s, p in r["stems"].items()}
        rows.append(measure_clip(stems, sum(stems.values()), sr, arrays))
        ids.append(r["id"])
    return {"corpus": str(corpus_dir), "split": split, "seconds": seconds, "clips": ids, "summary": _summary(rows)}


def vocoder_vs_griffin_lim(bundle_dir: Path, corpus_dir: Path, n_clips: int = 12, seconds: float = 5.12
                           ) -> dict[str, float]:
    """The v2 bundle's VAE reconstruction and its vocoder against Griffin-Lim at the model rate, on the held-out
    stems with notes (v1's `evaluate.vae_and_vocoder` on `StemCorpus` clips: each stem's mid signal and Mel)."""
    from types import SimpleNamespace

    from ..bundle_v2 import load_bundle_v2
    from .corpus_v2 import StemCorpus
    from .evaluate import select_clips, vae_and_vocoder

    bundle = load_bundle_v2(bundle_dir)
    stems = StemCorpus(CorpusV2(corpus_dir, "heldout", bundle.mel_config), present_only=True)
    if not stems.clips:
        raise FilmscoreError(f"{corpus_dir}: no held-out v2 stem to resynthesise")
    m = bundle.models
    with torch.no_grad():
        return vae_and_vocoder(SimpleNamespace(vae=m["vae"], vocoder=m["vocoder"], mel_config=bundle.mel_config),
                               select_clips(stems.clips, n_clips), seconds)


def evaluate_bundle_v2(bundle_dir: Path, corpus_dir: Path, *, n_clips: int = 8, seconds: float = 10.24,
                       steps: int = 25, seed: int = 0, threads: int | None = None, progress=None) -> dict[str, Any]:
    """Render `n_clips` held-out clips with the bundle and measure render and corpus audio (module docstring)."""
    import soundfile as sf

    from ..bundle_v2 import load_bundle_v2
    from ..pipeline_v2 import FilmScorePipelineV2
    from .evaluate import select_clips

    bundle = load_bundle_v2(bundle_dir)
    corpus = CorpusV2(corpus_dir, "heldout", bundle.mel_config)
    if not corpus.clips:
        raise FilmscoreError(f"{corpus_dir}: no held-out v2 clip to evaluate on")
    clips = select_clips(corpus.clips, n_clips)
    pipe = FilmScorePipelineV2(bundle)
    sr = bundle.mel_config.sample_rate
    known = set(bundle.models["global_cond"].config.masters)
    per_clip, model_rows, ref_rows = [], [], []
    for i, clip in enumerate(clips):
        n_frames = min(int(round(seconds * CONTROL_FRAME_RATE)), clip.n_frames)
        n = n_frames * sr // CONTROL_FRAME_RATE
        arrays, _ = load_labels(clip.stem_paths["lead"].parent)
        controls = ControlsV2.from_labels(arrays).fit_length(n_frames)
        mood = clip.mood_at(0, n_frames)
        out = pipe(n_samples=n, controls=controls, mood=mood, master=clip.master if clip.master in known else None,
                   steps=steps, seed=seed + i, threads=threads)
        ref_stems = {s: sf.read(str(p), frames=n, dtype="float32", always_2d=True)[0] for s, p in
                     clip.stem_paths.items()}
        ref_mix = sum(ref_stems.values())
        m = measure_clip(out.stems, out.mix, sr, arrays)
        r = measure_clip(ref_stems, ref_mix, sr, arrays)
        model_rows.append(m)
        ref_rows.append(r)
        per_clip.append({"id": clip.id, "master": clip.master, "model": m, "corpus": r})
        if progress:
            progress(i + 1, len(clips))
    return {"bundle": str(bundle_dir), "bundle_hash": bundle.hash, "corpus": str(corpus_dir), "steps": steps,
            "seconds": seconds, "clips": per_clip, "summary": {"model": _summary(model_rows),
                                                               "corpus": _summary(ref_rows)},
            "resynthesis": vocoder_vs_griffin_lim(bundle_dir, corpus_dir, n_clips, min(seconds, 5.12))}
