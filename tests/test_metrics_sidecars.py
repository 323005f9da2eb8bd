"""The evaluation's JSON files (set.json, report.json) go through engine/sidecar.py like every other sidecar: one
tag (`"schema"`), a newer version refused by name, the old `"format"` tag still read."""

from __future__ import annotations

import json

import pytest

from filmscore.engine import sidecar
from filmscore.engine.metrics.evalset import load_set
from filmscore.engine.sidecar import NewerSchemaError, SchemaError

ITEMS = [{"id": "a", "duration_s": 2.0, "maestro": "bach"}]


def _set(root, doc):
    root.mkdir(parents=True, exist_ok=True)
    (root / "set.json").write_text(json.dumps(doc))
    return root


def test_a_set_tagged_the_old_way_is_read(tmp_path):
    s = load_set(_set(tmp_path, {"format": "filmscore.evalset/1", "name": "old", "items": ITEMS}))
    assert s.name == "old" and [it.id for it in s.items] == ["a"]


def test_a_set_from_a_newer_filmscore_is_refused_by_name(tmp_path):
    with pytest.raises(NewerSchemaError, match=r"set\.json: 'filmscore\.evalset/2' was written by a newer filmscore; "
                                                r"this one reads filmscore\.evalset up to version 1"):
        load_set(_set(tmp_path, {"schema": "filmscore.evalset/2", "items": ITEMS}))


@pytest.mark.parametrize("doc, match", [
    ({"format": "other/2", "items": ITEMS}, r"no 'schema' tag naming a filmscore file \(expected "
                                            r"'filmscore\.evalset/1'\)"),
    ({"schema": "filmscore.eval/1", "items": ITEMS}, "a filmscore.eval file, not a filmscore.evalset file"),
])
def test_a_set_json_of_no_or_another_kind_is_refused(tmp_path, doc, match):
    with pytest.raises(SchemaError, match=match):
        load_set(_set(tmp_path, doc))


def test_written_sets_and_the_shipped_one_carry_the_tag(tmp_path):
    from filmscore.engine.metrics.evalset import DEFAULT_SET_DIR
    from filmscore.engine.metrics.testing import make_tiny_set

    make_tiny_set(tmp_path / "tiny", duration_s=1.0, with_video=False)
    for path in (tmp_path / "tiny" / "set.json", DEFAULT_SET_DIR / "set.json"):
        doc = json.loads(path.read_text())
        assert doc["schema"] == "filmscore.evalset/1" and "format" not in doc


def test_a_report_reads_back_checked():
    old = {"format": "filmscore.eval/1", "command": "filmscore eval", "cues": []}  # written before the tag moved
    assert sidecar.read(sidecar.EVAL_REPORT, old, "report.json") == {"schema": "filmscore.eval/1",
                                                                     "command": "filmscore eval", "cues": []}
    with pytest.raises(NewerSchemaError, match=r"report\.json: 'filmscore\.eval/3' was written by a newer"):
        sidecar.read(sidecar.EVAL_REPORT, {"schema": "filmscore.eval/3", "cues": []}, "report.json")


def test_a_plain_format_field_is_not_a_tag():
    """"format" is also an ordinary field (a delivery's "bwf"): kept, and never taken for a tag."""
    cue = {"schema": "filmscore.cue/1", "delivery": {"format": "bwf"}, "format": "bwf"}
    assert sidecar.read(sidecar.CUE, cue, "cue.json") == cue
    with pytest.raises(SchemaError, match="no 'schema' tag"):
        sidecar.read(sidecar.CUE, {"format": "bwf"}, "cue.json")
