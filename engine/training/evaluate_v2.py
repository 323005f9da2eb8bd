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
  of the mix, dB (engine/metrics/sound.py); `hf_db_vs_corpus` (model rows): the render's `hf_db` minus the corpus
  audio's of the same clip (issue 18: within 10 dB);
- `noise_burst_share`: share of loud frames whose spectral flatness is above the 99th percentile of the corpus's
  (`sound.noise_burst_share`; the threshold from train clips, `corpus_flatness_threshold`);
- `maestro_top1` (model rows, clips whose master the classifier knows): the render recognised as the clip's master
  by the maestro classifier (engine/metrics/maestro_classifier.py) trained on train-split clips
  (`train_maestro_reference`), whose own accuracy on the held-out clips' corpus audio is reported beside it;
and over the set: `fad_proxy` (`sound.fad_proxy`) of the renders against the held-out clips' corpus audio, with
`--compare-v1 BUNDLE` the same for a v1 bundle rendering the same clips' melody and dynamics in the same run; and
`resynthesis` (`vocoder_vs_griffin_lim`): the VAE's reconstruction L1 and the vocoder against Griffin-Lim on the
held-out stems' true Mels.
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
from ..metrics.sound import energy_above_db, lr_correlation
from ..models.controls_v2 import ControlsV2
from ..options import DEFAULTS as D  # the render options' defaults (engine/options.py)
from .corpus_v2 import CorpusV2

REGISTER_TOLERANCE = 6.0
THRESHOLD_CLIPS = 24  # train clips the noise-burst threshold is measured on
CLASSIFIER_CLIPS_PER_MASTER = 40  # train clips per master the maestro classifier learns from
CLASSIFIER_SECONDS = 60.0  # of each clip (six 10 s segments)


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
    return {"melody_accuracy_lead": lead.melody_accuracy, "melody_accuracy_mix": full.melody_accuracy,
            "register_error": reg, "in_register": float(abs(reg) <= REGISTER_TOLERANCE) if np.isfinite(reg) else
            float("nan"), "chord_iou": _chord_iou(mid["accompaniment"], sr, np.asarray(arrays["chord_chroma"])[:n]),
            "beat_f1": beat_f1(beats, beat_times(mix_mid, sr)), "dynamics_r": full.dynamics_r,
            "lr_correlation": lr_correlation(mix), "hf_db": energy_above_db(mix_mid, sr)}


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for r in rows for k in r))  # a measure some clips lack (maestro_top1) counts where given
    vals = {k: [r.get(k, float("nan")) for r in rows] for k in keys}
    return {k: round(float(np.nanmean(v)), 4) if any(np.isfinite(v)) else float("nan") for k, v in vals.items()}


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

    from ..metrics.sound import noise_burst_share

    threshold = corpus_flatness_threshold(corpus_dir)
    rows, ids = [], []
    for c in select_clips([_Ref(r) for r in recs], n_clips):
        r = by_id[c.id]
        arrays, _ = load_labels(corpus_dir / Path(r["labels"]).parent)
        n = int(round(min(seconds, r["duration_s"]) * CONTROL_FRAME_RATE)) * sr // CONTROL_FRAME_RATE
        stems = {s: sf.read(str(corpus_dir / p), frames=n, dtype="float32", always_2d=True)[0]
                 for s, p in r["stems"].items()}
        row = measure_clip(stems, sum(stems.values()), sr, arrays)
        row["noise_burst_share"] = noise_burst_share(sum(stems.values()), sr, threshold["threshold"])
        rows.append(row)
        ids.append(r["id"])
    return {"corpus": str(corpus_dir), "split": split, "seconds": seconds, "clips": ids, "summary": _summary(rows),
            "noise_threshold": threshold}


def _v2_records(corpus_dir: Path) -> list[dict]:
    from ..data.index import read_index

    return [r for r in read_index(corpus_dir) if r.get("version") == 2]


def _read_mix(corpus_dir: Path, rec: dict, seconds: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    info = sf.info(str(corpus_dir / rec["audio"]))
    n = min(info.frames, int(round(seconds * info.samplerate)))
    return sf.read(str(corpus_dir / rec["audio"]), frames=n, dtype="float32", always_2d=True)[0], info.samplerate


def corpus_flatness_threshold(corpus_dir: Path, n_clips: int = THRESHOLD_CLIPS, seconds: float = 30.0,
                              seed: int = 0) -> dict[str, Any]:
    """The noise-burst threshold (`sound.flatness_threshold`, 99th percentile of loud frames' flatness) over up to
    `n_clips` train clips' mixes (first `seconds`), drawn with `seed`; with the clips it came from."""
    from ..metrics.sound import flatness_threshold

    corpus_dir = Path(corpus_dir)
    recs = [r for r in _v2_records(corpus_dir) if r["split"] == "train"]
    if not recs:
        raise FilmscoreError(f"{corpus_dir}: no train v2 clip to measure the flatness threshold on")
    rng = np.random.default_rng(seed)
    picked = [recs[i] for i in sorted(rng.permutation(len(recs))[:n_clips])]
    return {"threshold": flatness_threshold([_read_mix(corpus_dir, r, seconds) for r in picked]),
            "clips": [r["id"] for r in picked]}


def train_maestro_reference(corpus_dir: Path, per_master: int = CLASSIFIER_CLIPS_PER_MASTER,
                            seconds: float = CLASSIFIER_SECONDS, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """The maestro classifier (engine/metrics/maestro_classifier.py) trained on up to `per_master` train clips per
    master (first `seconds` each), and its accuracy on held-out works' corpus audio: the corpus's held-out split,
    or where it has none yet, a quarter of each master's train works held out (`embedding.split_by_work`)."""
    from ..metrics.embedding import split_by_work
    from ..metrics.maestro_classifier import clip_features, heldout_accuracy, train_maestro_classifier

    corpus_dir = Path(corpus_dir)
    recs = _v2_records(corpus_dir)
    train = [r for r in recs if r["split"] == "train"]
    held = [r for r in recs if r["split"] == "heldout"]
    source = "held-out split"
    if not held:
        out = split_by_work([r["work"] for r in train], [r["master"] for r in train], 0.25, seed)
        held, train = [r for r in train if r["work"] in out], [r for r in train if r["work"] not in out]
        source = "a quarter of each master's train works, held out"
    rng = np.random.default_rng(seed)

    def pick(rs: list[dict]) -> list[dict]:
        by: dict[str, list[dict]] = {}
        for r in rs:
            by.setdefault(r["master"], []).append(r)
        return [x for m in sorted(by) for x in (by[m] if len(by[m]) <= per_master else
                                                [by[m][i] for i in sorted(rng.permutation(len(by[m]))[:per_master])])]

    train, held = pick(train), pick(held)
    masters = sorted({r["master"] for r in train})
    if len(masters) < 2:
        raise FilmscoreError(f"{corpus_dir}: the maestro classifier needs train clips of two masters or more; "
                             f"there are {len(train)} of {', '.join(masters) or 'none'}")
    feats = [clip_features(*_read_mix(corpus_dir, r, seconds)) for r in train]
    model = train_maestro_classifier(feats, [r["master"] for r in train])
    acc = heldout_accuracy(model, [clip_features(*_read_mix(corpus_dir, r, seconds)) for r in held],
                           [r["master"] for r in held])
    return model, {**acc, "train_clips": len(train), "train_works": len({r["work"] for r in train}),
                   "heldout_from": source, "masters": masters, "seconds": seconds}


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


def maestro_classifier_cv(corpus_dir: Path, per_master: int = 30, seconds: float = 30.0, folds: int = 5,
                          seed: int = 0, c: float = 0.5) -> dict[str, Any]:
    """The maestro classifier's accuracy by `folds`-fold cross-validation over works (every clip of a work on one
    side) on up to `per_master` clips per master of the whole v2 corpus (first `seconds`): an estimate that does
    not hang on the few works of a young corpus's held-out split."""
    from ..metrics.maestro_classifier import clip_features, train_maestro_classifier

    corpus_dir = Path(corpus_dir)
    rng = np.random.default_rng(seed)
    by: dict[str, list[dict]] = {}
    for r in _v2_records(corpus_dir):
        by.setdefault(r["master"], []).append(r)
    picked = [x for m in sorted(by) for x in (by[m] if len(by[m]) <= per_master else
                                              [by[m][i] for i in sorted(rng.permutation(len(by[m]))[:per_master])])]
    feats = [clip_features(*_read_mix(corpus_dir, r, seconds)) for r in picked]
    works = sorted({r["work"] for r in picked})
    fold = {w: i % folds for i, w in enumerate(rng.permutation(works))}
    per: dict[str, list[bool]] = {}
    for k in range(folds):
        train = [i for i, r in enumerate(picked) if fold[r["work"]] != k]
        if len({picked[i]["master"] for i in train}) < 2:
            continue
        model = train_maestro_classifier([feats[i] for i in train], [picked[i]["master"] for i in train], c=c)
        for i, r in enumerate(picked):
            if fold[r["work"]] == k and r["master"] in model.classes:
                per.setdefault(r["master"], []).append(model.predict_clip(feats[i])[0] == r["master"])
    hits = [h for v in per.values() for h in v]
    return {"accuracy": float(np.mean(hits)) if hits else float("nan"),
            "balanced_accuracy": float(np.mean([np.mean(v) for v in per.values()])) if per else float("nan"),
            "recall": {m: round(float(np.mean(v)), 3) for m, v in per.items()}, "n": len(hits),
            "clips_per_master": {m: sum(1 for r in picked if r["master"] == m) for m in by},
            "works_per_master": {m: len({r["work"] for r in rs}) for m, rs in by.items()},
            "chance": 1.0 / len(by) if by else float("nan"), "folds": folds, "seconds": seconds, "c": c}


def _render_v1(bundle_dir: Path, arrays: dict[str, np.ndarray], n_frames: int, steps: int, seed: int
               ) -> tuple[np.ndarray, int]:
    """A v1 bundle's render of a clip's melody (pitch classes) and dynamics: the FAD-proxy's comparison."""
    from ..render import build_pipeline

    pipe, _ = build_pipeline(bundle_dir)
    sr = pipe.mel_config.sample_rate
    controls = Controls(melody_chroma(np.asarray(arrays["melody_pitch"])[:n_frames]),
                        np.asarray(arrays["dynamics_db"], np.float32)[:n_frames])
    return pipe(n_samples=n_frames * sr // CONTROL_FRAME_RATE, controls=controls, seed=seed, steps=steps).wave, sr


def evaluate_bundle_v2(bundle_dir: Path, corpus_dir: Path, *, n_clips: int = 8, seconds: float = 10.24,
                       steps: int = D.steps, seed: int = D.seed, threads: int | None = None, progress=None,
                       compare_v1: Path | None = None, classifier: bool = True) -> dict[str, Any]:
    """Render `n_clips` held-out clips with the bundle and measure render and corpus audio (module docstring).
    `compare_v1`: a v1 bundle whose renders of the same clips get a FAD-proxy in the same run; `classifier`: train
    the maestro classifier on the corpus (needs train clips of two masters) for `maestro_top1`."""
    import soundfile as sf

    from ..metrics.sound import fad_proxy, noise_burst_share

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
    renders, references, v1_renders = [], [], []
    threshold = corpus_flatness_threshold(corpus_dir)
    maestro, maestro_info = None, None
    if classifier:
        from ..metrics.maestro_classifier import clip_features

        try:
            maestro, maestro_info = train_maestro_reference(corpus_dir)
        except FilmscoreError as e:  # too few masters in the corpus so far: the other measures stand without it
            maestro_info = {"error": str(e)}
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
        m["hf_db_vs_corpus"] = m["hf_db"] - r["hf_db"]
        m["noise_burst_share"] = noise_burst_share(out.mix, sr, threshold["threshold"])
        r["noise_burst_share"] = noise_burst_share(ref_mix, sr, threshold["threshold"])
        if maestro is not None and clip.master in maestro.classes:
            m["maestro_top1"] = float(maestro.predict_clip(clip_features(out.mix, sr))[0] == clip.master)
        model_rows.append(m)
        ref_rows.append(r)
        renders.append((out.mix, sr))
        references.append((ref_mix, sr))
        if compare_v1 is not None:
            v1_renders.append(_render_v1(compare_v1, arrays, n_frames, steps, seed + i))
        per_clip.append({"id": clip.id, "master": clip.master, "model": m, "corpus": r})
        if progress:
            progress(i + 1, len(clips))
    fad = {"model": fad_proxy(renders, references)}
    if compare_v1 is not None:
        fad["v1"] = fad_proxy(v1_renders, references)
        fad["v1_bundle"] = str(compare_v1)
    return {"bundle": str(bundle_dir), "bundle_hash": bundle.hash, "corpus": str(corpus_dir), "steps": steps,
            "seconds": seconds, "clips": per_clip, "summary": {"model": _summary(model_rows),
                                                               "corpus": _summary(ref_rows)},
            "fad_proxy": fad, "noise_threshold": threshold, "maestro_classifier": maestro_info,
            "resynthesis": vocoder_vs_griffin_lim(bundle_dir, corpus_dir, n_clips, min(seconds, 5.12))}
