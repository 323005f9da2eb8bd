"""engine/sidecar.py: one tag for every JSON file, read back checked, older files upgraded, newer ones refused."""

from __future__ import annotations

import json

import pytest

from filmscore.engine import sidecar
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.sidecar import NewerSchemaError, Schema, SchemaError


def test_current_file_reads_as_is_and_a_newer_minor_too():
    data = sidecar.stamped(sidecar.CUE, {"seed": 3})
    assert data == {"schema": "filmscore.cue/1", "seed": 3}
    assert sidecar.read(sidecar.CUE, data, "cue.json") == data
    newer_minor = {"schema": "filmscore.cue/1.4", "seed": 3, "added_later": True}
    assert sidecar.read(sidecar.CUE, newer_minor, "cue.json") == {"schema": "filmscore.cue/1", "seed": 3,
                                                                 "added_later": True}


@pytest.mark.parametrize("schema, legacy", [(sidecar.CUE, "cue/1"), (sidecar.BATCH, "batch/1")])
def test_files_tagged_the_old_way_are_upgraded(schema, legacy):
    old = {"filmscore": legacy, "cues": {}}
    assert sidecar.read(schema, old, "old.json") == {"schema": schema.tag, "cues": {}}


def test_newer_major_is_refused_with_a_named_error():
    with pytest.raises(NewerSchemaError, match=r"cue\.json: 'filmscore\.cue/2' was written by a newer filmscore; "
                                               r"this one reads filmscore\.cue up to version 1"):
        sidecar.read(sidecar.CUE, {"schema": "filmscore.cue/2"}, "cue.json")
    assert issubclass(NewerSchemaError, SchemaError) and issubclass(SchemaError, FilmscoreError)


def test_older_major_goes_through_the_registered_upgrades(monkeypatch):
    v3 = Schema("filmscore.test_kind", 3)
    monkeypatch.setitem(sidecar.UPGRADES, ("filmscore.test_kind", 1), lambda d: {"renamed": d["old"]})
    monkeypatch.setitem(sidecar.UPGRADES, ("filmscore.test_kind", 2), lambda d: {**d, "steps": 2})
    got = sidecar.read(v3, {"schema": "filmscore.test_kind/1", "old": "x"}, "f.json")
    assert got == {"schema": "filmscore.test_kind/3", "renamed": "x", "steps": 2}
    monkeypatch.delitem(sidecar.UPGRADES, ("filmscore.test_kind", 2))
    with pytest.raises(SchemaError, match="too old to read: no upgrade from filmscore.test_kind/2"):
        sidecar.read(v3, {"schema": "filmscore.test_kind/1", "old": "x"}, "f.json")


@pytest.mark.parametrize("data, match", [
    ([1, 2], "not a JSON object"),
    ({"seed": 1}, "no 'schema' tag"),
    ({"schema": "cue-one"}, "no 'schema' tag"),
    ({"schema": "filmscore.batch/1"}, "a filmscore.batch file, not a filmscore.cue file"),
    ({"filmscore": {"cue": "1M1"}}, "no 'schema' tag"),  # OTIO metadata namespace, not a tag
])
def test_wrong_or_untagged_files(data, match):
    with pytest.raises(SchemaError, match=match):
        sidecar.read(sidecar.CUE, data, "x.json")


def test_load_names_the_file(tmp_path):
    path = tmp_path / "cue.json"
    with pytest.raises(SchemaError, match=f"{path}: cannot read"):
        sidecar.load(sidecar.CUE, path)
    path.write_text("{not json")
    with pytest.raises(SchemaError, match=f"{path}: not valid JSON"):
        sidecar.load(sidecar.CUE, path)
    path.write_text(json.dumps({"filmscore": "cue/1", "n_samples": 48000}))
    assert sidecar.load(sidecar.CUE, path) == {"schema": "filmscore.cue/1", "n_samples": 48000}


def test_parse_tag():
    assert sidecar.parse_tag("filmscore.plan/1") == ("filmscore.plan", 1, 0)
    assert sidecar.parse_tag("filmscore.cue/2.3") == ("filmscore.cue", 2, 3)
    assert sidecar.parse_tag("other.cue/1") is None and sidecar.parse_tag(None) is None


def test_batch_manifest_reader_keeps_old_refuses_newer_and_forgets_damaged(tmp_path):
    """bridge/timelines/batch.py reads its resumable state through `sidecar.load`."""
    from filmscore.bridge.timelines.batch import MANIFEST_NAME, Manifest

    path = tmp_path / MANIFEST_NAME
    path.write_text(json.dumps({"filmscore": "batch/1", "timeline": "reel", "cues": {"1M1": {"status": "done"}}}))
    m = Manifest(tmp_path, "reel")
    assert m.data["cues"] == {"1M1": {"status": "done"}} and m.data["schema"] == "filmscore.batch/1"
    m.record("1M2", {"status": "done"})
    assert json.loads(path.read_text())["schema"] == "filmscore.batch/1"  # rewritten with the one tag
    path.write_text(json.dumps({"schema": "filmscore.batch/2", "cues": {}}))
    with pytest.raises(NewerSchemaError, match=MANIFEST_NAME):
        Manifest(tmp_path, "reel")
    path.write_text("{damaged")
    assert Manifest(tmp_path, "reel").data["cues"] == {}  # only costs re-rendering
