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


# -- the plan, labels and bundle files go through the same reader ---------------------------------------------------

def test_plan_json_and_midi_header_are_read_through_the_sidecar_reader(tmp_path):
    from filmscore.engine.controls.maestros import load_theme
    from filmscore.engine.plan.compose import make_plan
    from filmscore.engine.plan.mood import PlanError
    from filmscore.engine.plan.plan import CuePlan

    plan = make_plan(8.0, theme=load_theme("bach", "5"), style="bach")
    d = plan.to_json()
    assert d[sidecar.KEY] == sidecar.PLAN.tag
    minor = tmp_path / "minor.json"
    minor.write_text(json.dumps({**d, sidecar.KEY: "filmscore.plan/1.7", "added_later": 1}))
    assert CuePlan.load(minor).to_json() == d  # a newer minor only adds keys
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**d, sidecar.KEY: "filmscore.plan/2"}))
    with pytest.raises(PlanError, match="newer.json: .*written by a newer filmscore"):
        CuePlan.load(newer)
    # the MIDI file's header text event carries the same tag
    import mido

    plan.save(tmp_path / "p.mid")
    mid = mido.MidiFile(str(tmp_path / "p.mid"))
    for track in mid.tracks:
        for msg in track:
            if msg.type == "text" and msg.text.startswith("filmscore.plan/1 "):
                msg.text = "filmscore.plan/2 " + msg.text.split(" ", 1)[1]
    mid.save(str(tmp_path / "newer.mid"))
    back = CuePlan.load(tmp_path / "p.mid")  # MIDI keeps the music to the tick, not the JSON's every float
    assert (back.key, back.mode, back.orchestration) == (plan.key, plan.mode, plan.orchestration)
    with pytest.raises(PlanError, match="newer.mid: .*written by a newer filmscore"):
        CuePlan.load(tmp_path / "newer.mid")


def test_bundle_manifest_reads_a_newer_minor_and_tells_v1_from_v2(tmp_path):
    from filmscore.engine.bundle_manifest import BUNDLE_SCHEMA, BUNDLE_SCHEMA_V2, read_manifest
    from filmscore.engine.errors import BundleError

    assert (BUNDLE_SCHEMA, BUNDLE_SCHEMA_V2) == (sidecar.BUNDLE.tag, sidecar.BUNDLE_V2.tag)
    b = tmp_path / "b"
    b.mkdir()
    (b / "bundle.json").write_text(json.dumps({"schema": "filmscore.bundle/1.3", "mel": {}, "components": {}}))
    assert read_manifest(b)[sidecar.KEY] == "filmscore.bundle/1"
    with pytest.raises(BundleError, match="this reader takes 'filmscore.bundle/2'"):
        read_manifest(b, BUNDLE_SCHEMA_V2)  # a v1 bundle is not an old v2 bundle: no "upgrade" is tried


def test_labels_of_a_newer_filmscore_are_refused_by_name(tmp_path):
    from filmscore.engine.data.labels import LabelsError, load_labels

    (tmp_path / "labels.json").write_text(json.dumps({"schema": "filmscore.labels/2", "n_frames": 1}))
    with pytest.raises(LabelsError, match="labels.json: .*newer filmscore"):
        load_labels(tmp_path)
