"""`evaluate`: render an evaluation set with a bundle and its baselines, measure every cue, pool per system.

Systems (each item is rendered by each system that applies to it, same seed, same picture):
- `model`: the bundle with the item's controls (the system under test);
- `no_control`: the same model with control guidance 0, i.e. without its ControlNet;
- `shuffled`: the model following another item's controls, scored against the item's own (chance level);
- `ground_truth`: the item's own recording (the metrics' ceiling: re-extraction is not perfect even there);
- `gt_vae_vocoder`: the recording's Mel through the bundle's VAE and vocoder (the upper bound of the model);
- `griffin_lim`: the recording's Mel inverted by Griffin-Lim (32 iterations), the weight-free vocoder;
- `plan`: the model rendering the item's cue plan (engine/plan: made from its picture, hits, theme and seed, as
  `filmscore render --plan` renders one: the plan's melody and dynamics are the controls).
Every cue is also measured against the item's plan (`plan_adherence`: hits on the plan's beats, the audio's tempo
and mode against the plan's, pulse on its beats): for `plan` that is how far a rendered plan is followed, for the
others how far the cue follows what the picture asks for.
The last three need the item's ground-truth audio. Audio is compared at the model rate (16 kHz), before mastering.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import LATENT_DOWNSAMPLE, MODEL_SAMPLE_RATE
from ..errors import FilmscoreError
from ..options import RenderOptions
from .adherence import CueAdherence, measure_adherence, pool_adherence
from .evalset import EvalItem, EvalSet, controls_for_item, shuffled_partner
from .rhythm import RhythmScores, measure_rhythm

logger = logging.getLogger(__name__)

SYSTEMS: tuple[str, ...] = ("model", "no_control", "shuffled", "ground_truth", "gt_vae_vocoder", "griffin_lim",
                             "plan")
MODEL_SYSTEMS = ("model", "no_control", "shuffled", "plan")
GT_SYSTEMS = ("ground_truth", "gt_vae_vocoder", "griffin_lim")


@dataclass(frozen=True)
class EvalOptions:
    """What an evaluation renders with: `render`, the render options (engine/options.py; its `backend` runs the
    model systems, the ground-truth baselines use the torch VAE and vocoder), and what only evaluation has."""

    bundle: Path | None = None
    systems: tuple[str, ...] = SYSTEMS
    render: RenderOptions = field(default_factory=RenderOptions)
    transcriber: str = "auto"

    def validate(self) -> None:
        self.render.validate()
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad:
            raise FilmscoreError(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
        if not self.systems:
            raise FilmscoreError("no system to evaluate")


@dataclass
class CueResult:
    """One (system, item) cue: its audio and every per-cue score."""

    system: str
    item: str
    wave: np.ndarray  # (n,) float32 at 16 kHz
    adherence: CueAdherence | None
    rhythm: RhythmScores
    log_mel: np.ndarray | None = None  # (n_mels, T) of the cue (plots)
    originality: dict = field(default_factory=dict)
    recognised: dict = field(default_factory=dict)
    emb_segments: np.ndarray | None = None
    handcrafted: np.ndarray | None = None
    plan: dict = field(default_factory=dict)  # plan_adherence against the item's plan ({} without one)
    seconds: float = 0.0

    def scores(self) -> dict:
        a, r = self.adherence, self.rhythm
        d = {"melody_accuracy": a.melody_accuracy if a else float("nan"),
             "dynamics_r": a.dynamics_r if a else float("nan"),
             "cut_onset_rate": r.cut_onset_rate, "hit_onset_rate": r.hit_onset_rate,
             "onset_chance": r.onset_chance, "beat_f1": r.beat_f1,
             "beat_transition_iou": r.beat_transition_iou, "motion_loudness_r": r.motion_loudness_r}
        d.update({k: v for k, v in self.originality.items()})
        d.update({k: v for k, v in self.recognised.items()})
        d.update({f"plan_{k}": self.plan.get(k, float("nan")) for k in PLAN_SCORES})
        d["render_s"] = self.seconds
        return d


PLAN_SCORES = ("hits_on_beats", "tempo_matches", "mode_matches", "pulse_on_beats")
"""The per-cue plan adherence scores pooled (means; the booleans as shares), keys prefixed `plan_`."""


@dataclass
class Prepared:
    item: EvalItem
    n_samples: int
    n_frames: int
    film: object | None
    cuts_s: tuple[float, ...]
    hits_s: tuple[float, ...]
    motion: np.ndarray | None
    controls: object
    gt_wave: np.ndarray | None
    plan: object | None = None  # the item's `CuePlan`, or None when one cannot be made (logged)


def _prepare(item: EvalItem, hop: int) -> Prepared:
    from ..audio.io import load_audio
    from ..cue_controls import with_picture_dynamics
    from ..request import cue_n_samples

    n_samples = cue_n_samples(item.duration_s, MODEL_SAMPLE_RATE)
    n_frames = math.ceil(n_samples / hop)
    film = None
    if item.video is not None:
        from ..film import encode_video

        film = encode_video(item.video, item.start_s, item.duration_s)
    cuts = tuple(film.cuts_s) if film is not None else ()
    hits = item.hits_s if item.hits_s is not None else cuts
    motion = film.motion_at(n_frames) if film is not None else None
    # weight 0: an item's own dynamics stay what adherence is measured against; the picture fills only absent ones
    controls = with_picture_dynamics(controls_for_item(item, n_frames, hits), film, 0.0)
    gt = None
    if item.audio is not None:
        gt = load_audio(item.audio, MODEL_SAMPLE_RATE)[:n_samples]
        gt = np.pad(gt, (0, n_samples - gt.size)).astype(np.float32)
    return Prepared(item, n_samples, n_frames, film, cuts, hits, motion, controls, gt, _item_plan(item, film, hits))


def _item_plan(item: EvalItem, film, hits_s: tuple[float, ...]):
    """The cue plan of an item: its picture, hit points, theme (MIDI or maestro; an item given only as controls
    has its melody drawn from the pooled style) and seed, no overrides: what `filmscore render` with plan flags
    would make."""
    from ..plan.mood import PlanError
    from ..plan.spec import PlanSpec, make_cue_plan

    try:
        return make_cue_plan(PlanSpec(), duration_s=item.duration_s, film=film, start_s=item.start_s, midi=item.midi,
                             maestro=item.maestro, theme=item.theme, hits_s=hits_s, seed=item.seed)
    except (PlanError, FilmscoreError) as e:
        logger.warning("item %s: no plan (%s); its plan adherence is left out", item.id, e)
        return None


def _vocode(pipe, log_mel: torch.Tensor, n_samples: int, vocoder: str, seed: int) -> np.ndarray:
    """`(1, n_mels, T)` log-Mel -> `(n_samples,)` as the pipeline's step 6 does."""
    from ..audio.griffin_lim import griffin_lim
    from ..chunking import run_chunked, run_crossfaded
    from ..pipeline import VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL

    hop = pipe.mel_config.hop_length
    if pipe.vocoder is not None and vocoder in ("auto", "network"):
        wave = run_chunked(pipe.vocoder, log_mel, VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL, hop)
    else:
        wave = run_crossfaded(lambda m: griffin_lim(m, pipe.mel_config, seed=seed), log_mel, VOCODE_CHUNK_MEL,
                              VOCODE_MARGIN_MEL, hop)
    w = wave[0, :n_samples].numpy().astype(np.float32)
    return np.pad(w, (0, n_samples - w.size))


@torch.no_grad()
def _through_vae(pipe, gt: np.ndarray, vocoder: str, seed: int) -> np.ndarray:
    from ..audio.mel import log_mel

    m = log_mel(gt, pipe.mel_config)[None]
    t = m.shape[-1]
    pad = (-t) % (LATENT_DOWNSAMPLE * 4)
    mp = torch.nn.functional.pad(m, (0, pad), mode="replicate")
    mean, _ = pipe.vae.encode(mp)
    rec = pipe.vae.decode(mean)[..., :t]
    return _vocode(pipe, rec, gt.size, vocoder, seed)


@torch.no_grad()
def _griffin_lim(pipe, gt: np.ndarray, seed: int) -> np.ndarray:
    from ..audio.griffin_lim import griffin_lim
    from ..audio.mel import log_mel

    m = log_mel(gt, pipe.mel_config)[None]
    w = griffin_lim(m, pipe.mel_config, n_iter=32, seed=seed)[0, :gt.size].numpy().astype(np.float32)
    return np.pad(w, (0, gt.size - w.size))


def render_system(system: str, p: Prepared, pipe, opts: EvalOptions, partner: Prepared | None) -> np.ndarray | None:
    """The cue one system makes for one item (16 kHz, exactly `p.n_samples`), or None where it does not apply."""
    if system in GT_SYSTEMS:
        if p.gt_wave is None:
            return None
        if system == "ground_truth":
            return p.gt_wave
        if system == "griffin_lim":
            return _griffin_lim(pipe, p.gt_wave, p.item.seed)
        return _through_vae(pipe, p.gt_wave, opts.render.vocoder, p.item.seed)
    r = opts.render
    controls = p.controls
    guidance = r.control_guidance
    if system == "plan":
        if p.plan is None:
            return None
        controls = p.plan.controls(p.n_frames)
    elif system == "no_control":
        guidance = 0.0
    elif system == "shuffled":
        if partner is None:
            return None
        controls = partner.controls.fit_length(p.n_frames)
    out = pipe(n_samples=p.n_samples, film=p.film, controls=controls, seed=p.item.seed, steps=r.steps,
               scheduler=r.scheduler, picture_guidance=r.picture_guidance, control_guidance=guidance,
               control_strength=r.control_strength, vocoder=r.vocoder)
    return out.wave


def measure_cue(system: str, p: Prepared, wave: np.ndarray, reference, transcriber: str) -> CueResult:
    """Every per-cue score of `wave` against the item `p` (its requested controls, picture, and the corpus)."""
    from ..audio.mel import log_mel

    c = p.controls
    adh = measure_adherence(c, wave, MODEL_SAMPLE_RATE) if (c.melody_present or c.dynamics_present) else None
    rhy = measure_rhythm(wave, MODEL_SAMPLE_RATE, p.cuts_s, p.hits_s, p.motion)
    res = CueResult(system, p.item.id, wave, adh, rhy, log_mel(wave).numpy())
    if p.plan is not None:
        from .plan_adherence import plan_adherence

        res.plan = plan_adherence(p.plan, wave, MODEL_SAMPLE_RATE)
    if reference is not None:
        from .embedding import embed_log_mel, predict_master, prepare_log_mel
        from .originality import melody_ngrams
        from .quality import handcrafted_features
        from .transcription import melody_from_audio

        m = prepare_log_mel(wave)
        segs, _ = embed_log_mel(reference.embedder, m)
        res.emb_segments = segs
        res.handcrafted = handcrafted_features(wave, MODEL_SAMPLE_RATE)
        grams = melody_ngrams(melody_from_audio(wave, MODEL_SAMPLE_RATE, transcriber)[0])
        hi = reference.pieces.highest(grams, segs.mean(axis=0))
        res.originality = {"similarity_melodic": hi["melodic"], "similarity_embedding": hi["embedding"],
                           "nearest_melodic": hi["melodic_nearest"], "nearest_embedding": hi["embedding_nearest"],
                           "n_ngrams": len(grams)}
        if p.item.master is not None:
            pred, prob = predict_master(reference.embedder, m)
            classes = reference.embedder.config.classes
            res.recognised = {"predicted_master": pred, "requested_master": p.item.master,
                              "master_known": p.item.master in classes,
                              "p_requested": float(prob[classes.index(p.item.master)])
                              if p.item.master in classes else float("nan")}
    return res


def pool_system(cues: list[CueResult], items: dict[str, EvalItem], reference) -> dict:
    """Pooled scores of one system over its cues."""
    def mean(key):
        v = [c.scores()[key] for c in cues]
        v = [x for x in v if isinstance(x, (int, float)) and np.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    out = pool_adherence([c.adherence for c in cues if c.adherence is not None])
    for k in ("cut_onset_rate", "hit_onset_rate", "onset_chance", "beat_f1", "beat_transition_iou",
              "motion_loudness_r"):
        out[k] = mean(k)
    for k in PLAN_SCORES:
        out[f"plan_{k}"] = mean(f"plan_{k}")
    out["n_plan_cues"] = sum(bool(c.plan) for c in cues)
    out["n_cues"] = len(cues)
    if reference is None:
        return out
    from .originality import OriginalityScores, pool_originality
    from .quality import frechet_distance, standardise

    scores = [OriginalityScores(c.originality["similarity_melodic"], c.originality["similarity_embedding"])
              for c in cues]
    out.update(pool_originality(scores, reference.calibration.get("melodic"), reference.calibration.get("embedding")))
    guided = [c for c in cues if items[c.item].maestro and c.recognised.get("master_known")]
    out["maestro_top1"] = (float(np.mean([c.recognised["predicted_master"] == c.recognised["requested_master"]
                                          for c in guided])) if guided else float("nan"))
    out["n_maestro_cues"] = len(guided)
    known = [c for c in cues if not items[c.item].maestro and c.recognised.get("master_known")]
    out["own_master_top1"] = (float(np.mean([c.recognised["predicted_master"] == c.recognised["requested_master"]
                                             for c in known])) if known else float("nan"))
    # the reference leaves out the stretches of held-out clips that are this set's own items
    exclude = [(it.id, it.start_s, it.start_s + it.duration_s) for it in items.values()]
    ref_e = reference.quality_embedding[reference.quality_mask("embedding", exclude)]
    ref_h = reference.quality_handcrafted[reference.quality_mask("handcrafted", exclude)]
    emb = np.concatenate([c.emb_segments for c in cues]) if cues else np.zeros((0, 1))
    out["fad_proxy_embedding"] = frechet_distance(emb, ref_e) if len(emb) else float("nan")
    hc = np.concatenate([c.handcrafted for c in cues]) if cues else np.zeros((0, 1))
    if len(hc) and len(ref_h) > 1:
        ref_z, hc_z = standardise(ref_h, hc)
        out["fad_proxy_handcrafted"] = frechet_distance(hc_z, ref_z)
    else:
        out["fad_proxy_handcrafted"] = float("nan")
    out["n_segments"] = int(len(emb))
    out["n_reference_segments"] = int(len(ref_e))
    return out


@dataclass
class EvalRun:
    """Everything a report needs: options, per-cue results, pooled scores per system, requested controls."""

    set_name: str
    options: EvalOptions
    cues: list[CueResult]
    pooled: dict[str, dict]
    prepared: dict[str, Prepared]
    bundle: dict
    reference: dict | None
    reference_missing: str | None
    seconds: float


def evaluate(evalset: EvalSet, opts: EvalOptions = EvalOptions(), reference=None,
             reference_missing: str | None = None, progress=None, audio_dir: Path | None = None) -> EvalRun:
    """Render and measure every (system, item) of `evalset`. `reference`: a `CorpusReference` for originality,
    recognizability and FAD-proxy (None: those are left out, `reference_missing` says why). `audio_dir`: where
    to write each cue as `SYSTEM/ITEM.wav` (16 kHz)."""
    from ..render import build_pipeline
    from .transcription import resolve

    opts.validate()
    t_start = time.perf_counter()
    report = progress or (lambda stage, frac, msg="": None)
    transcriber = resolve(opts.transcriber) if reference is not None else "none"
    pipe, bundle = build_pipeline(opts.bundle)
    from ..backends import load_backend

    backend = load_backend(opts.render.backend, bundle)
    backend.attach(pipe)
    prepared = {}
    for i, item in enumerate(evalset.items):
        prepared[item.id] = _prepare(item, pipe.mel_config.hop_length)
        report("prepare", (i + 1) / len(evalset.items), f"picture and controls of {item.id}")
    jobs = [(s, it) for it in evalset.items for s in opts.systems]
    cues: list[CueResult] = []
    for k, (system, item) in enumerate(jobs):
        j = shuffled_partner(evalset.items.index(item), evalset.items)
        partner = prepared[evalset.items[j].id] if j is not None else None
        t0 = time.perf_counter()
        wave = render_system(system, prepared[item.id], pipe, opts, partner)
        if wave is not None:
            dt = time.perf_counter() - t0
            res = measure_cue(system, prepared[item.id], wave, reference, transcriber)
            res.seconds = dt
            cues.append(res)
            if audio_dir is not None:
                import soundfile as sf

                (audio_dir / system).mkdir(parents=True, exist_ok=True)
                sf.write(str(audio_dir / system / f"{item.id}.wav"), wave, MODEL_SAMPLE_RATE, subtype="PCM_16")
        report("cues", (k + 1) / len(jobs), f"{system} / {item.id}")
    items = {it.id: it for it in evalset.items}
    pooled = {s: pool_system([c for c in cues if c.system == s], items, reference)
              for s in opts.systems if any(c.system == s for c in cues)}
    return EvalRun(evalset.name, opts, cues, pooled, prepared, {**bundle.info(), "backend": backend.summary()},
                   reference.summary() if reference is not None else None, reference_missing,
                   time.perf_counter() - t_start)
