"""Film encoder: picture -> per-frame features (semantic, emotion, aesthetic) and timing (cuts, motion)."""

from .features import FilmFeatures

__all__ = ["FilmFeatures"]
