"""What the timeline tests score with: the tiny bundle, the batch options and the delivered sample rate they hold
(the edits themselves are bridge/timelines/edit_testing.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filmscore.bridge.timelines.batch import ScoreOptions
from filmscore.engine.bundle_testing import make_tiny_bundle

SR = 48000
"""The delivered sample rate the timeline tests hold the cues to."""


def timeline_bundle(path: Path) -> Path:
    """The tiny seeded bundle with the film encoder's own layout (the timelines' cues have picture), at `path`."""
    return make_tiny_bundle(path, seed=0)


def score_options(bundle: Path, **kw: Any) -> ScoreOptions:
    """The batch options the timeline tests score with (seed 7, 2 steps, `bundle`), with `kw` added."""
    return ScoreOptions(seed=7, steps=2, bundle=bundle, **kw)
