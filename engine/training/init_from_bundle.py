"""Start a training stage from a bundle's weights when its checkpoint directory is gone (a new machine)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..bundle import DEFAULT_BUNDLE_DIR, load_bundle

logger = logging.getLogger(__name__)

STAGE_COMPONENTS = {"vae": ("vae",), "vocoder": ("vocoder",), "ldm": ("unet", "controlnet", "film_head")}


def initial_weights(stage: str, bundle_dir: Path | None):
    """The stage's model(s) from `bundle_dir` (default: the shipped bundle, if any), in train mode; None when there
    is no bundle or it lacks the stage's components."""
    path = bundle_dir or DEFAULT_BUNDLE_DIR
    if not (path / "bundle.json").is_file():
        return None
    bundle = load_bundle(path)
    names = STAGE_COMPONENTS[stage]
    if not all(n in bundle.models for n in names):
        return None
    logger.info("%s: starting from bundle %s", stage, path)
    models = {n: bundle.models[n].train().requires_grad_(True) for n in names}
    return models if stage == "ldm" else models[names[0]]
