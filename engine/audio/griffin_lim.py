"""Griffin-Lim Mel inversion: the weight-free fallback vocoder (Griffin & Lim 1984).

log-Mel -> linear magnitude by non-negative least squares through the filterbank pseudo-inverse, then iterative
phase recovery. MEASURED.md: 0.26 s per second of audio for 64 iterations on one core, audibly phasy; the trained
network vocoder is 25x faster.
"""

from __future__ import annotations

import torch

from .mel import MelConfig, mel_filterbank


def mel_to_magnitude(log_mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """`(B, n_mels, T)` log-Mel -> `(B, n_fft // 2 + 1, T)` non-negative linear magnitude."""
    basis = torch.from_numpy(mel_filterbank(cfg)).to(log_mel)
    mel = torch.exp(log_mel)
    mag = torch.linalg.pinv(basis) @ mel
    return mag.clamp(min=0.0)


def griffin_lim(log_mel: torch.Tensor, cfg: MelConfig, n_iter: int = 32, seed: int = 0) -> torch.Tensor:
    """`(B, n_mels, T)` log-Mel -> waveform `(B, T * hop)`, aligned with the front-end's frame grid.

    The front-end's frame t is centred on sample t * hop + hop / 2 (AudioLDM padding); torch's centred STFT puts
    it on t * hop, so the result is shifted by hop / 2 samples.
    """
    mag = mel_to_magnitude(log_mel, cfg)
    window = torch.hann_window(cfg.win_length, device=mag.device)
    length = (mag.shape[-1] - 1) * cfg.hop_length
    gen = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=gen)).to(mag.device)
    spec = mag * angles
    for _ in range(n_iter):
        wave = torch.istft(spec, cfg.n_fft, cfg.hop_length, cfg.win_length, window, length=length)
        rebuilt = torch.stft(wave, cfg.n_fft, cfg.hop_length, cfg.win_length, window, return_complex=True)
        spec = mag * torch.exp(1j * torch.angle(rebuilt))
    wave = torch.istft(spec, cfg.n_fft, cfg.hop_length, cfg.win_length, window, length=length)
    shift = cfg.hop_length // 2
    out = torch.nn.functional.pad(wave, (shift, mag.shape[-1] * cfg.hop_length - length - shift))
    return out
