"""Evaluation sets: loading, refusals naming the fault, shuffled partners, the shipped default set."""

from __future__ import annotations

import json

import pytest

from filmscore.engine.metrics.evalset import (DEFAULT_SET_DIR, EvalSetError, load_set, resolve_set,
                                              shuffled_partner)


def _write(root, items, fmt="filmscore.evalset/1", key="schema"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "set.json").write_text(json.dumps({key: fmt, "items": items}))
    return root


def test_loads_items_with_their_files(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"x")
    s = load_set(_write(tmp_path, [{"id": "a", "duration_s": 3, "controls": "c.npz", "hits_s": [1, 2]},
                                   {"id": "b", "duration_s": 2.5, "maestro": "bach"}]))
    assert [it.source for it in s.items] == ["controls", "maestro"]
    assert s.items[0].controls == tmp_path / "c.npz" and s.items[0].hits_s == (1.0, 2.0)


@pytest.mark.parametrize("items, fmt, match", [
    ([{"id": "a", "duration_s": 1, "video": "nope.mp4"}], "filmscore.evalset/1", "video file"),
    ([{"id": "a", "duration_s": 1}, {"id": "a", "duration_s": 1}], "filmscore.evalset/1", "appears twice"),
    ([{"id": "a"}], "filmscore.evalset/1", "numeric duration_s"),
    ([{"id": "a", "duration_s": 1, "maestro": "bach", "midi": None, "controls": "c.npz"}],
     "filmscore.evalset/1", "at most one"),
    ([], "filmscore.evalset/1", "no items"),
])
def test_refusals_name_the_fault(tmp_path, items, fmt, match):
    (tmp_path / "c.npz").write_bytes(b"x")
    with pytest.raises(EvalSetError, match=match):
        load_set(_write(tmp_path, items, fmt))


def test_missing_folder(tmp_path):
    with pytest.raises(EvalSetError, match="no set.json"):
        load_set(tmp_path / "absent")


def test_shuffled_partner_is_a_derangement(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"x")
    items = [{"id": str(k), "duration_s": 1, "controls": "c.npz"} for k in range(4)]
    items.insert(2, {"id": "free", "duration_s": 1})
    s = load_set(_write(tmp_path, items))
    partners = [shuffled_partner(i, s.items) for i in range(5)]
    assert partners[2] is None
    assert sorted(p for p in partners if p is not None) == [0, 1, 3, 4]
    assert all(p != i for i, p in enumerate(partners))


def test_default_resolves_to_the_shipped_set():
    assert resolve_set("default") == DEFAULT_SET_DIR
    if (DEFAULT_SET_DIR / "set.json").is_file():
        s = load_set("default")
        assert s.items and all(it.duration_s > 0 for it in s.items)
