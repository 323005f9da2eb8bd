"""Layers shared by the 1D models: residual blocks, attention, up/down-sampling, timestep embedding.

Everything is 1D over time with channels = Mel bands or latent channels: measured here, 1D convolutions train
8-35x faster than 2D on these CPUs. Shapes are `(B, C, L)` throughout (vocos' contract).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    groups = 32 if channels % 32 == 0 else 16 if channels % 16 == 0 else 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each time step, `(B, C, L)`: purely local in time, so a model built on it gives
    the same output whether it runs on a whole cue or on overlapping chunks (the VAE decoder is chunked)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return group_norm(channels)
    if kind == "channel":
        return ChannelNorm(channels)
    raise ValueError(f"unknown norm {kind!r}: 'group' or 'channel'")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """`(B,)` timesteps -> `(B, dim)` sinusoidal embedding (DDPM / diffusers `get_timestep_embedding`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock1D(nn.Module):
    """GroupNorm-SiLU-Conv x2 with an optional embedding added as scale and shift (FiLM). `(B, Cin, L) -> (B, Cout, L)`."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int | None = None, kernel: int = 3, dropout: float = 0.0,
                 norm: str = "group"):
        super().__init__()
        self.norm1 = make_norm(norm, in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2)
        self.emb = nn.Linear(emb_dim, 2 * out_ch) if emb_dim else None
        self.norm2 = make_norm(norm, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel, padding=kernel // 2)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention1D(nn.Module):
    """Multi-head attention of a sequence `(B, C, L)` to a context `(B, K, Dc)` (cross) or to itself (self)."""

    def __init__(self, channels: int, context_dim: int | None = None, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(context_dim or channels, channels, bias=False)
        self.to_v = nn.Linear(context_dim or channels, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, length = x.shape
        h = self.norm(x).transpose(1, 2)  # (B, L, C)
        ctx = h if context is None else context
        q = self.to_q(h).reshape(b, length, self.heads, c // self.heads).transpose(1, 2)
        k = self.to_k(ctx).reshape(b, ctx.shape[1], self.heads, c // self.heads).transpose(1, 2)
        v = self.to_v(ctx).reshape(b, ctx.shape[1], self.heads, c // self.heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, length, c)
        return x + self.to_out(out).transpose(1, 2)


class Downsample1D(nn.Module):
    """Strided conv: `(B, C, L) -> (B, C, L / 2)`."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1D(nn.Module):
    """Nearest-neighbour x2 then conv: `(B, C, L) -> (B, C, 2L)`."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def zero_module(module: nn.Module) -> nn.Module:
    """ControlNet's zero convolution: start as identity-free (all weights 0) so training begins from the base."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
