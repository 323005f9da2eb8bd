"""bridge/client.py and `filmscore client`: the asyncio client and the CLI against a real server on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest

from filmscore.bridge import protocol as P
from filmscore.bridge.client import AsyncBridgeClient, BridgeClient, BridgeTimeout, RemoteError, render_content
from filmscore.bridge.cli import main as cli_main
from filmscore.bridge.server.launch import launch_server

from bridge_support import bridge_bundle

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("client")
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()

    bundle = bridge_bundle(root / "bundle")
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle) as s:
        yield s, d


def test_render_content_is_rational_and_checked():
    content, buffers = render_content("/o/a.wav", video="/m/v.mov", start_s=1.5, duration_s=10.0,
                                      midi_bytes=b"MThd", hits_s=(2.0,), seed=4)
    assert content["start"] == {"value": 72000, "rate": 48000} and content["midi"] == {"buffer": 0}
    assert buffers == [b"MThd"] and content["hits"] == [{"value": 96000, "rate": 48000}]
    content, _ = render_content("/o/a.wav", timeline="/t.otio", cue="1M2")
    assert content["timeline"]["cue"] == "1M2"
    with pytest.raises(P.ProtocolError, match="not both"):
        render_content("/o/a.wav", midi="/m.mid", midi_bytes=b"MThd")
    with pytest.raises(P.ProtocolError, match="unknown render field"):
        render_content("/o/a.wav", sede=3)


def test_async_client(srv):
    s, d = srv

    async def go():
        async with AsyncBridgeClient(s.info) as c:
            hello, status, jobs = await asyncio.gather(c.hello(), c.status(), c.list_jobs())
            assert hello["protocol_version"] == P.PROTOCOL_VERSION and status["pid"] == s.pid
            assert isinstance(jobs, list)
            with pytest.raises(RemoteError) as e:
                await c.status("feedbeef")
            assert e.value.ename == "JobError"
            with pytest.raises(RemoteError, match="outside"):
                await c.render("/etc/cue.wav", duration_s=2.0)
            seen: list[str] = []
            job = await c.render(d["out"] / "async.wav", duration_s=2.0, steps=3)
            final = await c.wait(job, timeout_s=120, on_event=lambda ev: seen.append(ev.msg_type))
            assert final["state"] == "finished", final["error"]
            assert (await c.result(job))["output"] == str(d["out"] / "async.wav")

    asyncio.run(go())


def test_timeout_names_the_endpoint(tmp_path):
    from filmscore.bridge.connection import new_connection_info

    info = new_connection_info()
    info["request_port"], info["event_port"] = 9, 9  # nothing listens on the discard port
    with BridgeClient(info, timeout_s=0.3) as c, pytest.raises(BridgeTimeout, match="tcp://127.0.0.1:9"):
        c.hello()


def test_cli_client_commands(srv, capsys):
    s, d = srv
    base = ["client", "--connection-file", str(s.connection_file)]
    assert cli_main(base + ["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pid"] == s.pid
    assert cli_main(base + ["hello", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol_version"] == P.PROTOCOL_VERSION
    assert cli_main(base + ["jobs", "--json"]) == 0
    assert "jobs" in json.loads(capsys.readouterr().out)
    # A user error: one line on stderr, exit 2, no traceback.
    assert cli_main(base + ["render", "--output", "/etc/x.wav", "--duration", "2"]) == 2
    err = capsys.readouterr().err
    assert "outside the server's allowed roots" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_maestro_library_over_the_wire(srv):
    s, _ = srv
    with BridgeClient(s.info) as c:
        names = c.hello()["capabilities"]["maestros"]
        lib = c.maestros()
    assert names and [m["name"] for m in lib] == names
    assert all(t["duration_s"] > 0 and t["id"] for m in lib for t in m["themes"])
