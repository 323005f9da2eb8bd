"""Parity of exported graphs against PyTorch, on real inputs: the tensors each model stage actually receives in a
pipeline run (latents at real timesteps and guidance passes, film tokens, ControlNet controls from a MIDI melody,
the decoded Mel the vocoder hears, the waveform it makes), plus the whole pipeline's audio through each runtime.

Thresholds (issue #7): max abs error <= 1e-3 per fp32 graph; whole-pipeline audio SNR >= 40 dB. Reduced
precisions (int8, fp16) are measured the same way and reported as their quality cost, not failed.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from filmscore.engine.backends import Backend
from filmscore.engine.backends import cache as ec
from filmscore.engine.bundle import Bundle
from filmscore.engine.controls.types import Controls
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.pipeline import FilmScorePipeline, PipelineOutput

logger = logging.getLogger(__name__)

MAX_ABS_ERR_FP32 = 1e-3
MIN_PIPELINE_SNR_DB = 40.0
PARITY_RUN = {"duration_s": 12.0, "steps": 4, "scheduler": "dpmpp", "seed": 1234, "picture_guidance": 2.0,
              "control_guidance": 3.0}
"""The pipeline run whose inputs the graphs are checked on: 12 s spans two overlapping windows, four DPM-Solver++
steps visit early and late timesteps, both guidance scales on so every pass kind (u, p, pc) runs."""


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - test|^2); inf when identical."""
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    noise = float(np.sum((ref - test) ** 2))
    return math.inf if noise == 0 else 10.0 * math.log10(float(np.sum(ref ** 2)) / noise)


def melody_controls(n_frames: int) -> Controls:
    """Controls from a real MIDI file (written here with mido): a two-bar C-major theme with a crescendo."""
    import mido

    from filmscore.engine.controls.midi import controls_from_midi

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000))
    for i, pitch in enumerate([60, 64, 67, 72, 71, 67, 65, 62] * 3):
        tr.append(mido.Message("note_on", note=pitch, velocity=40 + 3 * i, time=0))
        tr.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    buf = io.BytesIO()
    mid.save(file=buf)
    return controls_from_midi(buf.getvalue(), n_frames=n_frames)


def picture_features(feature_dim: int, layout: str, duration_s: float) -> FilmFeatures:
    """Picture features with the structure of real ones: smooth per-dimension trajectories, a cut at the middle
    (the semantic block changes), at 10 frames/s. Encoding a real video here would make parity depend on the
    film encoder's weights; the film backbone's own parity is checked on decoded video frames."""
    n = math.ceil(duration_s * 10)
    rng = np.random.default_rng(7)
    t = np.arange(n)[:, None] / 10.0
    freq = rng.uniform(0.05, 0.5, (1, feature_dim))
    phase = rng.uniform(0, 2 * np.pi, (1, feature_dim))
    sem = np.sin(2 * np.pi * freq * t + phase).astype(np.float32)
    sem[n // 2:] = np.roll(sem[n // 2:], 7, axis=1)
    empty = np.zeros((n, 0), np.float32)
    return FilmFeatures(sem, empty, empty, np.zeros(int(duration_s * 100), np.float32), (duration_s / 2,),
                        duration_s, layout)


@dataclass
class Captured:
    """Inputs recorded per stage (a few calls each, cloned) and the torch pipeline's output."""

    denoise_plain: list[dict[str, torch.Tensor]] = field(default_factory=list)
    denoise_control: list[dict[str, torch.Tensor]] = field(default_factory=list)
    vae_decoder: list[dict[str, torch.Tensor]] = field(default_factory=list)
    vocoder: list[dict[str, torch.Tensor]] = field(default_factory=list)
    film_head: list[dict[str, torch.Tensor]] = field(default_factory=list)
    mel: list[dict[str, torch.Tensor]] = field(default_factory=list)
    output: PipelineOutput | None = None


def make_pipeline(bundle: Bundle) -> FilmScorePipeline:
    m = bundle.models
    return FilmScorePipeline(m["vae"], m["unet"], m.get("controlnet"), m.get("film_head"), m.get("vocoder"),
                             bundle.mel_config, bundle.noise_schedule)


def run_parity_pipeline(bundle: Bundle, backend: Backend | None, run: dict[str, Any] = PARITY_RUN) -> PipelineOutput:
    """The parity run on `backend` (None: torch)."""
    pipe = make_pipeline(bundle)
    if backend is not None:
        backend.attach(pipe)
    return run_pipeline(pipe, bundle, run)


def run_pipeline(pipe: FilmScorePipeline, bundle: Bundle, run: dict[str, Any]) -> PipelineOutput:
    """One render of `run` (PARITY_RUN's keys) through `pipe`, with the fixed picture and melody inputs every parity
    and speed check feeds, so runs on different backends see the same inputs."""
    n_samples = int(run["duration_s"] * bundle.mel_config.sample_rate)
    film = None
    if pipe.film_head is not None:
        hc = pipe.film_head.config
        film = picture_features(hc.feature_dim, hc.feature_layout, run["duration_s"])
    controls = melody_controls(math.ceil(n_samples / bundle.mel_config.hop_length)) \
        if pipe.controlnet is not None else None
    return pipe(n_samples=n_samples, film=film, controls=controls, seed=run["seed"], steps=run["steps"],
                scheduler=run["scheduler"], picture_guidance=run["picture_guidance"],
                control_guidance=run["control_guidance"], vocoder="auto", keep_mel=True)


def capture_inputs(bundle: Bundle, run: dict[str, Any] = PARITY_RUN, keep: int = 3) -> Captured:
    """Run the torch pipeline once, recording the first and last `keep` calls of every stage."""
    cap = Captured()
    pipe = make_pipeline(bundle)

    def record(store: list, feeds: dict[str, torch.Tensor]) -> None:
        store.append({k: v.detach().clone() for k, v in feeds.items()})
        if len(store) > 2 * keep:
            del store[keep]  # keep the first `keep` and the latest `keep` (early and late timesteps)

    den, dec, voc, head = pipe.denoiser, pipe.decode, pipe.vocode, pipe.film_tokens

    def denoiser(sample, timestep, tokens, controls, scale):
        if controls is None:
            record(cap.denoise_plain, {"sample": sample, "timestep": timestep, "tokens": tokens})
        else:
            record(cap.denoise_control, {"sample": sample, "timestep": timestep, "tokens": tokens,
                                         "controls": controls, "control_scale": torch.tensor([float(scale)])})
        return den(sample, timestep, tokens, controls, scale)

    def decode(z):
        record(cap.vae_decoder, {"latent": z})
        return dec(z)

    pipe.denoiser, pipe.decode = denoiser, decode
    if voc is not None:
        def vocode(m):
            record(cap.vocoder, {"log_mel": m})
            return voc(m)

        pipe.vocode = vocode
    if head is not None:
        def film_tokens(f):
            record(cap.film_head, {"frames": f})
            return head(f)

        pipe.film_tokens = film_tokens
    cap.output = run_pipeline(pipe, bundle, run)
    hop = bundle.mel_config.hop_length
    wave = torch.from_numpy(cap.output.wave)
    cap.mel.append({"wave": wave[: wave.shape[0] // hop * hop][None]})
    return cap


def compare(torch_fn: Callable[..., torch.Tensor], graph_fn: Callable[..., torch.Tensor],
            inputs: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Max abs error, max |ref|, and the worst relative error (max abs err / max |ref|) over `inputs`."""
    err, scale = 0.0, 0.0
    for feeds in inputs:
        with torch.no_grad():
            ref = torch_fn(**feeds).float()
        out = graph_fn(**feeds).float()
        if out.shape != ref.shape:
            return {"n_inputs": len(inputs), "error": f"shape {tuple(out.shape)} != torch {tuple(ref.shape)}"}
        err = max(err, float((out - ref).abs().max()))
        scale = max(scale, float(ref.abs().max()))
    return {"n_inputs": len(inputs), "shapes": [{k: list(v.shape) for k, v in f.items()} for f in inputs[:1]],
            "max_abs_err": err, "max_abs_ref": scale, "rel_err": err / scale if scale else 0.0}


def torch_callables(bundle: Bundle) -> dict[str, Callable[..., torch.Tensor]]:
    """The torch reference of every graph, keyed by component, taking the graphs' input names."""
    from filmscore.engine.audio.mel import MelSpectrogram

    from . import wrappers

    m = bundle.models
    out: dict[str, Callable[..., torch.Tensor]] = {
        ec.DENOISE_PLAIN: lambda sample, timestep, tokens: m["unet"](sample, timestep, tokens),
        ec.VAE_DECODER: lambda latent: m["vae"].decode(latent),
        ec.MEL: MelSpectrogram(bundle.mel_config, conv_stft=True).eval(),
    }
    if m.get("controlnet") is not None:
        out[ec.DENOISE_CONTROL] = wrappers.ControlledDenoiser(m["unet"], m["controlnet"]).eval()
    if m.get("vocoder") is not None:
        out[ec.VOCODER] = lambda log_mel: m["vocoder"](log_mel)
    if m.get("film_head") is not None:
        out[ec.FILM_HEAD] = lambda frames: m["film_head"](frames)
    return out
