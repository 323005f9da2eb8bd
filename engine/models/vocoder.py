"""`VocosVocoder`: log-Mel `(B, n_mels, T)` -> waveform `(B, T * hop)` at 16 kHz (Siuzdak 2023, "Vocos").

A ConvNeXt-1D backbone predicts, per Mel frame, the log-magnitude and phase of an STFT frame; an inverse STFT
turns them into audio. The inverse DFT is a matmul with a fixed basis and the overlap-add a transposed conv, so the
whole vocoder exports to ONNX (no ISTFT operator exists there). Frames are centred where the Mel front-end centres
them (sample t * hop + hop / 2), so the output lines up with the input Mel sample for sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .vae import MEL_MEAN, MEL_STD


class ConvNeXtBlock1D(nn.Module):
    """Depthwise conv (k=7), LayerNorm, pointwise MLP x4, layer scale; residual. `(B, C, L) -> (B, C, L)`."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class VocosVocoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, n_mels: int = 128, dim: int = 256, n_blocks: int = 6, n_fft: int = 640, hop_length: int = 160):
        super().__init__()
        self.embed = nn.Conv1d(n_mels, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock1D(dim, 1.0 / n_blocks) for _ in range(n_blocks)])
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        n_bins = n_fft // 2 + 1
        self.head = nn.Linear(dim, 2 * n_bins)
        # Inverse real DFT as a matmul: frame[n] = sum_k c_k (Re_k cos(2 pi k n / N) - Im_k sin(2 pi k n / N)) / N,
        # c_k = 1 for DC and Nyquist, 2 otherwise.
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64)
        ang = 2 * math.pi * k[:, None] * n[None, :] / n_fft
        c = torch.full((n_bins, 1), 2.0, dtype=torch.float64)
        c[0] = 1.0
        c[-1] = 1.0
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("irfft_cos", (c * torch.cos(ang) / n_fft * window).float(), persistent=False)
        self.register_buffer("irfft_sin", (-c * torch.sin(ang) / n_fft * window).float(), persistent=False)
        self.register_buffer("ola_kernel", torch.eye(n_fft)[:, None, :], persistent=False)
        self.register_buffer("window_sq", (window ** 2).float()[None, None, :].expand(1, 1, n_fft).contiguous()
                             .reshape(1, n_fft, 1), persistent=False)

    def spectrum(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, n_mels, T)` -> real, imaginary STFT frames `(B, n_fft/2+1, T)`."""
        x = self.embed((log_mel - MEL_MEAN) / MEL_STD)
        x = self.norm_in(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        h = self.head(self.norm_out(x.transpose(1, 2))).transpose(1, 2)
        log_mag, phase = h.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=7.0))
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        re, im = self.spectrum(log_mel)
        n_fft, hop = self.config.n_fft, self.config.hop_length
        n_frames = log_mel.shape[-1]
        frames = torch.einsum("bkt,kn->bnt", re, self.irfft_cos) + torch.einsum("bkt,kn->bnt", im, self.irfft_sin)
        wave = F.conv_transpose1d(frames, self.ola_kernel, stride=hop)  # (B, 1, (T-1)*hop + n_fft)
        env = F.conv_transpose1d(self.window_sq.expand(1, n_fft, n_frames), self.ola_kernel, stride=hop)
        wave = wave / env.clamp(min=1e-8)
        start = n_fft // 2 - hop // 2  # frame t starts at t*hop + hop/2 - n_fft/2
        return wave[:, 0, start:start + n_frames * hop]
