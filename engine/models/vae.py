"""`MelVAE`: log-Mel `(B, n_mels, T)` <-> latent `(B, latent_channels, T / 4)`, 1D over time.

A KL-regularised autoencoder as in latent diffusion (Rombach et al. 2022) / AudioLDM, with time downsampled 4x
(100 Mel frames/s -> 25 latent frames/s) and Mel bands as channels. `scaling_factor` (set after training from the
latents' std) brings the latents to unit variance for the diffusion model. Norms are per time step (no GroupNorm
over time), so decoding a long cue in overlapping chunks equals decoding it whole.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import ChannelNorm, Downsample1D, ResBlock1D, Upsample1D

MEL_MEAN = -5.0  # typical log-Mel level (log(1e-5) = -11.5 is silence); centring helps the first steps
MEL_STD = 3.0
LOGVAR_OFFSET = -6.0


class MelVAE(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, n_mels: int = 128, latent_channels: int = 64, hidden_channels: tuple[int, ...] = (128, 192, 256),
                 blocks_per_level: int = 1, scaling_factor: float = 1.0):
        super().__init__()
        if len(hidden_channels) != 3:
            raise ValueError("hidden_channels needs 3 levels (two 2x downsamplings = 4x in time)")
        ch = hidden_channels
        enc: list[nn.Module] = [nn.Conv1d(n_mels, ch[0], 3, padding=1)]
        for i in range(3):
            cin = ch[max(i - 1, 0)] if i else ch[0]
            for j in range(blocks_per_level):
                enc.append(ResBlock1D(cin if j == 0 else ch[i], ch[i], norm="channel"))
            if i < 2:
                enc.append(Downsample1D(ch[i]))
        enc += [ChannelNorm(ch[2]), nn.SiLU(), nn.Conv1d(ch[2], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(latent_channels, ch[2], 3, padding=1)]
        for i in reversed(range(3)):
            cin = ch[min(i + 1, 2)]
            for j in range(blocks_per_level + 1):
                dec.append(ResBlock1D(cin if j == 0 else ch[i], ch[i], norm="channel"))
            if i > 0:
                dec.append(Upsample1D(ch[i]))
        dec += [ChannelNorm(ch[0]), nn.SiLU(), nn.Conv1d(ch[0], n_mels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, n_mels, T)` with T a multiple of 4 -> posterior mean, logvar `(B, C, T / 4)` (unscaled)."""
        h = self.encoder((log_mel - MEL_MEAN) / MEL_STD)
        mean, logvar = h.chunk(2, dim=1)
        # Offset: an untrained encoder starts with posterior std e^-3 = 0.05, not 1, so the sampled latent carries
        # the signal from the first step (with a small KL weight the std would take long to shrink otherwise).
        return mean, (logvar + LOGVAR_OFFSET).clamp(-30.0, 20.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Unscaled latent `(B, C, L)` -> log-Mel `(B, n_mels, 4L)`."""
        return self.decoder(latent) * MEL_STD + MEL_MEAN

    def forward(self, log_mel: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, mean, logvar (training)."""
        mean, logvar = self.encode(log_mel)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        return self.decode(z), mean, logvar
