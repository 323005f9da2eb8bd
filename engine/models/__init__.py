"""The models, one per file, each fully described by its diffusers config and saved as safetensors."""

from .controlnet import FilmScoreControlNet1D
from .film_token_head import FilmTokenHead
from .global_condition import GlobalConditionV2
from .unet import FilmScoreUNet1D
from .vae import MelVAE
from .vocoder import VocosVocoder

MODEL_CLASSES = {cls.__name__: cls for cls in (MelVAE, FilmScoreUNet1D, FilmScoreControlNet1D, VocosVocoder,
                                               FilmTokenHead, GlobalConditionV2)}

__all__ = ["MODEL_CLASSES", "FilmScoreControlNet1D", "FilmScoreUNet1D", "FilmTokenHead", "GlobalConditionV2", "MelVAE",
           "VocosVocoder"]
