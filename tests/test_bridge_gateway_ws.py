"""bridge/gateway_ws.py: a real WebSocket client against `filmscore serve --ws 127.0.0.1:0`."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from filmscore.bridge.server.launch import launch_server

from bridge_support import bridge_bundle

pytestmark = pytest.mark.timeout(300)
PANEL_ORIGIN = "https://panel.filmscore.local"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):

    root = tmp_path_factory.mktemp("gw")
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    bundle = bridge_bundle(root / "bundle")
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle,
                       ws="127.0.0.1:0", ws_origins=[PANEL_ORIGIN]) as srv:
        yield srv, d


def url(srv) -> str:
    return f"ws://127.0.0.1:{srv.info['ws_port']}"


@contextmanager
def open_ws(srv, token: str | None = None, **kw):
    """A WebSocket that has sent its token (the first message)."""
    with connect(url(srv), **kw) as ws:
        ws.send(json.dumps({"token": token if token is not None else srv.info["ws_token"]}))
        yield ws


def request(ws, msg_type: str, content: dict | None = None, msg_id: str = "req-1", buffers=()) -> dict:
    ws.send(json.dumps({"header": {"msg_type": msg_type, "msg_id": msg_id}, "content": content or {},
                        "buffers": len(buffers)}))
    for b in buffers:
        ws.send(b)
    while True:
        reply = json.loads(ws.recv(timeout=20))
        if reply["header"]["msg_type"] != "job_progress" and (
                reply["parent_header"].get("msg_id") == msg_id or reply["header"]["msg_type"] == "error"):
            return reply


def test_token_then_round_trip(gw):
    srv, _ = gw
    assert srv.info["ws_token"] and srv.info["ws_port"]
    with open_ws(srv) as ws:
        assert json.loads(ws.recv(timeout=10))["status"] == "ok"
        hello = request(ws, "hello", {"protocol_versions": ["1.0"]}, msg_id="panel-hello")
        assert hello["header"]["msg_type"] == "hello_reply" and hello["content"]["status"] == "ok"
        assert hello["parent_header"]["msg_id"] == "panel-hello"
        status = request(ws, "status", msg_id="panel-status")
        assert status["content"]["server"]["pid"] == srv.pid


def test_wrong_or_missing_token_is_refused(gw):
    srv, _ = gw
    for token in ("wrong", ""):
        with open_ws(srv, token=token) as ws, pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert e.value.rcvd.code == 1008
    with connect(url(srv)) as ws:  # a request instead of the token
        ws.send(json.dumps({"header": {"msg_type": "status"}}))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_origin_is_checked(gw):
    srv, _ = gw
    with pytest.raises(InvalidStatus) as e:
        connect(url(srv), origin="https://evil.example")
    assert e.value.response.status_code == 403
    with open_ws(srv, origin=PANEL_ORIGIN) as ws:
        assert json.loads(ws.recv(timeout=10))["status"] == "ok"


def test_bad_requests_get_errors_and_the_connection_stays(gw):
    srv, _ = gw
    with open_ws(srv) as ws:
        ws.recv(timeout=10)
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["content"]["ename"] == "ProtocolError"
        r = request(ws, "shutdown", msg_id="s1")
        assert r["content"]["status"] == "error" and "not allowed through the WebSocket" in r["content"]["evalue"]
        r = request(ws, "status", {"job_id": 12}, msg_id="s2")
        assert r["content"]["ename"] == "ProtocolError"
        assert request(ws, "list_jobs", msg_id="s3")["content"]["status"] == "ok"
    assert srv.process.poll() is None


def test_render_with_inline_midi_and_forwarded_events(gw):
    import io

    import mido

    srv, d = gw
    mid = mido.MidiFile()
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.extend([mido.Message("note_on", note=62, velocity=80, time=0),
               mido.Message("note_off", note=62, velocity=0, time=960)])
    buf = io.BytesIO()
    mid.save(file=buf)
    out = d["out"] / "panel.wav"
    with open_ws(srv) as ws:
        ws.recv(timeout=10)
        r = request(ws, "render", {"output": str(out), "duration": {"value": 2, "rate": 1}, "steps": 2,
                                   "midi": {"buffer": 0}}, msg_id="r1", buffers=[buf.getvalue()])
        assert r["content"]["status"] == "ok", r["content"]
        job = r["content"]["job_id"]
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ev = json.loads(ws.recv(timeout=120))
            if ev["content"].get("job_id") == job:
                seen.append(ev["header"]["msg_type"])
                if seen[-1] in ("job_finished", "job_failed"):
                    break
        assert seen[-1] == "job_finished", seen
        assert "job_progress" in seen
    assert Path(out).is_file()
