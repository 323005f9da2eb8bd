"""A small edited timeline for the executor tests: four marked cues of different lengths over two generated media
files (PyAV, `engine.film.synthetic`), and helpers to compare two batch outputs file by file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from filmscore.bridge.timelines.edit_testing import write_reel

# name: (record start, duration) in frames at 24 fps; lengths differ so longest-first scheduling is visible
CUES = {"1M1": (0, 36), "1M2": (48, 72), "2M1": (132, 48), "2M2": (192, 60)}


def make_reel(folder: Path) -> Path:
    """reel.otio (starts at 01:00:00:00): clip A = a.mp4 0-6 s at record 0-6 s, clip B = b.mp4 0-5 s at record
    6-11 s (a cut at 6 s inside cue 2M1); the four cue markers above and one point marker (a hit in 1M2)."""
    from filmscore.engine.film.synthetic import Shot, write_edit

    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    write_edit(media / "a.mp4", [Shot("pan", 3.0, seed=1), Shot("shapes", 3.0, seed=2)], width=64, height=48, fps=25)
    write_edit(media / "b.mp4", [Shot("shapes", 5.0, seed=3)], width=64, height=48, fps=25)
    return write_reel(folder / "reel.otio", "executor reel",
                      [("A", "media/a.mp4", 0, 144), ("B", "media/b.mp4", 0, 120)], CUES, {"hit": 80})


def bwf_without_origination(path: Path) -> bytes:
    """The file's bytes with the `bext` origination date and time (the moment of delivery, 18 bytes) blanked:
    everything else of two deliveries of the same cue must be equal byte for byte."""
    data = bytearray(Path(path).read_bytes())
    at = data.index(b"bext") + 8 + 256 + 32 + 32  # chunk data: description 256, originator 32, reference 32
    data[at:at + 18] = b"\0" * 18
    return bytes(data)


RUN_FACTS = ("seconds", "run", "timings_s")  # who rendered a cue and how long it took: not part of the delivery


def without_run_facts(obj, outdir: Path | None = None):
    """JSON with the run facts removed and `outdir` written as OUT, for comparing two deliveries."""
    if isinstance(obj, dict):
        return {k: without_run_facts(v, outdir) for k, v in obj.items() if k not in RUN_FACTS}
    if isinstance(obj, list):
        return [without_run_facts(v, outdir) for v in obj]
    if isinstance(obj, str) and outdir is not None:
        return obj.replace(str(outdir), "OUT")
    return obj


def assert_same_delivery(a: Path, b: Path, stems: list[str]) -> None:
    """Two batch folders deliver the same cues: WAV bytes (origination time aside), sidecars, controls, manifest."""
    from filmscore.engine.audio.delivery import read_bext
    from filmscore.bridge.timelines.batch import MANIFEST_NAME

    for stem in stems:
        assert bwf_without_origination(a / f"{stem}.wav") == bwf_without_origination(b / f"{stem}.wav"), stem
        assert read_bext(a / f"{stem}.wav")["time_reference"] == read_bext(b / f"{stem}.wav")["time_reference"]
        ja, jb = (without_run_facts(json.loads((d / f"{stem}.json").read_text()), d) for d in (a, b))
        assert ja == jb, stem
        with np.load(a / f"{stem}.controls.npz") as ca, np.load(b / f"{stem}.controls.npz") as cb:
            assert ca.files == cb.files and all(np.array_equal(ca[k], cb[k]) for k in ca.files)
    ma, mb = (json.loads((d / MANIFEST_NAME).read_text()) for d in (a, b))
    assert list(ma["cues"]) == list(mb["cues"])  # same order too: the timeline's
    assert without_run_facts(ma) == without_run_facts(mb)


def descendants(pid: int) -> dict[int, str]:
    """Every process under `pid` (children, theirs, ...) with its command line, from /proc."""
    children: dict[int, list[int]] = {}
    cmd: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out[p] = cmd.get(p, "")
        todo += children.get(p, [])
    return out
