"""Conform analysis (bridge/timelines/conform.py) on generated edit pairs: a cut moved by 1..48 frames, a shot
inserted, a shot removed, a cue region trimmed, a cue deleted, a cue whose picture was replaced."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from filmscore.bridge.timelines.conform import JOIN_MARGIN_S, conform_edit
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.files import read_timeline

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
FPS = 24


def _edit(tmp: Path, name: str, shots: list[tuple[str, int, int]], cue: tuple[int, int] = (0, 168),
          cue_name: str = "1M1"):
    """A timeline of (media, source start frame, frames) shots on V1 and a cue marker over `cue` frames."""
    tl = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1")
    for media, src, n in shots:
        path = tmp / f"{media}.mov"
        path.touch()  # matching needs the media found, not decoded
        ref = otio.schema.ExternalReference(target_url=str(path), available_range=TR(RT(0, FPS), RT(2400, FPS)))
        track.append(otio.schema.Clip(name=media, media_reference=ref, source_range=TR(RT(src, FPS), RT(n, FPS))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(name=cue_name, marked_range=TR(RT(cue[0], FPS), RT(cue[1], FPS))))
    p = tmp / f"{name}.otio"
    otio.adapters.write_to_file(tl, str(p))
    return read_cues(read_timeline(p)).cues


OLD = [("a", 0, 48), ("b", 10, 48), ("c", 0, 72)]  # cuts at 2 s and 4 s, cue 0..7 s


@pytest.mark.parametrize("k", [1, 12, 48 - 1])
def test_cut_moved_by_k_frames(tmp_path, k):
    old = _edit(tmp_path, "old", OLD)
    new = _edit(tmp_path, "new", [("a", 0, 48 + k), ("b", 10 + k, 48 - k), ("c", 0, 72)])
    (c,) = conform_edit(old, new).cues
    assert c.status == "changed"
    assert (2.0, pytest.approx(2 + k / FPS)) in [(a, pytest.approx(b)) for a, b in c.cut_moves]
    assert all(abs(s.offset) < 1e-9 for s in c.kept)  # both sides of the cut stay where they were
    # a's new frames need new music, with a margin each side; nothing else changes
    assert c.regenerate == ((pytest.approx(2.0 - JOIN_MARGIN_S), pytest.approx(2 + k / FPS + JOIN_MARGIN_S)),)


def test_shot_inserted_and_removed(tmp_path):
    old = _edit(tmp_path, "old", OLD)
    ins = _edit(tmp_path, "ins", [("a", 0, 48), ("d", 0, 24), ("b", 10, 48), ("c", 0, 72)])
    (c,) = conform_edit(old, ins).cues
    assert c.status == "changed"
    assert [round(s.offset, 6) for s in c.kept] == [0.0, 1.0]  # b and c one second later
    assert c.regenerate == ((pytest.approx(1.0), pytest.approx(4.0)),)
    rem = _edit(tmp_path, "rem", [("a", 0, 48), ("c", 0, 72)], cue=(0, 120))
    (c,) = conform_edit(old, rem).cues
    assert [round(s.offset, 6) for s in c.kept] == [0.0, -2.0]  # c two seconds earlier
    assert c.regenerate == ((pytest.approx(1.0), pytest.approx(3.0)),)
    assert c.cut_moves == ()  # a and c did not meet in the old edit
    assert "length 7.000 -> 5.000 s" in c.reason


def test_cue_region_trimmed_keeps_everything(tmp_path):
    old = _edit(tmp_path, "old", OLD)
    new = _edit(tmp_path, "new", OLD, cue=(24, 120))  # the cue now 1..6 s of the same picture
    (c,) = conform_edit(old, new).cues
    assert c.status == "changed" and c.regenerate == ()
    assert len(c.kept) == 1 and c.kept[0].offset == pytest.approx(-1.0)
    assert (c.kept[0].start, c.kept[0].end) == (0.0, pytest.approx(5.0))


def test_unchanged_deleted_and_unrepairable_are_reported(tmp_path):
    old = _edit(tmp_path, "old", OLD)
    (same,) = conform_edit(old, _edit(tmp_path, "same", OLD)).cues
    assert same.status == "unchanged" and same.regenerate == ()
    gone, added = conform_edit(old, _edit(tmp_path, "gone", OLD, cue_name="2M1")).cues
    assert (gone.name, gone.status, gone.new) == ("1M1", "deleted", None) and gone.old is not None
    assert (added.name, added.status) == ("2M1", "new")
    (other,) = conform_edit(old, _edit(tmp_path, "other", [("x", 0, 100), ("y", 0, 68)])).cues
    assert other.status == "unrepairable" and other.regenerate == ((0.0, pytest.approx(7.0)),)
    assert "render it again" in other.reason
