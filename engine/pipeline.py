"""`FilmScorePipeline`: picture features + local controls -> latent diffusion -> Mel -> waveform (HPM).

Components are passed in explicitly (diffusers style); `__call__` runs numbered steps. Runtime backends (ONNX
Runtime, TensorRT) replace the denoiser, decoder and vocoder callables through `engine/backends`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .allocator import release
from .audio.griffin_lim import griffin_lim
from .audio.mel import MelConfig
from .chunking import chunk_spans, run_crossfaded
from .constants import LATENT_DOWNSAMPLE, LATENT_FRAME_RATE, WINDOW_MEL_FRAMES, WINDOW_OVERLAP_MEL_FRAMES
from .controls.types import Controls
from .errors import BundleError, RenderCancelled
from .film.features import FilmFeatures
from .guidance import Guidance, GuidedCall, StepFusion, call_inputs, plan_calls
from .models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, MelVAE, VocosVocoder
from .options import DEFAULTS as D  # the render options' defaults (engine/options.py owns them)
from .request import CancelFn, ProgressFn
from .schedulers import make_scheduler
from .threads import StagePool, model_threads
from .windowed import Window, cue_frames, fusion_weights, plan_windows

logger = logging.getLogger(__name__)

DECODE_CHUNK_LATENT = 256  # 10.24 s per VAE-decoder chunk
DECODE_MARGIN_LATENT = 32
VOCODE_CHUNK_MEL = 1024
VOCODE_MARGIN_MEL = 64
WINDOW_BATCH = 4  # rows (window x guidance pass) per denoiser call: fixed, so the output is the same at any thread count


@dataclass
class PipelineOutput:
    wave: np.ndarray  # (n_samples,) float32 at the model rate
    log_mel: np.ndarray | None  # (n_mels, n_mel_frames); None unless the pipeline was asked to keep it
    timings_s: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    latents: torch.Tensor | None = None  # (1, C, L) the final latent, unscaled (engine/regenerate.py inpaints it)
    takes: list[PipelineOutput] = field(default_factory=list)  # with `seeds`: one output per seed, in order


@dataclass(frozen=True)
class Inpaint:
    """Hold part of the latent fixed while the rest is sampled (RePaint, Lugmayr et al. 2022): at every step the
    frames where `keep` is 1 are replaced by `known` noised to that step (the scheduler's forward process, noise
    from a generator seeded with the render's seed), and blended where `keep` ramps between 0 and 1. After the
    last step the kept frames are `known` exactly. engine/regenerate.py builds one."""

    known: torch.Tensor  # (1, C, L) a final latent, as PipelineOutput.latents
    keep: torch.Tensor  # (L,) 1 = known, 0 = sampled


class Denoiser:
    """One guided model evaluation for a batch of windows: ControlNet (where controls are on) + UNet.

    The torch implementation; `engine/backends` provides the same call over ONNX Runtime / TensorRT sessions."""

    def __init__(self, unet: FilmScoreUNet1D, controlnet: FilmScoreControlNet1D | None):
        self.unet = unet
        self.controlnet = controlnet

    @torch.no_grad()
    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor,
                 controls: torch.Tensor | None, control_scale: float) -> torch.Tensor:
        if controls is None or self.controlnet is None:
            return self.unet(sample, timestep, tokens)
        down, mid = self.controlnet(sample, timestep, tokens, controls, control_scale)
        return self.unet(sample, timestep, tokens, down, mid)


class FilmScorePipeline:
    def __init__(self, vae: MelVAE, unet: FilmScoreUNet1D, controlnet: FilmScoreControlNet1D | None,
                 film_head: FilmTokenHead | None, vocoder: VocosVocoder | None, mel_config: MelConfig,
                 noise_schedule: dict[str, Any], window_batch: int = WINDOW_BATCH, denoiser: Denoiser | None = None,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 vocode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 film_tokens: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.vae, self.unet, self.controlnet = vae, unet, controlnet
        self.film_head, self.vocoder = film_head, vocoder
        self.mel_config = mel_config
        self.noise_schedule = noise_schedule
        self.window_batch = window_batch
        self.denoiser = denoiser or Denoiser(unet, controlnet)
        # The model stages as callables, so that a runtime backend (engine/backends: `Backend.attach`) can run
        # them instead of the torch modules: latent -> log-Mel, log-Mel -> wave, frames -> tokens.
        self.decode = decode or vae.decode
        self.vocode = vocode or vocoder
        self.film_tokens = film_tokens or film_head
        self.parallel_calls = True  # a backend whose calls share one device context sets False (Backend.attach)
        self.window = WINDOW_MEL_FRAMES // LATENT_DOWNSAMPLE
        self.overlap = WINDOW_OVERLAP_MEL_FRAMES // LATENT_DOWNSAMPLE

    # -- helpers ---------------------------------------------------------------------------------------------
    def _window_tokens(self, windows: list[Window], film: FilmFeatures | None) -> torch.Tensor | None:
        """`(n_windows, K, D)` picture tokens, one set per window, or None without picture."""
        if film is None or self.film_head is None:
            return None
        toks = []
        with torch.no_grad():
            for w in windows:
                frames = film.window(w.start / LATENT_FRAME_RATE, w.length / LATENT_FRAME_RATE)
                toks.append(self.film_tokens(torch.from_numpy(frames)[None])[0])
        return torch.stack(toks)

    def _guided_step(self, pool: StagePool, work: list[tuple[int, GuidedCall]], t: torch.Tensor,
                     x_in: list[torch.Tensor], windows: list[Window], weights: list[torch.Tensor],
                     guides: list[Guidance], tokens: torch.Tensor | None, null: torch.Tensor,
                     ctrls: list[torch.Tensor | None], control_strength: float) -> list[torch.Tensor]:
        """One step's guided prediction per take, fused over the windows: `work`'s calls `(take, call)` on the pool,
        a few in flight, each window fused as soon as its passes are in (engine/guidance.py)."""
        fusions = [StepFusion(windows, weights, g, z) for g, z in zip(guides, x_in, strict=True)]

        def call(kc: tuple[int, GuidedCall]) -> torch.Tensor:
            k, c = kc
            return self.denoiser(*call_inputs(c, x_in[k], float(t), windows, tokens, null, ctrls[k]), control_strength)

        for (k, c), out in zip(work, pool.imap(call, work, ahead=2 * pool.threads), strict=True):
            fusions[k].add(c, out)
        return [f.result() for f in fusions]

    # -- the pipeline ----------------------------------------------------------------------------------------
    def __call__(self, *, threads: int | None = None, **kw: Any) -> PipelineOutput:
        """Render a cue (the keyword arguments of `_run`) with its model calls spread over `threads` workers of one
        intra-op thread each (default: torch's thread count; 1 for a backend whose calls cannot overlap). The
        output does not depend on `threads` (engine/threads.py)."""
        with model_threads(threads if self.parallel_calls else 1) as pool:
            return self._run(pool, **kw)

    @torch.no_grad()
    def _run(self, pool: StagePool, *, n_samples: int, film: FilmFeatures | None = None,
             controls: Controls | list[Controls] | None = None, seed: int = D.seed, steps: int = D.steps,
             scheduler: str = D.scheduler, picture_guidance: float = D.picture_guidance,
             control_guidance: float = D.control_guidance, control_strength: float = D.control_strength,
             vocoder: str = D.vocoder, progress: ProgressFn | None = None,
             should_cancel: CancelFn | None = None, inpaint: Inpaint | None = None,
             seeds: tuple[int, ...] | None = None, keep_mel: bool = False) -> PipelineOutput:
        """One cue; with `seeds`, one take per seed denoised together (every step's denoiser calls of all takes on
        the pool in one batch), returned as `PipelineOutput.takes` (the first take is also the output itself).
        `keep_mel`: also return the whole log-Mel (`PipelineOutput.log_mel`; None otherwise, as a render needs
        only the wave and a 10-minute cue's Mel is 31 MB)."""
        seeds = (seed,) if seeds is None else tuple(seeds)
        if inpaint is not None and len(seeds) > 1:
            raise ValueError("inpainting renders one take")
        timings: dict[str, float] = {}
        report = progress or (lambda stage, frac, msg: None)
        hop = self.mel_config.hop_length

        # 0. seconds -> frames (windowed.cue_frames)
        multiple = self.unet.downsample_factor
        frames = cue_frames(n_samples, hop, self.window, multiple)
        n_mel, n_latent, n_mel_pad = frames.n_mel, frames.n_latent, frames.n_mel_pad
        logger.info("cue: %d samples -> %d Mel frames -> %d latent frames (padded from %d Mel frames)",
                    n_samples, n_mel_pad, n_latent, n_mel)
        windows = plan_windows(n_latent, self.window, self.overlap, multiple)
        weights = fusion_weights(windows, n_latent, self.overlap)

        # 1. global control: picture tokens per window (None: no picture)
        t0 = time.perf_counter()
        pic_tokens = self._window_tokens(windows, film) if picture_guidance > 0 else None
        null = self.unet.null_context(1)

        # 2. local controls at 100/s, padded to the latent grid (one set per take: a seed may draw its own theme)
        per_take = list(controls) if isinstance(controls, (list, tuple)) else [controls] * len(seeds)
        if len(per_take) != len(seeds):
            raise ValueError(f"{len(per_take)} sets of controls for {len(seeds)} takes")

        def as_input(cc: Controls | None) -> torch.Tensor | None:
            if cc is None or not (cc.melody_present or cc.dynamics_present) or control_guidance <= 0:
                return None
            return torch.from_numpy(cc.fit_length(n_mel_pad).to_model_input())[None]

        ctrls = [as_input(cc) for cc in per_take]
        ctrl = ctrls[0]
        timings["conditioning"] = time.perf_counter() - t0

        # 3. initial noise, seeded on the CPU generator so that a seed means the same cue on every device
        sched = make_scheduler(scheduler, self.noise_schedule)
        sched.set_timesteps(steps)
        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        c = self.unet.config.in_channels
        lat = [torch.randn((1, c, n_latent), generator=g) * sched.init_noise_sigma for g in gens]
        # one scheduler per take: its multistep history and step index are per take, as in a render of one take
        scheds = [sched] + [make_scheduler(scheduler, self.noise_schedule) for _ in seeds[1:]]
        for s in scheds[1:]:
            s.set_timesteps(steps)
        latents = lat[0]
        if inpaint is not None:
            if inpaint.known.shape != latents.shape or inpaint.keep.shape != (n_latent,):
                raise ValueError(f"inpaint: known latent {tuple(inpaint.known.shape)} / keep "
                                 f"{tuple(inpaint.keep.shape)} do not match the cue's latent {tuple(latents.shape)}")
            known_gen = torch.Generator(device="cpu").manual_seed(seeds[0])  # its own stream
            keep = inpaint.keep.to(latents.dtype)

            def held(x: torch.Tensor, t_next) -> torch.Tensor:
                if t_next is None:  # after the last step: the known latent itself
                    known_t = inpaint.known
                else:
                    eps = torch.randn(inpaint.known.shape, generator=known_gen)
                    known_t = sched.add_noise(inpaint.known, eps, torch.tensor([t_next]))
                return keep * known_t + (1 - keep) * x

            lat[0] = held(latents, sched.timesteps[0])

        # 4. denoise all windows jointly, fusing their outputs at every step. Inpainting skips the windows that lie
        #    wholly in the kept part: every frame they cover (overlaps included) is replaced after each step, so
        #    their predictions would be discarded.
        t0 = time.perf_counter()
        n_steps = len(sched.timesteps)
        active = list(range(len(windows)))
        if inpaint is not None:
            active = [j for j, w in enumerate(windows) if bool((inpaint.keep[w.start:w.start + w.length] < 1).any())]
        n_windows = len(windows)
        windows, weights = [windows[j] for j in active], [weights[j] for j in active]
        if pic_tokens is not None:
            pic_tokens = pic_tokens[active]
        # one step's calls per take (engine/guidance.py), run a few at a time: every take's calls on the pool
        # together, ordered by the windows they serve, each take's calls those of a render of it alone
        guides = [Guidance(pic_tokens is not None, cr is not None, picture_guidance, control_guidance) for cr in ctrls]
        work = sorted(((k, c) for k, g in enumerate(guides) for c in plan_calls(len(windows), g, self.window_batch)),
                      key=lambda kc: kc[1].first_window)
        for i, t in enumerate(sched.timesteps):
            if should_cancel is not None and should_cancel():
                raise RenderCancelled(f"cancelled at denoising step {i}/{n_steps}")
            fused = self._guided_step(pool, work, t, [sk.scale_model_input(z, t) for sk, z in zip(scheds, lat)],
                                      windows, weights, guides, pic_tokens, null, ctrls, control_strength)
            for k, f in enumerate(fused):
                lat[k] = scheds[k].step(f, t, lat[k], generator=gens[k]).prev_sample
            del fused
            if inpaint is not None:
                lat[0] = held(lat[0], sched.timesteps[i + 1] if i + 1 < n_steps else None)
            release()  # the step's freed call buffers, kept by the allocator, back to the system (allocator.py)
            report("denoise", (i + 1) / n_steps, f"step {i + 1}/{n_steps}")
        timings["denoise"] = time.perf_counter() - t0
        del sched, scheds, latents  # the rest needs `lat` alone: not the schedulers' history nor the first noise

        # 5. VAE decoder -> log-Mel and 6. vocoder -> waveform, streamed: the decoder's chunks are made as the
        #    vocoder's chunks need them and dropped once read past, and each vocoded chunk goes straight into the
        #    take's float32 wave, so no whole-cue Mel or list of chunks is held (memory flat in the cue's length).
        #    Every chunk sees the same input as a whole-cue decode/vocode chunked the same way (chunking.chunk_spans),
        #    so the wave is the same sample for sample.
        use_net = self.vocoder is not None and vocoder in ("auto", "network")
        if vocoder == "network" and self.vocoder is None:
            raise BundleError("this bundle has no network vocoder; use --vocoder griffin-lim or auto")
        timings["decode"] = timings["vocode"] = 0.0
        takes = []
        for k, latents in enumerate(lat):
            t0 = time.perf_counter()
            mel = DecodedMel(self.decode, latents / self.vae.config.scaling_factor, n_mel, pool.map,
                             keep=keep_mel or not use_net)
            if use_net:
                wave = vocode_streamed(self.vocode, mel, n_samples, self.mel_config.hop_length, pool,
                                       lambda f, k=k: report("vocode", (k + f) / len(lat),
                                                             "Mel decoded and audio synthesised chunk by chunk"))[:, 0]
            else:  # Griffin-Lim is not local in time: crossfaded chunks of the whole Mel (engine/chunking.py)
                mel.decode_all()
                whole = torch.from_numpy(mel.kept[0])[None]
                wave = run_crossfaded(lambda m, s=seeds[k]: griffin_lim(m, self.mel_config, seed=s), whole,
                                      VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL, hop, pool.map)[0, :n_samples]
                if wave.shape[0] < n_samples:
                    wave = torch.nn.functional.pad(wave, (0, n_samples - wave.shape[0]))
                wave = wave.numpy().astype(np.float32, copy=False)
            report("decode", (k + 1) / len(lat), "Mel decoded")
            report("vocode", (k + 1) / len(lat), "audio synthesised")
            timings["decode"] += mel.seconds
            timings["vocode"] += time.perf_counter() - t0 - mel.seconds
            takes.append((wave, None if mel.kept is None else mel.kept[0], latents))
        info = {"n_windows": n_windows, "n_windows_denoised": len(windows), "threads": pool.threads, "window_batch": self.window_batch,
                "n_latent_frames": n_latent, "vocoder": "network" if use_net else "griffin-lim",
                "picture": pic_tokens is not None, "controls": ctrl is not None}
        outs = [PipelineOutput(w, m, timings, info, z) for w, m, z in takes]
        outs[0].takes = outs
        return outs[0]


def vocode_streamed(vocode: Callable[[torch.Tensor], torch.Tensor], mel: DecodedMel, n_samples: int, hop: int,
                    pool: StagePool, report: Callable[[float], None], out=None):
    """A network vocoder (`(B, n_mels, l)` -> `(B, l * hop)`) over `mel` in `run_chunked`'s chunks, a few at a time on
    `pool` (twice its workers, so both stay busy between groups), each cropped chunk written into `out`, the waves as
    `(n_samples, B)` rows (zero past the vocoder's last sample), which is returned: by default a float32 array, or a
    sample source such as a working file (engine/audio/spill.py). No whole-cue Mel or list of chunks is held."""
    out = np.zeros((n_samples, mel.z.shape[0]), np.float32) if out is None else out
    spans = chunk_spans(mel.n_mel, VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL)
    group = max(1, 2 * pool.threads)
    for g in range(0, len(spans), group):
        part = spans[g:g + group]
        inputs = [mel.read(s.lo, s.hi) for s in part]
        if g + group < len(spans):
            mel.drop_before(spans[g + group].lo)
        for s, y in zip(part, pool.map(vocode, inputs), strict=True):
            piece = y if len(spans) == 1 else y[:, (s.a - s.lo) * hop:(s.b - s.lo) * hop]
            start = s.a * hop
            n = min(piece.shape[-1], n_samples - start)
            if n > 0:
                out[start:start + n] = piece[:, :n].numpy().T
        del inputs
        release()
        report(min(1.0, (g + len(part)) / len(spans)))
    return out


class DecodedMel:
    """The log-Mels `(B, n_mels, n_mel)` of latents `(B, C, L)` (a v1 take, or a v2 cue's stems), decoded in
    `run_chunked`'s chunks as reads reach them (a read decodes every chunk it needs that is not decoded yet, together
    on the pool) and dropped by `drop_before` once the reader has passed them. `keep`: also copy every decoded frame
    into `kept` `(B, n_mels, n_mel)`, the whole Mel (PipelineOutput.log_mel, Griffin-Lim)."""

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, n_mel: int,
                 map_fn: Callable, keep: bool):
        self.decode, self.z, self.n_mel, self.map_fn = decode, z, n_mel, map_fn
        self.spans = chunk_spans(z.shape[-1], DECODE_CHUNK_LATENT, DECODE_MARGIN_LATENT)
        self.pieces: dict[int, tuple[int, torch.Tensor]] = {}  # span -> (first Mel frame, its Mel frames)
        self.next = 0  # first span not decoded yet
        self.keep = keep
        self.kept: np.ndarray | None = None
        self.seconds = 0.0  # time spent decoding

    def _one(self, j: int) -> torch.Tensor:
        if len(self.spans) == 1:  # a short cue: decoded whole, as run_chunked does
            return self.decode(self.z)
        s, d = self.spans[j], LATENT_DOWNSAMPLE
        return self.decode(self.z[..., s.lo:s.hi])[..., (s.a - s.lo) * d:(s.b - s.lo) * d]

    def _decode_to(self, frame: int) -> None:
        """Decode every chunk that starts before Mel frame `frame`."""
        todo = []
        while self.next < len(self.spans) and self.spans[self.next].a * LATENT_DOWNSAMPLE < frame:
            todo.append(self.next)
            self.next += 1
        if not todo:
            return
        t0 = time.perf_counter()
        for j, y in zip(todo, self.map_fn(self._one, todo), strict=True):
            first = self.spans[j].a * LATENT_DOWNSAMPLE
            self.pieces[j] = (first, y)
            if self.keep:
                if self.kept is None:
                    self.kept = np.empty((y.shape[0], y.shape[1], self.n_mel), y.numpy().dtype)
                n = max(0, min(y.shape[-1], self.n_mel - first))
                self.kept[..., first:first + n] = y[..., :n].numpy()
        self.seconds += time.perf_counter() - t0

    def read(self, lo: int, hi: int) -> torch.Tensor:
        """Mel frames [lo, hi) (hi <= n_mel): a view of one decoded chunk, or the chunks it spans joined."""
        self._decode_to(hi)
        parts = []
        for first, y in (self.pieces[j] for j in sorted(self.pieces)):
            a, b = max(lo, first), min(hi, first + y.shape[-1])
            if a < b:
                parts.append(y[..., a - first:b - first])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def drop_before(self, frame: int) -> None:
        """Forget the decoded chunks that end at or before Mel frame `frame`."""
        for j in [j for j, (first, y) in self.pieces.items() if first + y.shape[-1] <= frame]:
            del self.pieces[j]

    def decode_all(self) -> None:
        """Decode the whole Mel into `kept` (needs `keep`), a few chunks at a time."""
        step = 4 * DECODE_CHUNK_LATENT * LATENT_DOWNSAMPLE
        for f in range(step, self.n_mel + step, step):
            self._decode_to(min(f, self.n_mel))
            self.drop_before(min(f, self.n_mel))
