"""Generated pairs of edits for conform's tests and benches (issue 20): an old cut and a new version of it with one
change: a cut moved by 1..48 frames, a shot inserted, a shot removed, or the cue region trimmed.

Written with OpenTimelineIO as real .otio files over empty placeholder media files (conform matches picture by media
path and source range; nothing is decoded). Each pair is drawn from its seed, so a failing pair can be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 24
KINDS = ("move", "insert", "remove", "trim")

Shot = tuple[str, int, int]  # media name, source start frame, frames


@dataclass(frozen=True)
class EditPair:
    """Two .otio files with one cue marker each (`cue_name`), and what changed between them."""

    kind: str
    old: Path
    new: Path
    detail: str
    cue_name: str = "1M1"


def write_edit(folder: Path, name: str, shots: list[Shot], cue: tuple[int, int], cue_name: str = "1M1",
               fps: int = FPS) -> Path:
    """A timeline of `shots` on V1 and a cue marker over frames [cue[0], cue[0] + cue[1]); returns the .otio path."""
    import opentimelineio as otio

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    tl = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1")
    for media, src, n in shots:
        path = folder / f"{media}.mov"
        path.touch()
        ref = otio.schema.ExternalReference(target_url=str(path), available_range=tr(rt(0, fps), rt(100_000, fps)))
        track.append(otio.schema.Clip(name=media, media_reference=ref, source_range=tr(rt(src, fps), rt(n, fps))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(name=cue_name, marked_range=tr(rt(cue[0], fps), rt(cue[1], fps))))
    path = folder / f"{name}.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def edit_pair(folder: Path, seed: int, kind: str | None = None) -> EditPair:
    """One generated pair (module docstring): 4..9 shots of 1..4 s, the cue over the whole edit; `kind` one of
    `KINDS` (default: drawn from the seed)."""
    rng = np.random.default_rng(seed)
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    if kind not in KINDS:
        raise ValueError(f"edit pair kind must be one of {', '.join(KINDS)}, got {kind!r}")
    n = int(rng.integers(4, 10))
    shots: list[Shot] = [(f"s{seed}_{i}", int(rng.integers(0, 2000)), int(rng.integers(FPS, 4 * FPS + 1)))
                         for i in range(n)]
    total = sum(s[2] for s in shots)
    new = list(shots)
    cue_new = (0, total)
    if kind == "move":
        i = int(rng.integers(n - 1))
        k = int(rng.integers(1, 49))
        a, b = shots[i], shots[i + 1]
        if rng.random() < 0.5 and b[2] > k + 12:  # later: a runs on, b loses its head
            new[i], new[i + 1] = (a[0], a[1], a[2] + k), (b[0], b[1] + k, b[2] - k)
            detail = f"cut {i + 1} moved {k} frames later"
        elif a[2] > k + 12:  # earlier: a loses its tail, b starts earlier in its source
            new[i], new[i + 1] = (a[0], a[1], a[2] - k), (b[0], b[1] - k, b[2] + k)
            detail = f"cut {i + 1} moved {k} frames earlier"
        else:  # both shots too short for k: move it less, later
            k = min(k, b[2] - 12)
            new[i], new[i + 1] = (a[0], a[1], a[2] + k), (b[0], b[1] + k, b[2] - k)
            detail = f"cut {i + 1} moved {k} frames later"
    elif kind == "insert":
        i = int(rng.integers(1, n))
        m = int(rng.integers(12, 3 * FPS + 1))
        new.insert(i, (f"s{seed}_ins", int(rng.integers(0, 2000)), m))
        cue_new = (0, total + m)
        detail = f"a {m}-frame shot inserted before shot {i + 1}"
    elif kind == "remove":
        i = int(rng.integers(1, n - 1))
        del new[i]
        cue_new = (0, total - shots[i][2])
        detail = f"shot {i + 1} ({shots[i][2]} frames) removed"
    else:
        head = int(rng.integers(0, 2 * FPS))
        tail = int(rng.integers(0 if head else 1, 2 * FPS))
        cue_new = (head, total - head - tail)
        detail = f"cue region trimmed by {head} frames at its head and {tail} at its tail"
    old = write_edit(folder, f"old{seed}", shots, (0, total))
    new_p = write_edit(folder, f"new{seed}", new, cue_new)
    return EditPair(kind, old, new_p, detail)


__all__ = ["EditPair", "FPS", "KINDS", "edit_pair", "write_edit"]
