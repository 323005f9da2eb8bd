"""`VocosVocoder`: log-Mel `(B, n_mels, T)` -> waveform `(B, T * hop)` at 16 kHz (Siuzdak 2023, "Vocos").

A ConvNeXt-1D backbone predicts, per Mel frame, the log-magnitude and phase of an STFT frame; an inverse STFT
turns them into audio. With `mag_prior` the magnitude is predicted as a residual over the Mel filterbank's
pseudo-inverse (what Griffin-Lim starts from), so a fresh network already has the right spectral envelope; with
`bin_phase_advance` the phase is predicted as a deviation from each bin-centre sinusoid's own advance
(`bin_phase`). Measured here, the two are what let a CPU-trained vocoder pass Griffin-Lim (docs/training.md).
The inverse DFT is an FFT (`torch.fft.irfft`) and the overlap-add a sum of shifted frame pieces; for ONNX, where
no ISTFT operator exists and ONNX Runtime's DFT does lengths that are not powers of two as a naive DFT, the export
writes the inverse DFT as a matmul with a fixed basis (`dft_basis`, export/wrappers.py): the same frames to float
rounding. (The matmul costs as much arithmetic as two of the backbone's blocks: 21 % of a v2 vocoder call in
PyTorch, 0.09 s against the FFT's 0.008 s for a 3-stem 1152-frame chunk, measured.) Frames are centred where the Mel
front-end centres them (sample t * hop + hop / 2), so the output lines up with the input Mel sample for sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..audio.mel import MelConfig, mel_filterbank
from .vae import MEL_MEAN, MEL_STD


def magnitude_prior(n_fft: int, mel: MelConfig) -> torch.Tensor:
    """`(n_fft/2+1, n_mels)`: Mel magnitudes -> linear magnitudes of an `n_fft`-point Hann STFT.

    The filterbank pseudo-inverse gives magnitudes on the Mel front-end's bins; they are interpolated onto this
    STFT's bins and scaled by the window lengths (a sinusoid's peak is amplitude * N / 4 for a Hann window of N).
    """
    pinv = torch.linalg.pinv(torch.from_numpy(mel_filterbank(mel)).double())  # (mel_bins, n_mels)
    src = torch.linspace(0.0, mel.sample_rate / 2, pinv.shape[0], dtype=torch.float64)
    dst = torch.linspace(0.0, mel.sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    idx = torch.searchsorted(src, dst).clamp(1, len(src) - 1)
    frac = (dst - src[idx - 1]) / (src[idx] - src[idx - 1])
    interp = torch.zeros(len(dst), len(src), dtype=torch.float64)
    interp[torch.arange(len(dst)), idx - 1] = 1 - frac
    interp[torch.arange(len(dst)), idx] += frac
    return (interp @ pinv * (n_fft / mel.win_length)).float()


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
    def __init__(self, n_mels: int = 128, dim: int = 256, n_blocks: int = 6, n_fft: int = 640, hop_length: int = 160,
                 mag_prior: bool = False, mel_n_fft: int = 1024, sample_rate: int = 16_000, f_min: float = 0.0,
                 f_max: float = 8000.0, bin_phase_advance: bool = False):
        super().__init__()
        self.embed = nn.Conv1d(n_mels, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock1D(dim, 1.0 / n_blocks) for _ in range(n_blocks)])
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        n_bins = n_fft // 2 + 1
        self.head = nn.Linear(dim, 2 * n_bins)
        if mag_prior:
            mel = MelConfig(sample_rate=sample_rate, n_fft=mel_n_fft, win_length=mel_n_fft, hop_length=hop_length,
                            n_mels=n_mels, f_min=f_min, f_max=f_max)
            self.register_buffer("prior", magnitude_prior(n_fft, mel), persistent=False)
            with torch.no_grad():  # start exactly at the prior: the residual log-magnitude head begins at zero
                self.head.weight[:n_bins].zero_()
                self.head.bias[:n_bins].zero_()
        else:
            self.prior = None
        if n_fft % hop_length:
            raise ValueError(f"VocosVocoder: n_fft {n_fft} must be a multiple of hop_length {hop_length} (the "
                             "overlap-add sums n_fft / hop_length shifted pieces of a frame)")
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.float()[None, :, None], persistent=False)
        # the overlap-added squared window, the divisor that makes the windowed overlap-add an inverse STFT
        self.register_buffer("window_sq", (window ** 2).float()[None, :, None], persistent=False)

    def spectrum(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, n_mels, T)` -> real, imaginary STFT frames `(B, n_fft/2+1, T)`."""
        x = self.embed((log_mel - MEL_MEAN) / MEL_STD)
        x = self.norm_in(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        h = self.head(self.norm_out(x.transpose(1, 2))).transpose(1, 2)
        log_mag, phase = h.chunk(2, dim=1)
        if self.prior is not None:
            log_mag = log_mag + torch.log(torch.matmul(self.prior, torch.exp(log_mel)).clamp(min=1e-5))
        mag = torch.exp(log_mag.clamp(max=7.0))
        if self.config.bin_phase_advance:
            phase = phase + self.bin_phase(log_mel.shape[-1]).to(phase)
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def bin_phase(self, n_frames: int) -> torch.Tensor:
        """`(n_bins, n_frames)`: the phase a sinusoid at each bin's centre frequency has reached at each frame.

        Added to the predicted phase, it lets a constant prediction make a steady tone coherent from frame to frame;
        the network then learns only the deviation. It repeats every `n_fft / gcd(n_fft, hop)` frames (4 here), so
        chunked vocoding must start chunks on multiples of that period (the pipeline's chunk and margin are).
        """
        n_fft, hop = self.config.n_fft, self.config.hop_length
        period = n_fft // math.gcd(n_fft, hop)
        t = torch.arange(n_frames, device=self.window.device) % period
        k = torch.arange(n_fft // 2 + 1, device=t.device)
        return ((k[:, None] * hop * t[None, :]) % n_fft).float() * (2 * math.pi / n_fft)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        re, im = self.spectrum(log_mel)
        frames = torch.fft.irfft(torch.complex(re, im).transpose(1, 2), n=self.config.n_fft).transpose(1, 2)
        return self.synthesize(frames)

    def synthesize(self, frames: torch.Tensor) -> torch.Tensor:
        """Unwindowed inverse-DFT frames `(B, n_fft, T)` -> waveform `(B, T * hop)`: windowed, overlap-added,
        divided by the overlap-added squared window, cropped to the Mel's own samples."""
        n_fft, hop = self.config.n_fft, self.config.hop_length
        n_frames = frames.shape[-1]
        wave = overlap_add(frames * self.window, hop)  # (B, (T-1)*hop + n_fft)
        env = overlap_add(self.window_sq.expand(1, n_fft, n_frames), hop)
        wave = wave / env.clamp(min=1e-8)
        start = n_fft // 2 - hop // 2  # frame t starts at t*hop + hop/2 - n_fft/2
        return wave[:, start:start + n_frames * hop]


def dft_basis(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(n_fft/2+1, n_fft)` cosine and sine bases of the inverse real DFT as a matmul, `torch.fft.irfft`'s result:
    frame[n] = sum_k c_k (Re_k cos(2 pi k n / N) - Im_k sin(2 pi k n / N)) / N, c_k = 1 for DC and Nyquist, else 2
    (the ONNX export's form: module docstring)."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    ang = 2 * math.pi * k[:, None] * n[None, :] / n_fft
    c = torch.full((len(k), 1), 2.0, dtype=torch.float64)
    c[0] = 1.0
    c[-1] = 1.0
    return (c * torch.cos(ang) / n_fft).float(), (-c * torch.sin(ang) / n_fft).float()


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """`(B, n_fft, T)` frames, frame t starting at sample t * hop -> their sum `(B, (T - 1) * hop + n_fft)`.

    With n_fft = r * hop, each frame is r hop-long pieces and piece j of frame t lands on output block t + j: r
    shifted adds. (A transposed convolution with an identity kernel computes the same as a dense n_fft x n_fft
    matmul per frame, as much arithmetic as the backbone's blocks.)"""
    b, n_fft, t = frames.shape
    r = n_fft // hop
    pieces = frames.reshape(b, r, hop, t)
    blocks = F.pad(pieces[:, 0], (0, r - 1))
    for j in range(1, r):
        blocks = blocks + F.pad(pieces[:, j], (j, r - 1 - j))
    return blocks.transpose(1, 2).reshape(b, (t + r - 1) * hop)
