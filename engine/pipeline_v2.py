"""`FilmScorePipelineV2`: bundle v2's sampler. Picture, mood, maestro and `ControlsV2` -> the three stems' latents,
denoised jointly -> one shared VAE decoder per stem -> one vocoder at the model rate -> stereo stems and their mix.

It reuses v1's parts by import: diffusers schedulers (`schedulers.make_scheduler`), windows and their fusion over a
long cue (`windowed`), chunked decoding (`chunking`) and the thread pool whose results do not depend on the thread
count (`threads`). What differs from v1 (engine/pipeline.py) is the guidance, per condition group:

    v = v_all + sum over guided groups g of (w_g - 1) (v_all - v_without_g)

`v_all` sees every condition given; `v_without_g` the same with group g absent (exactly what condition dropout
taught, `train_v2.P_DROP`). A scale of 1 costs no pass; each other scale one more model pass per step. With one
group this is classifier-free guidance (w (c - u) + u); with several it is a product of experts of each group's
conditional over the rest (Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion Models").
Groups: picture, mood, style (global), melody, dynamics, harmony, rhythm (ControlNet).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .allocator import release
from .audio.spill import Spill, SpillColumn
from .bundle_v2 import BundleV2
from .constants import (CONTROL_FRAME_RATE, LATENT_DOWNSAMPLE, LATENT_FRAME_RATE, WINDOW_MEL_FRAMES,
                        WINDOW_OVERLAP_MEL_FRAMES)
from .errors import BundleError, RenderCancelled
from .film.features import FilmFeatures
from .models.controls_v2 import CONTROL_CHANNELS_V2, CONTROL_GROUPS_V2, ControlsV2, drop_groups
from .options import DEFAULTS as D  # the render options' defaults (engine/options.py owns them)
from .pipeline import WINDOW_BATCH, DecodedMel, vocode_streamed
from .request import CancelFn, ProgressFn
from .schedulers import make_scheduler
from .stereo_v2 import StereoStems, place_stems
from .threads import StagePool, model_threads
from .windowed import cue_frames, fusion_weights, plan_windows


def _extreme_pitch(notes, n: int, pick) -> np.ndarray | None:
    """`(n,)` highest (`pick=np.maximum`) or lowest (`np.minimum`) MIDI pitch sounding per frame, 0 where none;
    None without notes. Frames by the corpus labels' rule (engine/data/labels.py `note_frames`)."""
    from .data.labels import note_frames  # the one frame rule of notes, shared with the corpus labels

    if not notes:
        return None
    fill = 0 if pick is np.maximum else 128
    out = np.full(n, fill, np.int16)
    a, b = note_frames(np.array([x.onset_s for x in notes]), np.array([x.offset_s for x in notes]), n)
    for lo, hi, x in zip(a, b, notes):
        if hi > lo:
            pick(out[lo:hi], x.pitch, out=out[lo:hi])
    out[out == 128] = 0
    return out


def controls_from_theme(midi, track: int | None = None, n_frames: int | None = None) -> ControlsV2:
    """A theme's MIDI (path, bytes or `mido.MidiFile`) as bundle v2's controls: its melody with the register it is
    written in (the highest note sounding per frame of `track`, or of all tracks) and its dynamics
    (`controls.midi.controls_from_midi`, v1's recipe); harmony and rhythm absent (a cue plan gives them)."""
    from .controls.midi import controls_from_midi, notes_from_midi

    v1 = controls_from_midi(midi, track=track, n_frames=n_frames)
    notes = notes_from_midi(midi, track=track) if v1.melody_present else []
    return ControlsV2(v1.n_frames, melody_pitch=_extreme_pitch(notes, v1.n_frames, np.maximum),
                      dynamics_db=v1.dynamics if v1.dynamics_present else None)


def controls_from_fitted(fitted, controls_v1) -> ControlsV2:
    """A theme fitted to the cue (engine/controls/fit.py `FittedTheme`, its notes in cue seconds) and the v1
    controls made from it (whose dynamics may carry the picture's, `cue_controls.with_picture_dynamics`) as bundle
    v2's controls: the melody is the fitted melody notes' highest pitch per frame, so it keeps the written
    register that v1's pitch-class melody drops."""
    n = controls_v1.n_frames
    notes = fitted.melody_notes() if fitted is not None else []
    return ControlsV2(n, melody_pitch=_extreme_pitch(notes, n, np.maximum),
                      dynamics_db=np.asarray(controls_v1.dynamics, np.float32) if controls_v1.dynamics_present
                      else None)


def controls_from_plan(plan, n_frames: int | None = None) -> tuple[ControlsV2, np.ndarray]:
    """A cue plan (engine/plan/plan.py `CuePlan`) as bundle v2's controls and mood `(3,)`, frame by frame by the
    rules the corpus labels follow (engine/data/labels.py): melody = the melody track's highest sounding pitch;
    dynamics = the plan's curve at 100/s; harmony = the chord's pitch classes from its start to its end, bass = the
    lowest harmony or bass note sounding; beats and downbeats on floor(t x 100)."""
    from .data.labels import note_frames  # the one frame rule of notes, shared with the corpus labels
    from .plan.dynamics import to_control_rate

    n = n_frames if n_frames is not None else int(math.ceil(plan.duration_s * CONTROL_FRAME_RATE - 1e-9))

    chroma = None
    if plan.chords:
        chroma = np.zeros((n, 12), np.uint8)
        for c in plan.chords:
            a, b = note_frames(np.array([c.time_s]), np.array([c.end_s]), n)
            chroma[a[0]:b[0], list(c.pitch_classes)] = 1

    def impulses(times) -> np.ndarray:
        out = np.zeros(n, np.uint8)
        f = np.floor(np.asarray(times, np.float64) * CONTROL_FRAME_RATE + 1e-6).astype(np.int64)
        out[f[(f >= 0) & (f < n)]] = 1
        return out

    beats = impulses(plan.tempo.beats)
    bass = _extreme_pitch(list(plan.harmony) + list(plan.bass), n, np.minimum) if chroma is not None else None
    controls = ControlsV2(n, melody_pitch=_extreme_pitch(plan.melody, n, np.maximum),
                          dynamics_db=to_control_rate(np.asarray(plan.dynamics_db), n), chord_chroma=chroma,
                          bass_pitch=bass, beat=beats if beats.any() else None,
                          downbeat=impulses(plan.tempo.downbeats) if beats.any() else None)
    mood = np.array([plan.mood.energy, plan.mood.valence, plan.mood.tension], np.float32)
    return controls, mood


@dataclass(frozen=True)
class GuidanceV2:
    """Guidance scale per condition group (1: follow as trained, no extra pass; 0 leaves the group out). Defaults
    are starting points, not tuned: no trained v2 model existed when they were set."""

    picture: float = 2.0
    mood: float = 1.0
    style: float = 1.5
    melody: float = 2.5
    dynamics: float = 1.0
    harmony: float = 2.0
    rhythm: float = 1.5


@dataclass
class PipelineV2Output:
    """What the model made: each stem's mid signal. Its stereo stems and their mix follow from the mids
    (engine/stereo_v2.py): `stereo` makes them a block at a time (a delivery's way: memory flat in the cue's
    length), `stems` and `mix` whole, on first use."""

    mids: dict[str, np.ndarray]  # name -> (n_samples,) float32 at `sample_rate`: what the model generated (arrays,
    # or `SpillColumn`s of a working file with `waves_to`: `np.asarray` reads one whole)
    side_gains: dict[str, float]  # the bundle's stereo width per stem
    log_mels: np.ndarray | None  # (n_stems, n_mels, n_mel_frames) with `keep_mel`, else None
    sample_rate: int
    timings_s: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def stereo(self) -> StereoStems:
        return StereoStems(self.mids, self.side_gains, self.sample_rate)

    @cached_property
    def _placed(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return place_stems(self.mids, self.side_gains, self.sample_rate)

    @property
    def stems(self) -> dict[str, np.ndarray]:
        """name -> (n_samples, 2) float32 stereo stem."""
        return self._placed[0]

    @property
    def mix(self) -> np.ndarray:
        """(n_samples, 2) float32: the sum of the stereo stems."""
        return self._placed[1]


class FilmScorePipelineV2:
    def __init__(self, bundle: BundleV2, window_batch: int = WINDOW_BATCH):
        m = bundle.models
        if "vocoder" not in m:
            raise BundleError(f"{bundle.path}: a v2 bundle renders through its network vocoder; it has none")
        self.bundle = bundle
        self.vae, self.unet, self.controlnet, self.vocoder = m["vae"], m["unet"], m["controlnet"], m["vocoder"]
        self.film_head, self.global_cond = m.get("film_head"), m["global_cond"]
        self.stems = bundle.stems
        self.mel_config = bundle.mel_config
        self.window_batch = window_batch
        self.window = WINDOW_MEL_FRAMES // LATENT_DOWNSAMPLE
        self.overlap = WINDOW_OVERLAP_MEL_FRAMES // LATENT_DOWNSAMPLE

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, ctrl: torch.Tensor) -> torch.Tensor:
        down, mid = self.controlnet(x, t, tokens, ctrl)
        return self.unet(x, t, tokens, down, mid)

    def _film_tokens(self, windows, film: FilmFeatures | None) -> torch.Tensor | None:
        if film is None or self.film_head is None:
            return None
        frames = [film.window(w.start / LATENT_FRAME_RATE, w.length / LATENT_FRAME_RATE) for w in windows]
        return torch.cat([self.film_head(torch.from_numpy(f)[None]) for f in frames])

    def _passes(self, windows, film_tokens: torch.Tensor | None, mood: np.ndarray | None, master: str | None,
                present: dict[str, bool], guidance: GuidanceV2
                ) -> tuple[list[tuple[str, torch.Tensor, dict[str, bool]]], dict[str, float]]:
        """[(name, tokens (W, K+2, D), control groups kept {group: bool})]: "all" and one "without g" per guided
        group; and the scales used. A group that is not given (or has scale 0) is absent in every pass."""
        n = len(windows)
        scales = asdict(guidance)
        given = {"picture": film_tokens is not None, "mood": mood is not None, "style": master is not None, **present}
        on = {g: given[g] and scales[g] != 0 for g in scales}
        mood_t = torch.from_numpy(np.asarray(mood if mood is not None else [0.5] * 3, np.float32))[None].expand(n, 3)
        master_t = torch.full((n,), self.global_cond.master_index(master) if master is not None else 0)

        def make(off: str | None) -> tuple[torch.Tensor, dict[str, bool]]:
            keep = {g: torch.full((n,), on[g] and g != off) for g in scales}
            null = self.unet.null_context(n)
            film = torch.where(keep["picture"][:, None, None], film_tokens, null) if film_tokens is not None else null
            glob = self.global_cond(mood_t, keep["mood"], torch.where(keep["style"], master_t, 0))
            return torch.cat([film, glob], 1), {g: on[g] and g != off for g in CONTROL_GROUPS_V2}

        passes = [("all", *make(None))]
        used = {}
        for g, w in scales.items():
            if on[g]:
                used[g] = w
                if w != 1.0:
                    passes.append((g, *make(g)))
        return passes, used

    def __call__(self, *, threads: int | None = None, **kw: Any) -> PipelineV2Output:
        """Render (the keyword arguments of `_run`) with model calls spread over `threads` one-thread workers; the
        output does not depend on `threads`."""
        with model_threads(threads) as pool:
            return self._run(pool, **kw)

    @torch.no_grad()
    def _run(self, pool: StagePool, *, n_samples: int, controls: ControlsV2 | None = None,
             mood: np.ndarray | None = None, master: str | None = None, film: FilmFeatures | None = None,
             seed: int = D.seed, steps: int = D.steps, scheduler: str = D.scheduler,
             guidance: GuidanceV2 = GuidanceV2(),
             progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
             keep_mel: bool = False, waves_to: Path | None = None) -> PipelineV2Output:
        """`waves_to`: a folder where the stems' waves are kept in a nameless working file (engine/audio/spill.py)
        instead of memory, `mids` reading it a block at a time (a render's delivery: memory flat in the cue's
        length); by default they are arrays."""
        timings: dict[str, float] = {}
        report = progress or (lambda stage, frac, msg: None)
        hop = self.mel_config.hop_length
        multiple = self.unet.downsample_factor
        frames = cue_frames(n_samples, hop, self.window, multiple)
        n_mel, n_latent, n_mel_pad = frames.n_mel, frames.n_latent, frames.n_mel_pad
        windows = plan_windows(n_latent, self.window, self.overlap, multiple)
        weights = fusion_weights(windows, n_latent, self.overlap)

        t0 = time.perf_counter()
        if controls is None:
            controls = ControlsV2(n_mel_pad)
        present = controls.present
        full = torch.from_numpy(controls.fit_length(n_mel_pad).to_model_input())
        a = LATENT_DOWNSAMPLE
        film_tokens = self._film_tokens(windows, film)
        passes, used = self._passes(windows, film_tokens, mood, master, present, guidance)
        timings["conditioning"] = time.perf_counter() - t0
        # The model's batch rows, pass by pass, each pass's windows in order. A call's latents and controls are cut
        # from the cue's when the call runs, so no step holds every window's inputs for every pass (memory flat in
        # the cue's length); the calls and their rows are what they were when all rows were made up front.
        rows = [(k, j) for k in range(len(passes)) for j in range(len(windows))]

        def call_inputs(x_in: torch.Tensor, z: slice) -> tuple[torch.Tensor, torch.Tensor]:
            picked = rows[z]
            spans = [windows[j] for _, j in picked]
            x = torch.cat([x_in[..., w.start:w.start + w.length] for w in spans])
            c = torch.stack([full[:, w.start * a:(w.start + w.length) * a] for w in spans])
            keep = {g: torch.tensor([passes[k][2][g] for k, _ in picked]) for g in CONTROL_GROUPS_V2}
            return x, drop_groups(c, keep)

        sched = make_scheduler(scheduler, self.bundle.noise_schedule)
        sched.set_timesteps(steps)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        latents = torch.randn((1, self.unet.config.in_channels, n_latent), generator=gen) * sched.init_noise_sigma
        toks = torch.cat([p[1] for p in passes])
        nw = len(windows)
        calls = [slice(r, r + self.window_batch) for r in range(0, len(rows), self.window_batch)]
        t0 = time.perf_counter()
        for i, t in enumerate(sched.timesteps):
            if should_cancel is not None and should_cancel():
                raise RenderCancelled(f"cancelled at denoising step {i}/{len(sched.timesteps)}")
            x_in = sched.scale_model_input(latents, t)
            ts = torch.full((len(rows),), float(t))

            def call(z: slice, x_in=x_in, ts=ts) -> torch.Tensor:
                x, c = call_inputs(x_in, z)
                return self._denoise(x, ts[z], toks[z], c)

            out = torch.cat(pool.map(call, calls))
            v_all = out[:nw]
            v = v_all.clone()
            for k, (g, _, _) in enumerate(passes[1:], start=1):
                v = v + (used[g] - 1.0) * (v_all - out[k * nw:(k + 1) * nw])
            fused = torch.zeros_like(latents)
            for j, w in enumerate(windows):
                fused[..., w.start:w.start + w.length] += v[j:j + 1] * weights[j]
            latents = sched.step(fused, t, latents, generator=gen).prev_sample
            del out, v_all, v, fused
            release()  # the step's freed call buffers, kept by the allocator, back to the system (allocator.py)
            report("denoise", (i + 1) / len(sched.timesteps), f"step {i + 1}/{len(sched.timesteps)}")
        timings["denoise"] = time.perf_counter() - t0

        # each stem's latent through the one VAE decoder, then the one vocoder, the stems as a batch
        # streamed as v1's (engine/pipeline.py): the decoder's chunks made as the vocoder's need them, each vocoded
        # chunk written into the stems' float32 waves; no whole-cue Mel or list of chunks (memory flat in length)
        t0 = time.perf_counter()
        n_stems = len(self.stems)
        z = latents.reshape(n_stems, -1, n_latent) / self.vae.config.scaling_factor
        del latents
        mel = DecodedMel(self.vae.decode, z, n_mel, pool.map, keep=keep_mel)
        kept = None if waves_to is None else Spill(n_samples, n_stems, waves_to)
        waves = vocode_streamed(self.vocoder, mel, n_samples, hop, pool,
                                lambda f: report("vocode", f, "Mel decoded and audio synthesised chunk by chunk"),
                                out=kept)
        report("decode", 1.0, "Mel decoded")
        report("vocode", 1.0, "audio synthesised")
        timings["decode"] = mel.seconds
        timings["vocode"] = time.perf_counter() - t0 - mel.seconds
        # each stem a column of the waves: a view of the array, or read from the working file a block at a time
        mids = {s: waves[:, k] if kept is None else SpillColumn(kept, k) for k, s in enumerate(self.stems)}
        info = {"n_windows": nw, "passes": [p[0] for p in passes], "guidance": used, "threads": pool.threads,
                "stems": list(self.stems), "controls": {g: bool(v) for g, v in present.items()},
                "master": master, "mood": None if mood is None else [float(x) for x in mood],
                "picture": film_tokens is not None, "n_latent_frames": n_latent,
                "control_channels": CONTROL_CHANNELS_V2}
        return PipelineV2Output(mids, dict(self.bundle.side_gains), mel.kept, self.mel_config.sample_rate, timings, info)
