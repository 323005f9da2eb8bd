"""music21 works, parsing with part roles, the parse cache and plain MIDI export."""

from __future__ import annotations

import numpy as np
import pytest
from filmscore.engine.data.music21_source import (
    ParseCache,
    SourceError,
    Work,
    iter_works,
    parse_work,
    score_to_midi,
    skyline,
)

CHORALE = Work("bach", "bach/bwv66.6", "bach/bwv66.6.mxl")


def test_iter_works_labels_and_tunes():
    works = list(iter_works(["bach", "folk"]))
    masters = {w.master for w in works}
    assert masters == {"bach", "folk"}
    ids = [w.work_id for w in works]
    assert len(ids) == len(set(ids))
    assert "bach/bwv66.6" in ids
    tunes = [w for w in works if w.path.startswith("essenFolksong/") and w.number is not None]
    assert len(tunes) > 1000  # one work per X: tune of the multi-tune ABC files
    assert all(not w.path.endswith(".rntxt") for w in works)


def test_unknown_composer_is_named():
    with pytest.raises(SourceError, match="nobody"):
        next(iter_works(["nobody"]))


def test_parse_chorale_roles_bars_key():
    p = parse_work(CHORALE)
    assert p.melody.role == "melody" and len(p.parts) == 4
    assert all(a.role == "accomp" for a in p.accompaniment)
    # the melody is the soprano: the highest part, monophonic
    assert p.melody.mean_pitch > max(a.mean_pitch for a in p.accompaniment)
    on, dur = p.melody.notes[:, 0], p.melody.notes[:, 1]
    assert np.all(on[1:] >= on[:-1] + dur[:-1] - 1e-9)
    assert np.all(np.diff(p.bars) > 0) and p.bars[-1] < p.end_ql
    assert (p.key_name, p.mode) == ("F#", "minor")


def test_skyline_keeps_top_note():
    notes = np.array([[0, 2, 60], [0, 1, 64], [1, 1, 62]], float)
    assert skyline(notes).tolist() == [[0, 1, 64], [1, 1, 62]]


def test_cache_roundtrip_and_midi(tmp_path):
    cache = ParseCache(tmp_path)
    a = cache.get(CHORALE)
    assert cache.path(CHORALE).is_file()
    b = cache.get(CHORALE)
    np.testing.assert_allclose(a.melody.notes, b.melody.notes)
    assert (a.tonic, a.mode, a.title) == (b.tonic, b.mode, b.title)
    mid = score_to_midi(CHORALE, qpm=60)
    names = [t.name for t in mid.tracks[1:]]
    assert names[0] == "melody" and len(names) == 4
    n_on = sum(1 for m in mid.tracks[1] if m.type == "note_on" and m.velocity)
    assert n_on == len(a.melody.notes)
    assert mid.length == pytest.approx(a.end_ql, abs=0.01)  # 60 qpm: one quarter per second
