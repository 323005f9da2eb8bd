"""`GlobalConditionV2`: bundle v2's global conditions besides the picture, as two cross-attention tokens.

- **mood**: (energy, valence, tension) in [0, 1] (engine/plan/mood.py's attributes) -> one token through a small MLP;
  `null_mood` stands for "no mood given".
- **style**: the maestro as a learned embedding per master name (`masters`, the corpus's masters when the model was
  built); row 0 is "no maestro". The style is a condition the sampler guides on (HPM's maestro guidance), not only
  the reference melody.

The v2 UNet (v1's `FilmScoreUNet1D`, unchanged) cross-attends to `[film tokens (or its null tokens), mood, style]`;
each of the three groups can be dropped on its own (condition dropout) and guided with its own scale.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..errors import FilmscoreError

N_MOOD = 3  # energy, valence, tension
N_GLOBAL_TOKENS = 2  # mood, style


class UnknownMasterError(FilmscoreError):
    """A maestro name the model has no style embedding for."""


class GlobalConditionV2(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, masters: tuple[str, ...] = (), token_dim: int = 128, hidden_dim: int = 64):
        super().__init__()
        self.mood_mlp = nn.Sequential(nn.Linear(N_MOOD, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, token_dim))
        self.null_mood = nn.Parameter(torch.randn(token_dim) * 0.02)
        self.style = nn.Embedding(len(masters) + 1, token_dim)
        nn.init.normal_(self.style.weight, std=0.02)
        self.position = nn.Parameter(torch.randn(N_GLOBAL_TOKENS, token_dim) * 0.02)

    def master_index(self, name: str | None) -> int:
        """Row of `name`'s style embedding; 0 for None ("no maestro")."""
        if name is None:
            return 0
        masters = list(self.config.masters)
        if name not in masters:
            raise UnknownMasterError(f"maestro {name!r}: this model knows {', '.join(masters) or 'no maestro'}")
        return masters.index(name) + 1

    def forward(self, mood: torch.Tensor, mood_on: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
        """`mood (B, 3)` in [0, 1], `mood_on (B,)` bool, `master (B,)` long (0: none) -> `(B, 2, token_dim)`."""
        m = self.mood_mlp(mood.float() * 2.0 - 1.0)  # centred: 0.5 is "neutral"
        m = torch.where(mood_on[:, None], m, self.null_mood[None].expand_as(m))
        s = self.style(master)
        return torch.stack([m, s], dim=1) + self.position[None]
