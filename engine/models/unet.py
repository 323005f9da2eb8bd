"""`FilmScoreUNet1D`: the denoiser of the latent diffusion model, 1D over time (latent channels as channels).

Global control: cross-attention to the film encoder's tokens `(B, K, token_dim)` at the attention levels, with a
learned null token set (`null_tokens`) for classifier-free guidance. Local control arrives as ControlNet residuals
added to the skip connections and the middle block (`down_residuals`, `mid_residual`, Zhang et al. 2023).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import Attention1D, Downsample1D, ResBlock1D, Upsample1D, group_norm, timestep_embedding


class DownLevel(nn.Module):
    """Residual blocks (+ cross-attention) then optional downsampling; returns its skip tensors."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, layers: int, attention: bool, token_dim: int,
                 heads: int, downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResBlock1D(in_ch if i == 0 else out_ch, out_ch, emb_dim) for i in range(layers)])
        self.attentions = nn.ModuleList([Attention1D(out_ch, token_dim, heads) for _ in range(layers)]) if attention \
            else None
        self.downsample = Downsample1D(out_ch) if downsample else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
        skips = []
        for i, res in enumerate(self.resnets):
            x = res(x, emb)
            if self.attentions is not None:
                x = self.attentions[i](x, tokens)
            skips.append(x)
        if self.downsample is not None:
            x = self.downsample(x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    """Res, self-attention over time (coherence within a window), cross-attention to tokens, Res."""

    def __init__(self, ch: int, emb_dim: int, token_dim: int, heads: int):
        super().__init__()
        self.res1 = ResBlock1D(ch, ch, emb_dim)
        self.self_attn = Attention1D(ch, None, heads)
        self.cross_attn = Attention1D(ch, token_dim, heads)
        self.res2 = ResBlock1D(ch, ch, emb_dim)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.res1(x, emb)
        x = self.cross_attn(self.self_attn(x), tokens)
        return self.res2(x, emb)


class FilmScoreUNet1D(ModelMixin, ConfigMixin):
    """`forward(sample (B, C, L), timestep (B,), tokens (B, K, D), down_residuals, mid_residual) -> (B, C, L)`.

    L must be a multiple of 2 ** (len(block_out_channels) - 1).
    """

    @register_to_config
    def __init__(self, in_channels: int = 32, block_out_channels: tuple[int, ...] = (128, 192, 256),
                 layers_per_block: int = 1, attention_levels: tuple[bool, ...] = (False, True, True),
                 token_dim: int = 128, n_null_tokens: int = 4, heads: int = 4):
        super().__init__()
        ch = block_out_channels
        if len(attention_levels) != len(ch):
            raise ValueError("attention_levels needs one flag per level of block_out_channels")
        emb_dim = 4 * ch[0]
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.null_tokens = nn.Parameter(torch.randn(n_null_tokens, token_dim) * 0.02)
        self.conv_in = nn.Conv1d(in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        skip_ch = [ch[0]]
        for i, c in enumerate(ch):
            last = i == len(ch) - 1
            self.down.append(DownLevel(ch[i - 1] if i else ch[0], c, emb_dim, layers_per_block, attention_levels[i],
                                       token_dim, heads, downsample=not last))
            skip_ch += [c] * layers_per_block + ([] if last else [c])
        self.mid = MidBlock(ch[-1], emb_dim, token_dim, heads)
        self.up_resnets = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        in_c = ch[-1]
        for i in reversed(range(len(ch))):
            res = nn.ModuleList()
            att = nn.ModuleList()
            for _ in range(layers_per_block + 1):
                res.append(ResBlock1D(in_c + skip_ch.pop(), ch[i], emb_dim))
                att.append(Attention1D(ch[i], token_dim, heads) if attention_levels[i] else nn.Identity())
                in_c = ch[i]
            self.up_resnets.append(res)
            self.up_attn.append(att)
            self.upsamplers.append(Upsample1D(ch[i]) if i > 0 else nn.Identity())
        self.norm_out = group_norm(ch[0])
        self.conv_out = nn.Conv1d(ch[0], in_channels, 3, padding=1)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def null_context(self, batch: int) -> torch.Tensor:
        """`(B, K, D)`: the learned "no picture" tokens used for guidance."""
        return self.null_tokens[None].expand(batch, -1, -1)

    def time_embedding(self, timestep: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(timestep_embedding(timestep, self.config.block_out_channels[0]))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor,
                down_residuals: tuple[torch.Tensor, ...] | None = None,
                mid_residual: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_embedding(timestep)
        x = self.conv_in(sample)
        skips = [x]
        for level in self.down:
            x, s = level(x, emb, tokens)
            skips += s
        if down_residuals is not None:
            skips = [s + r for s, r in zip(skips, down_residuals, strict=True)]
        x = self.mid(x, emb, tokens)
        if mid_residual is not None:
            x = x + mid_residual
        for res_blocks, attns, up in zip(self.up_resnets, self.up_attn, self.upsamplers, strict=True):
            for res, att in zip(res_blocks, attns, strict=True):
                x = res(torch.cat([x, skips.pop()], dim=1), emb)
                x = att(x, tokens) if isinstance(att, Attention1D) else x
            x = up(x)
        return self.conv_out(F.silu(self.norm_out(x)))
