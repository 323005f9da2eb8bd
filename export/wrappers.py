"""The graphs a bundle exports, as small `nn.Module`s with tensor-only inputs and one output each.

One denoising pass is one graph: `ControlledDenoiser` fuses the ControlNet and the UNet (diffusers'
`scripts/convert_stable_diffusion_controlnet_to_onnx.py` does the same), so a runtime makes one session call per
guided pass; `PlainDenoiser` is the UNet alone, for the passes without controls. Shapes (B = batch of windows and
guidance passes, L = latent frames, a multiple of the UNet's downsampling factor, K tokens of width D):

| graph | inputs | output |
|---|---|---|
| denoise_control | sample (B, C, L), timestep (B,), tokens (B, K, D), controls (B, 14, 4L), control_scale (1,) | v (B, C, L) |
| denoise_plain | sample (B, C, L), timestep (B,), tokens (B, K, D) | v (B, C, L) |
| vae_decoder | latent (B, C, L) unscaled | log_mel (B, n_mels, 4L) |
| vocoder | log_mel (B, n_mels, T) | wave (B, T * hop) |
| film_head | frames (B, N, F) | tokens (B, K, D) |
| mel | wave (B, hop * T) | log_mel (B, n_mels, T) |
"""

from __future__ import annotations

import torch
from torch import nn

from filmscore.engine.models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, MelVAE, VocosVocoder
from filmscore.engine.models.vocoder import dft_basis


class ControlledDenoiser(nn.Module):
    """ControlNet residuals into the UNet, in one graph."""

    def __init__(self, unet: FilmScoreUNet1D, controlnet: FilmScoreControlNet1D):
        super().__init__()
        self.unet, self.controlnet = unet, controlnet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor, controls: torch.Tensor,
                control_scale: torch.Tensor) -> torch.Tensor:
        down, mid = self.controlnet(sample, timestep, tokens, controls, control_scale)
        return self.unet(sample, timestep, tokens, down, mid)


class PlainDenoiser(nn.Module):
    def __init__(self, unet: FilmScoreUNet1D):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, tokens)


class VaeDecoder(nn.Module):
    def __init__(self, vae: MelVAE):
        super().__init__()
        self.vae = vae

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent)


class Vocoder(nn.Module):
    """`VocosVocoder` with its inverse DFT written as a matmul with a fixed basis (engine/models/vocoder.py
    `dft_basis`): ONNX Runtime's DFT operator does lengths that are not powers of two as a naive DFT (the 640- and
    960-point frames here: 1.6x slower than the matmul, measured). The same frames as the FFT to float rounding."""

    def __init__(self, vocoder: VocosVocoder):
        super().__init__()
        self.vocoder = vocoder
        cos, sin = dft_basis(vocoder.config.n_fft)
        self.register_buffer("dft_cos", cos, persistent=False)
        self.register_buffer("dft_sin", sin, persistent=False)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        re, im = self.vocoder.spectrum(log_mel)
        frames = torch.einsum("bkt,kn->bnt", re, self.dft_cos) + torch.einsum("bkt,kn->bnt", im, self.dft_sin)
        return self.vocoder.synthesize(frames)


class FilmHead(nn.Module):
    """`FilmTokenHead` with its adaptive average pooling written as a (K, N) averaging matrix: the exporter
    specialises `adaptive_avg_pool1d` to the example's frame count (wrong indices for any other N), this form
    keeps N dynamic. Segment i spans frames [floor(i N / K), ceil((i + 1) N / K)), exactly as PyTorch pools."""

    def __init__(self, head: FilmTokenHead):
        super().__init__()
        self.head = head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = self.head.mlp(self.head.norm(frames))  # (B, N, D)
        n, k = h.shape[1], self.head.config.n_tokens
        i = torch.arange(k, device=h.device)[:, None]
        t = torch.arange(n, device=h.device)[None, :]
        start = torch.div(i * n, k, rounding_mode="floor")
        end = torch.div((i + 1) * n + k - 1, k, rounding_mode="floor")
        mask = ((t >= start) & (t < end)).to(h.dtype)  # (K, N)
        pool = mask / mask.sum(dim=1, keepdim=True)
        return torch.matmul(pool, h) + self.head.position[None]


class MelFrontEnd(nn.Module):
    """The Mel front-end with its STFT as a strided conv (ONNX has no STFT on every runtime)."""

    def __init__(self, mel: nn.Module):
        super().__init__()
        self.mel = mel

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.mel(wave)
