"""The editor's loop through the bridge (issue 20): a real `filmscore serve` on loopback, a tiny real bundle, real
workers and sockets.

- `regenerate`: a cue the bridge rendered gets a new take of a range; outside it the samples are the cue's exactly,
  and the output equals `engine.regenerate.regenerate_cue` run here on the same cue (the command line's path);
- `render` with `variations`: the takes are published as OUT.take1.wav ..., each byte-identical to a render of its
  seed alone;
- `conform`: cues scored for an edit follow a new version of it into a new folder, as `filmscore conform` does;
- bad requests are refused before queueing, with named errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge_support import events_until, tiny_bridge

from filmscore.bridge.client import BridgeClient, RemoteError
from filmscore.bridge.server.launch import launch_server

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with tiny_bridge(tmp_path_factory.mktemp("editor")) as s:
        yield s


def _finish(c: BridgeClient, job: str) -> dict:
    evs = events_until(c, job, timeout_s=600)  # generous: the shared machine may be busy
    assert evs[-1].msg_type == "job_finished", evs[-1].content
    return c.result(job)


def _pcm(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0]


def test_regenerate_a_range_of_a_bridge_rendered_cue(served, tmp_path):
    from filmscore.engine.regenerate import Regeneration, regenerate_cue

    srv, d, _ = served
    cue, new = d["out"] / "cue.wav", d["out"] / "cue.v2.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        _finish(c, c.render(cue, duration_s=4.0, steps=2, seed=5, maestro="bach", theme="4", sample_rate=16000))
        res = _finish(c, c.regenerate(cue, new, 1.0, 2.5, seed=9))
        assert c.status(c.list_jobs()[-1]["job_id"])["kind"] == "regenerate"
    old, out = _pcm(cue), _pcm(new)
    a, b = 16000, 40000
    assert out.shape == old.shape
    np.testing.assert_array_equal(out[:a], old[:a])
    np.testing.assert_array_equal(out[b:], old[b:])
    assert not np.array_equal(out[a:b], old[a:b])
    meta = json.loads(new.with_suffix(".json").read_text())
    assert meta["regenerated"]["seed"] == 9 and meta["regenerated"]["outside_identical"] is True
    assert meta["regenerated"]["range_samples"] == [a, b]
    assert (d["out"] / "cue.v2.latent.npy").is_file() and meta["regenerated"]["latent"]["file"] == str(
        d["out"] / "cue.v2.latent.npy")
    assert ".partial" not in json.dumps(res) + json.dumps(meta)
    assert not list(d["out"].glob(".cue.v2.*"))  # nothing left under a partial name
    # the same regeneration here, as `filmscore render --from cue.wav --regenerate 1:2.5 --seed 9` runs it
    here = tmp_path / "here.wav"
    regenerate_cue(Regeneration(cue, here, 1.0, 2.5, 9))
    np.testing.assert_array_equal(_pcm(here), out)


def test_variations_publish_takes_each_equal_to_its_seed_alone(served):
    srv, d, _ = served
    out = d["out"] / "takes.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        res = _finish(c, c.render(out, duration_s=3.0, steps=2, seed=10, maestro="bach", theme="4",
                                  sample_rate=16000, variations=2))
        alone = d["out"] / "alone.wav"
        _finish(c, c.render(alone, duration_s=3.0, steps=2, seed=11, maestro="bach", theme="4", sample_rate=16000))
    assert not out.exists()
    takes = [d["out"] / f"takes.take{k}.wav" for k in (1, 2)]
    assert all(t.is_file() for t in takes)
    metas = [json.loads(t.with_suffix(".json").read_text()) for t in takes]
    assert [m["variations"]["take"] for m in metas] == [1, 2] and metas[1]["variations"]["seeds"] == [10, 11]
    assert metas[1]["variations"]["takes"] == [str(t) for t in takes]
    np.testing.assert_array_equal(_pcm(takes[1]), _pcm(alone))
    assert not np.array_equal(_pcm(takes[0]), _pcm(takes[1]))
    assert ".partial" not in json.dumps(res) + json.dumps(metas)


@pytest.mark.parametrize("msg_type, content, ename, message", [
    ("regenerate", {"source": "/x.wav", "output": "/y.wav", "start": 2.0, "end": 1.0}, "ProtocolError",
     "must come after start"),
    ("regenerate", {"source": "/x.wav", "output": "/y.wav", "start": 1.0}, "ProtocolError", "'end' is required"),
    ("regenerate", {"source": "/x.wav", "output": "/y.wav", "start": 0, "end": 1, "colour": 1}, "ProtocolError",
     "colour"),
    ("regenerate", {"source": "/etc/passwd", "output": "OUT", "start": 0, "end": 1}, "PathNotAllowed",
     "outside the server's allowed roots"),
    ("render", {"output": "OUT", "duration": {"value": 2, "rate": 1}, "variations": 17}, "ProtocolError",
     "variations must be 1..16"),
    ("render", {"output": "OUT", "duration": {"value": 2, "rate": 1}, "variations": 2, "preview": {}},
     "ProtocolError", "not both"),
    ("conform", {"old": "/a.otio", "new": "/b.otio", "scored": "/s"}, "ProtocolError", "'outdir' is required"),
])
def test_bad_editor_requests_are_refused_before_queueing(served, msg_type, content, ename, message):
    srv, d, _ = served
    content = {k: (str(d["out"] / "o.wav") if v == "OUT" else v) for k, v in content.items()}
    with BridgeClient(srv.info) as c:
        before = len(c.list_jobs())
        with pytest.raises(RemoteError) as e:
            c.request(msg_type, content)
        assert e.value.ename == ename and message in e.value.evalue, (e.value.ename, e.value.evalue)
        assert len(c.list_jobs()) == before


def test_regenerate_needs_the_cues_json_and_another_output(served):
    srv, d, _ = served
    bare = d["out"] / "bare.wav"
    sf.write(str(bare), np.zeros(16000, np.float32), 16000, subtype="PCM_24")
    with BridgeClient(srv.info) as c:
        with pytest.raises(RemoteError) as e:
            c.regenerate(bare, d["out"] / "bare2.wav", 0.0, 1.0)
        assert e.value.ename == "RequestError" and "bare.json" in e.value.evalue
        (d["out"] / "bare.json").write_text("{}")
        with pytest.raises(RemoteError) as e:
            c.regenerate(bare, bare, 0.0, 1.0, overwrite=True)
        assert "is the source cue" in e.value.evalue


@pytest.mark.slow
def test_conform_through_the_bridge(tmp_path, tmp_path_factory):
    """The edit pair of bridge/timelines/edit_testing.py scored here, its new version conformed by a server job."""
    from timeline_support import score_options, timeline_bundle

    from filmscore.bridge.timelines.batch import MANIFEST_NAME, score_timeline
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.edit_testing import make_edit, make_new_edit
    from filmscore.bridge.timelines.files import read_timeline

    bundle = timeline_bundle(tmp_path_factory.mktemp("bundle") / "tiny")
    work = tmp_path / "project"
    src = make_edit(work)
    new_edit = make_new_edit(src)
    scored = work / "scored"
    old_cl = read_cues(read_timeline(src))
    assert score_timeline(old_cl, old_cl.cues, scored, score_options(bundle)).ok
    outdir = work / "scored_v2"
    (work / "full").mkdir()
    (work / "full" / "x").write_text("")
    with launch_server(tmp_path / "state", media_roots=[work], output_roots=[work], bundle=bundle) as srv:
        with BridgeClient(srv.info) as c:
            c.subscribe(wait_s=30)
            with pytest.raises(RemoteError) as e:  # a folder with files in it, without overwrite
                c.conform(src, new_edit, scored, work / "full")
            assert e.value.ename == "RequestError" and "not an empty folder" in e.value.evalue
            with pytest.raises(RemoteError) as e:
                c.conform(src, new_edit, work / "media", outdir)
            assert e.value.ename == "PathNotAllowed" and MANIFEST_NAME in e.value.evalue
            job = c.conform(src, new_edit, scored, outdir)
            res = _finish(c, job)
            assert c.status(job)["kind"] == "conform"
    by = {o["name"]: o for o in res["cues"]}
    assert (by["1M2"]["action"], by["cue 3"]["action"], by["1M1"]["action"]) == ("spliced", "copied", "reported")
    manifest = json.loads((outdir / MANIFEST_NAME).read_text())["cues"]
    assert manifest["1M1"]["status"] == "deleted" and manifest["1M2"]["conform"]["action"] == "spliced"
    assert (outdir / "1M2.wav").is_file() and (outdir / "1M2.plan.json").is_file()
    assert res["outdir"] == str(outdir) and res["ok"] is True
