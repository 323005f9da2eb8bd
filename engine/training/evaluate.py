"""Held-out metrics of a bundle, written into its bundle.json (`filmscore train evaluate`).

On the corpus's held-out works (split by work, never seen in training), the first `crop_s` seconds of each of
`n_clips` clips spread over composers and works (`select_clips`: one clip per work, composers taken in turn), or of
the clips an earlier evaluation used (`clip_ids`, so two bundles, or one corpus before and after it grew, compare
clip by clip):
- melody accuracy and dynamics r (Music ControlNet's definitions, engine/metrics/adherence.py) of cues generated
  from the clip's own controls and picture, re-extracted from the audio with Music ControlNet's recipe; next to the
  same figures for the real recording (the metric's ceiling on this data) and for mismatched pairs (chance);
- the LDM's denoising loss (`train_ldm.heldout_loss`: v-prediction MSE, no condition dropout) on a fixed draw of
  crops, timesteps and noise over the whole held-out split: the same draw for every bundle, so two bundles compare
  pairwise, which is how a corpus that grew shows in the model;
- VAE reconstruction L1 of log-Mel;
- vocoder vs Griffin-Lim on ground-truth Mels: multi-resolution STFT distance to the real audio, and log-Mel L1.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.griffin_lim import griffin_lim
from ..audio.io import load_audio
from ..constants import MODEL_SAMPLE_RATE
from ..options import DEFAULTS as D  # the render options' defaults (engine/options.py owns them)
from ..controls.audio import controls_from_audio
from ..controls.types import Controls
from ..errors import FilmscoreError
from ..film.features import FilmFeatures
from ..metrics.adherence import dynamics_correlation, melody_accuracy
from .corpus_data import Corpus
from .train_vocoder import multi_resolution_stft_loss

logger = logging.getLogger(__name__)

HELDOUT_LOSS_CROPS = 256  # 5.12 s crops; 16 batches of 16


class EvaluationError(FilmscoreError):
    """An evaluation asked for clips the corpus does not have."""


def select_clips(clips: list, n: int) -> list:
    """`n` held-out clips spread over composers and works: the first clip (lowest id) of each work, works ordered
    by sha1 of their id within a composer, composers (alphabetical) taken in turn. Deterministic, and it does not
    pile up on one work's many clips as the first `n` ids would (they were 12 clips of 3 Palestrina masses)."""
    first: dict[str, object] = {}
    for c in sorted(clips, key=lambda c: c.id):
        first.setdefault(c.work or c.id, c)
    by_master: dict[str, list] = {}
    for work, c in sorted(first.items(), key=lambda kv: hashlib.sha1(kv[0].encode()).hexdigest()):
        by_master.setdefault(c.master, []).append(c)
    queues = [by_master[m] for m in sorted(by_master)]
    out: list = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def clip_ids_from(path: Path) -> list[str]:
    """The clip ids of an earlier `filmscore train evaluate -o FILE` result."""
    try:
        return [r["id"] for r in json.loads(Path(path).read_text())["clips"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvaluationError(f"{path}: not a `filmscore train evaluate -o` result with per-clip rows ({e})") from e


def _nanmean(xs: list[float]) -> float:
    v = [x for x in xs if np.isfinite(x)]
    return round(float(np.mean(v)), 4) if v else float("nan")


@torch.no_grad()
def evaluate_bundle(bundle_path: Path | None, corpus_root: Path, *, n_clips: int = 12, crop_s: float = 10.24,
                    steps: int = D.steps, scheduler: str = D.scheduler,
                    control_guidance: tuple[float, ...] = (1.0, D.control_guidance),
                    picture_guidance: float = D.picture_guidance, seed: int = D.seed, compare_steps: tuple[int, ...] = (),
                    clip_ids: list[str] | None = None, progress=None) -> dict[str, Any]:
    """`compare_steps`: also measure adherence at these step counts (highest control guidance), to price faster
    sampling against the `steps` reference. `clip_ids`: evaluate exactly these held-out clips (`n_clips` is then
    ignored)."""
    from ..render import build_pipeline

    pipe, bundle = build_pipeline(bundle_path)
    corpus = Corpus(corpus_root, "heldout", bundle.mel_config)
    if clip_ids is not None:
        held = {c.id: c for c in corpus.clips}
        missing = [i for i in clip_ids if i not in held]
        if missing:
            raise EvaluationError(f"{corpus_root}: {len(missing)} of the {len(clip_ids)} clips asked for are not in "
                                  f"its held-out split (first: {missing[0]})")
        clips = [held[i] for i in clip_ids]
    else:
        clips = select_clips(corpus.clips, n_clips)
    if not clips:
        raise EvaluationError(f"{corpus_root}: no held-out clips")
    index = {e["id"]: e for e in _index(corpus_root)}
    frames = int(crop_s * 100)
    rows: list[dict[str, Any]] = []
    generated: dict[float, list[np.ndarray]] = {w: [] for w in control_guidance}
    requested: list[Controls] = []
    for i, clip in enumerate(clips):
        n = min(frames, clip.log_mel.shape[1])
        ctrl = Controls(clip.controls.melody[:n], clip.controls.dynamics[:n])
        requested.append(ctrl)
        fpath = index.get(clip.id, {}).get("features")
        film = FilmFeatures.load_npz(corpus_root / fpath) if fpath and (corpus_root / fpath).is_file() else None
        real = load_audio(clip.audio_path, MODEL_SAMPLE_RATE)[: n * 160]
        real_ext = controls_from_audio(real, MODEL_SAMPLE_RATE, n_frames=n)
        row = {"id": clip.id, "seconds": n / 100, "picture": film is not None,
               "real_melody_acc": melody_accuracy(ctrl.melody, real_ext.melody),
               "real_dynamics_r": dynamics_correlation(ctrl.dynamics, real_ext.dynamics)}
        for w in control_guidance:
            out = pipe(n_samples=n * 160, film=film, controls=ctrl, seed=seed, steps=steps, scheduler=scheduler,
                       picture_guidance=picture_guidance, control_guidance=w)
            ext = controls_from_audio(out.wave, MODEL_SAMPLE_RATE, n_frames=n)
            generated[w].append(ext.melody)
            row[f"melody_acc@w{w:g}"] = melody_accuracy(ctrl.melody, ext.melody)
            row[f"dynamics_r@w{w:g}"] = dynamics_correlation(ctrl.dynamics, ext.dynamics)
        for s in compare_steps:
            out = pipe(n_samples=n * 160, film=film, controls=ctrl, seed=seed, steps=s, scheduler=scheduler,
                       picture_guidance=picture_guidance, control_guidance=max(control_guidance))
            ext = controls_from_audio(out.wave, MODEL_SAMPLE_RATE, n_frames=n)
            row[f"melody_acc@w{max(control_guidance):g}_steps{s}"] = melody_accuracy(ctrl.melody, ext.melody)
            row[f"dynamics_r@w{max(control_guidance):g}_steps{s}"] = dynamics_correlation(ctrl.dynamics, ext.dynamics)
        rows.append(row)
        if progress:
            progress(i + 1, len(clips))
    best_w = max(control_guidance)
    chance = [melody_accuracy(requested[i].melody, generated[best_w][(i + 1) % len(clips)])
              for i in range(len(clips))] if len(clips) > 1 else []
    summary: dict[str, Any] = {
        "split": "heldout", "n_clips": len(clips), "works": len({c.work for c in clips}),
        "masters": sorted({c.master for c in clips}), "seconds_per_clip": crop_s, "steps": steps,
        "scheduler": scheduler, "picture_guidance": picture_guidance,
        "real_audio_melody_acc": _nanmean([r["real_melody_acc"] for r in rows]),
        "real_audio_dynamics_r": _nanmean([r["real_dynamics_r"] for r in rows]),
        "mismatched_melody_acc": _nanmean(chance),
    }
    for w in control_guidance:
        summary[f"melody_acc@w{w:g}"] = _nanmean([r[f"melody_acc@w{w:g}"] for r in rows])
        summary[f"dynamics_r@w{w:g}"] = _nanmean([r[f"dynamics_r@w{w:g}"] for r in rows])
    for s in compare_steps:
        for m in ("melody_acc", "dynamics_r"):
            key = f"{m}@w{best_w:g}_steps{s}"
            summary[key] = _nanmean([r[key] for r in rows])
    denoising = _denoising_loss(pipe, corpus)
    per_crop = denoising.pop("heldout_v_loss_per_crop", None)
    summary.update(denoising)
    summary.update(vae_and_vocoder(pipe, clips))
    result: dict[str, Any] = {"summary": summary, "clips": rows}
    if per_crop is not None:
        result["heldout_v_loss_per_crop"] = per_crop
    return result


PAIRED_METRICS = ("melody_acc", "dynamics_r")


def compare_evaluations(before: dict[str, Any], after: dict[str, Any], n_boot: int = 10_000,
                        seed: int = 0) -> dict[str, Any]:
    """Paired differences (after - before) of two evaluations on the same clips: per adherence metric the mean
    difference over clips and its 95 % bootstrap interval (clips resampled), and the same for the held-out
    denoising loss over its crops when both have them (the same draw only if both ran on the same corpus state,
    which is checked by the clip count). A difference whose interval excludes 0 is one the clips support."""
    b_rows = {r["id"]: r for r in before["clips"]}
    if [r["id"] for r in after["clips"]] != [r["id"] for r in before["clips"]]:
        raise EvaluationError("the two evaluations are not on the same clips; run the second with --compare-to")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"n_clips": len(b_rows), "metrics": {}}

    def paired(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        ok = np.isfinite(x) & np.isfinite(y)
        d = y[ok] - x[ok]
        boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return {"before": round(float(x[ok].mean()), 4), "after": round(float(y[ok].mean()), 4),
                "diff": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
                "n": int(ok.sum())}

    keys = [k for k in after["clips"][0] if k.startswith(PAIRED_METRICS) and k in before["clips"][0]]
    for k in keys:
        x = np.array([b_rows[r["id"]][k] for r in after["clips"]], float)
        y = np.array([r[k] for r in after["clips"]], float)
        out["metrics"][k] = paired(x, y)
    bl, al = before.get("heldout_v_loss_per_crop"), after.get("heldout_v_loss_per_crop")
    same_draw = before["summary"].get("heldout_clips") == after["summary"].get("heldout_clips")
    if bl and al and len(bl) == len(al) and same_draw:
        out["metrics"]["heldout_v_loss"] = paired(np.array(bl), np.array(al))
    return out


def _denoising_loss(pipe, corpus: Corpus, n_crops: int = HELDOUT_LOSS_CROPS) -> dict[str, Any]:
    from diffusers import DDPMScheduler

    from .train_ldm import CROP, LatentCache, heldout_crop_losses

    if pipe.controlnet is None or pipe.film_head is None:
        return {}
    if not any(c.log_mel.shape[1] >= CROP for c in corpus.clips):  # the split `heldout_corpora` would keep
        return {}
    held = corpus
    models = {"unet": pipe.unet, "controlnet": pipe.controlnet, "film_head": pipe.film_head}
    losses = heldout_crop_losses(models, held, DDPMScheduler(**pipe.noise_schedule), LatentCache(pipe.vae),
                                 n_crops=n_crops)
    return {"heldout_v_loss": round(float(np.mean(losses)), 5), "heldout_v_loss_crops": len(losses),
            "heldout_clips": len(held.clips), "heldout_v_loss_per_crop": [round(x, 6) for x in losses]}


def _index(root: Path) -> list[dict]:
    with open(root / "index.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def vae_and_vocoder(pipe, clips, seconds: float = 5.12) -> dict[str, float]:
    """On the first `seconds` of each clip (`.log_mel`, `.audio_path`): the VAE's reconstruction L1 and the network
    vocoder against Griffin-Lim (32 iterations), both resynthesising the true Mel, by multi-resolution STFT loss
    and log-Mel L1 against the real audio at `pipe.mel_config`'s rate (`pipe`: `.vae`, `.vocoder`, `.mel_config`)."""
    n = int(seconds * 100)
    sr, hop = pipe.mel_config.sample_rate, pipe.mel_config.hop_length
    vae_l1, net_stft, gl_stft, net_mel, gl_mel = [], [], [], [], []
    from ..audio.mel import MelSpectrogram

    front = MelSpectrogram(pipe.mel_config)
    for clip in clips:
        if clip.log_mel.shape[1] < n:
            continue
        mel = torch.from_numpy(clip.log_mel[:, :n].astype(np.float32))[None]
        mean, _ = pipe.vae.encode(mel)
        vae_l1.append(float((pipe.vae.decode(mean) - mel).abs().mean()))
        real = torch.from_numpy(load_audio(clip.audio_path, sr)[: n * hop])[None]
        gl = griffin_lim(mel, pipe.mel_config, n_iter=32)
        gl_stft.append(float(multi_resolution_stft_loss(gl, real)))
        gl_mel.append(float((front(gl) - mel).abs().mean()))
        if pipe.vocoder is not None:
            y = pipe.vocoder(mel)
            net_stft.append(float(multi_resolution_stft_loss(y, real)))
            net_mel.append(float((front(y) - mel).abs().mean()))
    out = {"vae_recon_l1_logmel": _nanmean(vae_l1), "griffin_lim_mrstft": _nanmean(gl_stft),
           "griffin_lim_logmel_l1": _nanmean(gl_mel)}
    if net_stft:
        out.update({"vocoder_mrstft": _nanmean(net_stft), "vocoder_logmel_l1": _nanmean(net_mel)})
    return out
