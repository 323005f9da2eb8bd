"""`FilmScoreControlNet1D`: HPM's Film Score ControlNet over the 1D UNet (Zhang et al. 2023, "Adding Conditional
Control to Text-to-Image Diffusion Models").

A trainable copy of the UNet's encoder (conv_in, down levels, middle block) fed the local controls at 100 frames/s:
melody (12) + dynamics (1) + "control present" (1) = 14 channels, brought to the latent rate (25/s) by a small
strided conv stack and added after conv_in. Every skip tensor and the middle output leave through a zero-initialised
1x1 conv, so an untrained ControlNet leaves the UNet unchanged. `conditioning_scale` is the user's control strength.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..constants import LATENT_DOWNSAMPLE
from .blocks import timestep_embedding, zero_module
from .unet import DownLevel, FilmScoreUNet1D, MidBlock


class ControlEmbedding(nn.Module):
    """`(B, 14, 4L)` controls at 100/s -> `(B, ch0, L)` at 25/s; the last conv is zero-initialised."""

    def __init__(self, control_channels: int, out_ch: int, hidden: int = 64):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv1d(control_channels, hidden, 5, padding=2),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.Conv1d(hidden, hidden, 3, padding=1),
        ])
        self.out = zero_module(nn.Conv1d(hidden, out_ch, 3, padding=1))

    def forward(self, controls: torch.Tensor) -> torch.Tensor:
        h = controls
        for conv in self.convs:
            h = F.silu(conv(h))
        return self.out(h)


class FilmScoreControlNet1D(ModelMixin, ConfigMixin):
    """`forward(sample (B,C,L), timestep (B,), tokens (B,K,D), controls (B,14,4L), conditioning_scale)`
    -> (down_residuals, mid_residual), shaped like the UNet's skips."""

    @register_to_config
    def __init__(self, in_channels: int = 32, block_out_channels: tuple[int, ...] = (128, 192, 256),
                 layers_per_block: int = 1, attention_levels: tuple[bool, ...] = (False, True, True),
                 token_dim: int = 128, heads: int = 4, control_channels: int = 14):
        super().__init__()
        ch = block_out_channels
        emb_dim = 4 * ch[0]
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv1d(in_channels, ch[0], 3, padding=1)
        self.control_embedding = ControlEmbedding(control_channels, ch[0])
        self.down = nn.ModuleList()
        skip_ch = [ch[0]]
        for i, c in enumerate(ch):
            last = i == len(ch) - 1
            self.down.append(DownLevel(ch[i - 1] if i else ch[0], c, emb_dim, layers_per_block, attention_levels[i],
                                       token_dim, heads, downsample=not last))
            skip_ch += [c] * layers_per_block + ([] if last else [c])
        self.mid = MidBlock(ch[-1], emb_dim, token_dim, heads)
        self.zero_convs = nn.ModuleList([zero_module(nn.Conv1d(c, c, 1)) for c in skip_ch])
        self.mid_zero_conv = zero_module(nn.Conv1d(ch[-1], ch[-1], 1))

    @classmethod
    def from_unet(cls, unet: FilmScoreUNet1D, control_channels: int = 14) -> FilmScoreControlNet1D:
        """Initialise as a copy of the UNet's encoder (the ControlNet recipe)."""
        cfg = unet.config
        net = cls(in_channels=cfg.in_channels, block_out_channels=tuple(cfg.block_out_channels),
                  layers_per_block=cfg.layers_per_block, attention_levels=tuple(cfg.attention_levels),
                  token_dim=cfg.token_dim, heads=cfg.heads, control_channels=control_channels)
        net.time_mlp.load_state_dict(unet.time_mlp.state_dict())
        net.conv_in.load_state_dict(unet.conv_in.state_dict())
        net.down.load_state_dict(unet.down.state_dict())
        net.mid.load_state_dict(unet.mid.state_dict())
        return net

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor, controls: torch.Tensor,
                conditioning_scale: float | torch.Tensor = 1.0) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        if controls.shape[-1] != sample.shape[-1] * LATENT_DOWNSAMPLE:
            raise ValueError(f"controls length {controls.shape[-1]} must be {LATENT_DOWNSAMPLE}x the latent length "
                             f"{sample.shape[-1]}")

        emb = self.time_mlp(timestep_embedding(timestep, self.config.block_out_channels[0]))
        x = self.conv_in(sample) + self.control_embedding(controls)
        skips = [x]
        for level in self.down:
            x, s = level(x, emb, tokens)
            skips += s
        x = self.mid(x, emb, tokens)
        down = tuple(zc(s) * conditioning_scale for zc, s in zip(self.zero_convs, skips, strict=True))
        return down, self.mid_zero_conv(x) * conditioning_scale
