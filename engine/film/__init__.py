"""Film encoder: picture -> per-frame features (semantic, emotion, aesthetic) and timing (cuts, motion).

`encode_video(path, start_s=0.0, duration_s=None, *, cache=True, progress=None) -> FilmFeatures` is the entry point
(imported on first use: it pulls in scipy, PyAV and torch); docs/film_encoder.md describes the feature layout.
"""

from .features import FilmFeatures

__all__ = ["FilmFeatures", "encode_video"]


def __getattr__(name: str):
    if name == "encode_video":
        from .encoder import encode_video

        return encode_video
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
