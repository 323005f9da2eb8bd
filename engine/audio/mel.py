"""Log-Mel front-end, computed as AudioLDM / MusicLDM do (their `TacotronSTFT`), in torch.

Waveform `(B, n_samples)` at 16 kHz -> log-Mel `(B, n_mels, n_frames)` with n_frames = n_samples // hop:
reflect-pad (n_fft - hop) / 2 on both sides, STFT without centring, magnitude (not power), Slaney-normalised
Mel filterbank (librosa's), natural log of max(mel, 1e-5). Runs batched on any device. The STFT is torch.stft
(FFT; matches librosa within 2e-4 in log-Mel); `conv_stft=True` computes it as a strided conv with a fixed windowed
DFT basis instead, for runtimes without an STFT operator (ONNX export): float32 accumulation over 1024 taps leaves
up to ~2e-3 log-Mel error in near-silent bins, none where there is signal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..constants import MEL_HOP, MODEL_SAMPLE_RATE

LOG_CLAMP = 1e-5  # AudioLDM's dynamic-range compression floor: log(1e-5) = -11.51


@dataclass(frozen=True)
class MelConfig:
    """Mel settings; a bundle carries its own. Default: 128 bands (64 cannot resolve pitch below ~1 kHz)."""

    sample_rate: int = MODEL_SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = MEL_HOP
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelConfig:
        return cls(**d)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length


# Slaney's Mel scale (Auditory Toolbox; librosa's htk=False): linear below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_LOG_HZ = 1000.0
_SLANEY_LOG_MEL = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    log_part = _SLANEY_LOG_MEL + np.log(np.maximum(hz, _SLANEY_LOG_HZ) / _SLANEY_LOG_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_LOG_HZ, log_part, hz / _SLANEY_HZ_PER_MEL)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_part = _SLANEY_LOG_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_LOG_MEL))
    return np.where(mel >= _SLANEY_LOG_MEL, log_part, _SLANEY_HZ_PER_MEL * mel)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """`(n_mels, n_fft // 2 + 1)` Slaney-style filterbank: librosa.filters.mel(htk=False, norm="slaney") computed the
    same way in numpy (bit-equal, tested), so rendering does not need librosa and its numba stack."""
    fft_hz = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.f_min), _hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    weights = np.zeros((cfg.n_mels, fft_hz.size), np.float32)  # float32 rows, as librosa fills them
    for i in range(cfg.n_mels):
        weights[i] = np.maximum(0.0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney norm: each triangle has unit area
    return weights


class MelSpectrogram(nn.Module):
    """`forward(wave (B, n_samples)) -> log-Mel (B, n_mels, n_samples // hop)`."""

    def __init__(self, cfg: MelConfig = MelConfig(), conv_stft: bool = False):
        super().__init__()
        self.cfg = cfg
        self.conv_stft = conv_stft
        n_bins = cfg.n_fft // 2 + 1
        window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
        if cfg.win_length < cfg.n_fft:  # centre the window in the FFT frame, as torch.stft does
            left = (cfg.n_fft - cfg.win_length) // 2
            window = nn.functional.pad(window, (left, cfg.n_fft - cfg.win_length - left))
        n = torch.arange(cfg.n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64)
        angle = 2 * torch.pi * k[:, None] * n[None, :] / cfg.n_fft
        # Real and imaginary DFT rows, windowed: one conv computes the windowed STFT.
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)], 0) * window[None, :]
        self.register_buffer("stft_basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(cfg)), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        self.pad = (cfg.n_fft - cfg.hop_length) // 2

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """`(B, n_samples)` -> linear STFT magnitude `(B, n_fft // 2 + 1, n_frames)`."""
        x = nn.functional.pad(wave[:, None, :], (self.pad, self.pad), mode="reflect")
        n_frames = wave.shape[-1] // self.cfg.hop_length
        if not self.conv_stft:
            spec = torch.stft(x[:, 0], self.cfg.n_fft, self.cfg.hop_length, self.cfg.win_length, self.window,
                              center=False, return_complex=True)
            return spec.abs()[..., :n_frames]
        spec = nn.functional.conv1d(x, self.stft_basis, stride=self.cfg.hop_length)
        n_bins = self.cfg.n_fft // 2 + 1
        re, im = spec[:, :n_bins], spec[:, n_bins:]
        mag = torch.sqrt(re * re + im * im + 1e-12)
        return mag[..., :n_frames]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel_basis, self.magnitude(wave))
        return torch.log(torch.clamp(mel, min=LOG_CLAMP))


_CACHE: dict[MelConfig, MelSpectrogram] = {}


def log_mel(wave: np.ndarray | torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Convenience: `(n,)` or `(B, n)` waveform -> `(n_mels, T)` or `(B, n_mels, T)` log-Mel (cached module)."""
    mod = _CACHE.get(cfg)
    if mod is None:
        mod = _CACHE[cfg] = MelSpectrogram(cfg)
    x = torch.as_tensor(wave, dtype=torch.float32)
    single = x.ndim == 1
    with torch.no_grad():
        out = mod(x[None] if single else x)
    return out[0] if single else out
