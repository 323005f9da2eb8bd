"""The bridge's draft first: a render request with `preview` gets a `job_preview` event, once OUT.draft.wav is in
place and before `job_finished`; a real `filmscore serve` on loopback, real sockets, a tiny real bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from filmscore.bridge import protocol as P
from filmscore.bridge.client import BridgeClient, RemoteError
from filmscore.bridge.server.launch import launch_server

from bridge_support import bridge_bundle, events_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory):

    root = tmp_path_factory.mktemp("preview")
    bundle = bridge_bundle(root / "tiny")
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle) as srv:
        yield srv, d["out"]


def job_events(client: BridgeClient, job_id: str, on_preview: Callable[[P.Message], None]) -> list[P.Message]:
    """The job's events until it ends; `on_preview(event)` runs the moment `job_preview` arrives."""
    return events_until(client, job_id, timeout_s=240.0,
                        on_event=lambda ev: on_preview(ev) if ev.msg_type == "job_preview" else None)


def test_draft_is_published_and_announced_before_the_cue(server):
    import soundfile as sf

    srv, out_dir = server
    out = out_dir / "cue.wav"
    seen: dict = {}

    def at_preview(ev: P.Message) -> None:  # what a panel can do the moment it hears of the draft
        path = Path(ev.content["path"])
        audio, rate = sf.read(str(path), dtype="float32")
        seen.update(path=path, frames=len(audio), rate=rate, peak=float(abs(audio).max()),
                    info=sf.info(str(path)).subtype)

    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=3.0, steps=6, seed=2, maestro="bach", preview={"steps": 2})
        evs = job_events(c, job, at_preview)
        res = c.result(job)
    types = [e.msg_type for e in evs]
    assert types.count("job_preview") == 1 and types[-1] == "job_finished", types
    assert types.index("job_preview") < types.index("job_finished")
    preview = evs[types.index("job_preview")].content
    assert preview["steps"] == 2 and preview["ready_after_s"] > 0 and preview["state"] == "running"
    # The draft was whole when announced: it decodes, in the delivered format, to the cue's length.
    assert seen["path"] == out.with_name("cue.draft.wav") == Path(preview["path"])
    assert (seen["frames"], seen["rate"], seen["info"]) == (3 * 48000, 48000, "PCM_24") and seen["peak"] > 0
    # Full render after the draft: its own denoising steps came after the draft's, and the result names the draft.
    denoise_after = [e for e in evs[types.index("job_preview"):] if e.msg_type == "job_progress"
                     and e.content["stage"] == "denoise"]
    assert len(denoise_after) == 6
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["preview"]["path"] == str(out.with_name("cue.draft.wav")) and meta["preview"]["steps"] == 2
    assert ".partial" not in json.dumps(res) and sf.info(str(out)).frames == 3 * 48000
    assert not [p.name for p in out_dir.iterdir() if ".partial" in p.name or p.name.endswith(".tmp")]


def test_existing_draft_needs_overwrite_and_bad_preview_is_refused(server):
    srv, out_dir = server
    out = out_dir / "taken.wav"
    out.with_name("taken.draft.wav").write_bytes(b"not yours")
    with BridgeClient(srv.info) as c:
        with pytest.raises(RemoteError, match="taken.draft.wav exists"):
            c.request("render", {"output": str(out), "duration": {"value": 2, "rate": 1}, "preview": {}})
        for bad, why in (({"steps": 0}, "1..50"), ({"path": "/x.wav"}, "unknown render preview"),
                         (True, "must be an object")):
            with pytest.raises(RemoteError, match=why):
                c.request("render", {"output": str(out_dir / "b.wav"), "duration": {"value": 2, "rate": 1},
                                     "preview": bad})
        with pytest.raises(RemoteError, match="renders no audio"):
            c.request("plan", {"output": str(out_dir / "p.wav"), "duration": {"value": 2, "rate": 1},
                               "maestro": "bach", "preview": {}})
    assert out.with_name("taken.draft.wav").read_bytes() == b"not yours"


def test_a_cancelled_job_takes_its_draft_back(server):
    srv, out_dir = server
    out = out_dir / "long.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=3.0, steps=400, preview={"steps": 1})
        cancelled = []

        def cancel_now(ev: P.Message) -> None:
            assert Path(ev.content["path"]).is_file()
            cancelled.append(c.cancel(job))

        evs = job_events(c, job, cancel_now)
    assert cancelled and evs[-1].msg_type == "job_cancelled", [e.msg_type for e in evs]
    assert not out.exists() and not out.with_name("long.draft.wav").exists()
    assert not [p.name for p in out_dir.iterdir() if p.name.startswith((".long", "long"))]
