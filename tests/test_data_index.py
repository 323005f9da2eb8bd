"""The corpus index: split by work, locked appends, torn lines, atomic rewrites."""

from __future__ import annotations

import pytest
from filmscore.engine.data.index import (
    INDEX_NAME,
    REQUIRED_FIELDS,
    CorpusError,
    append_records,
    read_index,
    split_of,
    update_records,
)


def _rec(i: int, work: str = "bach/x") -> dict:
    r = {f: 0 for f in REQUIRED_FIELDS}
    r.update(id=f"c{i}", work=work, split=split_of(work))
    return r


def test_split_is_by_work_and_about_five_percent():
    works = [f"folk/tune-{i}" for i in range(4000)]
    held = [w for w in works if split_of(w) == "heldout"]
    assert 0.035 < len(held) / len(works) < 0.065
    assert all(split_of(w) == "heldout" for w in held)  # stable


def test_append_read_update(tmp_path):
    append_records(tmp_path, [_rec(0), _rec(1)])
    append_records(tmp_path, [_rec(2)])
    assert [r["id"] for r in read_index(tmp_path)] == ["c0", "c1", "c2"]
    n = update_records(tmp_path, lambda r: dict(r, features="f.npz") if r["id"] == "c1" else r)
    assert n == 1 and read_index(tmp_path)[1]["features"] == "f.npz"


def test_torn_last_line_is_skipped_corrupt_middle_is_named(tmp_path):
    append_records(tmp_path, [_rec(0)])
    with open(tmp_path / INDEX_NAME, "a") as f:
        f.write('{"id": "c1", "wo')
    assert [r["id"] for r in read_index(tmp_path)] == ["c0"]
    with open(tmp_path / INDEX_NAME, "a") as f:
        f.write('\n{"id": "c2"}\n')
    with pytest.raises(CorpusError, match="line 2"):
        read_index(tmp_path)


def test_missing_field_and_missing_index(tmp_path):
    with pytest.raises(CorpusError, match="missing video"):
        append_records(tmp_path, [{k: v for k, v in _rec(0).items() if k != "video"}])
    with pytest.raises(CorpusError, match="data build"):
        read_index(tmp_path / "nothing")
