"""The default film encoder's feature spec (dimension and layout name) without encoding a clip: what a model's
film token head must be built for."""

from __future__ import annotations


def default_feature_spec() -> tuple[int, str]:
    """(feature_dim, layout) of `encode_video`'s `frame_matrix()` with the default backbone."""
    from .aesthetic import AESTHETIC_COLUMNS
    from .affect import EMOTION_COLUMNS
    from .encoder import default_backbone, feature_layout

    bb = default_backbone()
    return bb.dim + len(EMOTION_COLUMNS) + len(AESTHETIC_COLUMNS), feature_layout(bb)
