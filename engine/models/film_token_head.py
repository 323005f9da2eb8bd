"""`FilmTokenHead`: the trainable projection from the film encoder's per-frame features to global control tokens.

HPM conditions its UNet on global video features; here a window's frames `(B, N, feature_dim)` (10 frames/s,
semantic + emotion + aesthetic branches, see engine/film) become `n_tokens` tokens of width `token_dim`: a per-frame
MLP, then average pooling into `n_tokens` consecutive time segments (so the tokens keep the window's order of
events) plus a learned position embedding per token. `feature_layout` names the encoder layout it was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class FilmTokenHead(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, feature_dim: int, token_dim: int = 128, n_tokens: int = 4, hidden_dim: int = 256,
                 feature_layout: str = ""):
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim)
        self.mlp = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, token_dim))
        self.position = nn.Parameter(torch.randn(n_tokens, token_dim) * 0.02)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`(B, N, feature_dim)` -> `(B, n_tokens, token_dim)`."""
        h = self.mlp(self.norm(frames))  # (B, N, D)
        pooled = F.adaptive_avg_pool1d(h.transpose(1, 2), self.config.n_tokens).transpose(1, 2)
        return pooled + self.position[None]
