"""Stage 2: the Vocos vocoder on ground-truth Mels. Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel
WaveGAN) + log-Mel L1 (HiFi-GAN); no discriminator: measured here it cut training speed 7x (MEASURED.md)."""

from __future__ import annotations

import logging

import numpy as np
import soundfile as sf
import torch

from ..audio.mel import MelSpectrogram
from ..models import VocosVocoder
from .corpus_data import Corpus, mel_batch
from .loop import EMA, Budget, Run, restore, run_steps

logger = logging.getLogger(__name__)

CROP = 100  # Mel frames: 1 s
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def multi_resolution_stft_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions. `(B, n)` each."""
    total = y.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        w = torch.hann_window(n_fft, device=y.device)
        sy = torch.stft(y, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-7)
        sx = torch.stft(x, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-7)
        sc = torch.linalg.norm(sx - sy) / torch.linalg.norm(sx).clamp(min=1e-7)
        total = total + sc + (sx.log() - sy.log()).abs().mean()
    return total / len(STFT_RESOLUTIONS)


def wave_batch(crops, crop: int, hop: int) -> torch.Tensor:
    out = np.zeros((len(crops), crop * hop), np.float32)
    for i, (c, s) in enumerate(crops):
        w, _ = sf.read(str(c.audio_path), start=s * hop, stop=(s + crop) * hop, dtype="float32", always_2d=True)
        out[i, :w.shape[0]] = w.mean(axis=1)
    return torch.from_numpy(out)


def train_vocoder(corpus: Corpus, minutes: float, *, batch: int = 16, lr: float = 5e-4, max_steps: int | None = None,
                  run: Run | None = None, progress=None, seed: int = 0, init: VocosVocoder | None = None,
                  device: torch.device | str = "cpu", cooldown: bool = False) -> Run:
    """Train (or continue, from `run`'s checkpoint) on `device` for `minutes` or up to `max_steps` total steps;
    `cooldown`: decay the learning rate over this call (`loop.Budget`)."""
    run = run or Run("vocoder")
    device = torch.device(device)
    m = corpus.mel
    voc = init if init is not None else VocosVocoder(
        n_mels=m.n_mels, hop_length=m.hop_length, mag_prior=True, mel_n_fft=m.n_fft, sample_rate=m.sample_rate,
        f_min=m.f_min, f_max=m.f_max, bin_phase_advance=True)
    voc = voc.to(device)
    opt = torch.optim.AdamW(voc.parameters(), lr=lr, betas=(0.8, 0.9))
    ema = {"vocoder": EMA(voc, 0.999)}
    state = run.load()
    if state is not None:
        voc = VocosVocoder.from_config(state["configs"]["vocoder"]).to(device)
        opt = torch.optim.AdamW(voc.parameters(), lr=lr, betas=(0.8, 0.9))
        ema = {"vocoder": EMA(voc, 0.999)}
        restore(state, {"vocoder": voc}, opt, ema)
        logger.info("vocoder: resumed at step %d", run.step)
    front = MelSpectrogram(corpus.mel).to(device)
    hop = corpus.mel.hop_length
    rng = np.random.default_rng(seed + run.step)

    def loss_fn():
        crops = corpus.sample_crops(rng, batch, CROP)
        mel, wave = mel_batch(crops, CROP).to(device), wave_batch(crops, CROP, hop).to(device)
        y = voc(mel)
        mel_l1 = (front(y) - mel).abs().mean()
        stft = multi_resolution_stft_loss(y, wave)
        return mel_l1 + stft, {"mel_l1": mel_l1, "mrstft": stft}

    return run_steps(run, Budget(minutes, max_steps, cooldown=cooldown), corpus, {"vocoder": voc}, opt, ema,
                     loss_fn, progress, lr_at=lambda step: lr)
