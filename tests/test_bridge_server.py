"""bridge/server: a real `filmscore serve` process on loopback, a tiny real bundle, real worker processes.

Covers: hello and capabilities; refusal of unsigned, tampered, replayed, oversized and fuzzed frames while serving;
renders with progress events; cancel within one denoising step; a worker killed with SIGKILL (retried once, then
failed, never a partial file at the output); a server killed and restarted (finished jobs listed, queued resumed);
path roots; idempotent re-sends; signed shutdown; CURVE for remote access.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import zmq

from bridge_support import bridge_bundle, events_until, four_note_midi, raw_socket, recv_reply, serve

from filmscore.bridge import protocol as P
from filmscore.bridge.client import BridgeClient, BridgeTimeout, RemoteError
from filmscore.bridge.connection import key_bytes
from filmscore.bridge.server.launch import start_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return bridge_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def dirs(tmp_path) -> dict[str, Path]:
    d = {k: tmp_path / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    return d


@pytest.fixture(scope="module")
def shared(tmp_path_factory, bundle):
    """One server for the tests that do not need their own."""
    root = tmp_path_factory.mktemp("shared")
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    with serve(d, bundle) as srv:
        yield srv, d


def wait_progress(client: BridgeClient, job_id: str, min_fraction: float = 0.0, timeout_s: float = 120.0):
    for ev in client.events(timeout_s=timeout_s):
        if ev.content.get("job_id") == job_id and ev.msg_type == "job_progress" and \
                ev.content["stage"] == "denoise" and ev.content["fraction"] > min_fraction:
            return ev
        if ev.content.get("job_id") == job_id and ev.msg_type in ("job_finished", "job_failed"):
            raise AssertionError(f"job ended before denoising progressed: {ev.content}")
    raise AssertionError("no denoise progress")


def test_hello_reports_version_and_capabilities(shared):
    srv, _ = shared
    with BridgeClient(srv.info) as c:
        h = c.hello()
    assert h["protocol_version"] == P.PROTOCOL_VERSION
    caps = h["capabilities"]
    assert caps["backends"]["torch"] is True and "CPUExecutionProvider" in caps["backends"]["ort"]
    assert caps["bundle"]["name"] == "tiny-test"
    assert set(caps["message_types"]) == set(P.REQUEST_TYPES)
    assert caps["render_options"] == P.render_options_schema()  # what a panel builds its fields from
    assert oct(os.stat(srv.connection_file).st_mode & 0o777) == "0o600"


def test_bad_frames_are_answered_with_errors_and_the_server_keeps_serving(shared):
    srv, _ = shared
    good = P.Session(key_bytes(srv.info))
    evil = P.Session(os.urandom(32))
    sock = raw_socket(srv.info)
    valid = good.serialize(good.msg("status"))
    cases = {
        "unsigned": valid[:1] + [b""] + valid[2:],
        "wrong key": evil.serialize(evil.msg("status")),
        "tampered": valid[:5] + [b'{"job_id":"x"}'],
        "no delimiter": [b"hello"],
        "oversized": good.serialize(good.msg("status", buffers=[b"\0" * (P.Limits().max_message_bytes + 1)])),
        "unknown type": good.serialize(good.msg("format_disk")),
        "bad content": good.serialize(good.msg("status", {"job_id": 5})),
    }
    sock.send_multipart(valid)
    assert recv_reply(sock, good).content["status"] == "ok"
    sock.send_multipart(valid)  # the very same frames again
    cases_out = {"replayed": recv_reply(sock, good).content}
    for name, frames in cases.items():
        sock.send_multipart(frames)
        cases_out[name] = recv_reply(sock, good).content
    want = {"replayed": "ReplayError", "unsigned": "SignatureError", "wrong key": "SignatureError",
            "tampered": "SignatureError", "no delimiter": "ProtocolError", "oversized": "MessageTooLarge",
            "unknown type": "ProtocolError", "bad content": "ProtocolError"}
    assert {k: v["ename"] for k, v in cases_out.items()} == want
    assert all(v["status"] == "error" for v in cases_out.values())
    sock.send_multipart(good.serialize(good.msg("status")))
    assert recv_reply(sock, good).content["status"] == "ok"
    sock.close()


@pytest.mark.slow
def test_fuzz_10000_frames_each_answered_then_a_valid_request(shared):
    srv, _ = shared
    rng = random.Random(0)
    good = P.Session(key_bytes(srv.info))
    sock = raw_socket(srv.info)
    base = [good.msg(t, c) for t, c in [("status", {}), ("render", {"output": "/nowhere.wav"}),
                                         ("cancel", {"job_id": "abc"}), ("list_jobs", {"limit": 2})]]

    def mutant(i: int) -> list[bytes]:
        msg = base[i % len(base)]
        frames = good.serialize(good.msg(msg.msg_type, msg.content))
        kind = i % 6
        if kind == 0:  # flip random bytes anywhere after the delimiter
            j = rng.randrange(1, len(frames))
            f = bytearray(frames[j] or b"\0")
            f[rng.randrange(len(f))] = rng.randrange(256)
            frames[j] = bytes(f)
        elif kind == 1:  # truncate
            frames = frames[: rng.randrange(0, len(frames))] or [b""]
        elif kind == 2:  # unsigned
            frames[1] = b""
        elif kind == 3:  # random garbage frames
            frames = [os.urandom(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 9))]
        else:  # correctly signed, wrongly typed content or header fields
            junk = rng.choice([5, "x", None, [1], {"a": {"b": []}}, -1.5, True, "\udcff".encode("utf-8", "replace")
                               .decode()])
            content = dict(msg.content) | {rng.choice(["job_id", "limit", "states", "output", "seed", "steps",
                                                         "midi", "start"]): junk}
            m = good.msg(rng.choice([msg.msg_type, "hello", "result", "maestros"]), content)
            if kind == 5:
                m.header[rng.choice(["msg_id", "version", "date", "session"])] = junk
            frames = good.serialize(m)
        return frames

    n, answered = 10_000, 0
    for start in range(0, n, 500):  # in windows, so the ROUTER's high-water mark is never what drops a frame
        for i in range(start, start + 500):
            sock.send_multipart(mutant(i))
        for _ in range(500):
            assert sock.poll(10_000), f"only {answered} of {n} fuzz frames answered"
            sock.recv_multipart()
            answered += 1
    assert answered == n
    sock.send_multipart(good.serialize(good.msg("hello")))
    assert recv_reply(sock, good).content["status"] == "ok"
    assert srv.process.poll() is None
    sock.close()


def test_paths_are_checked_against_the_roots(shared, tmp_path):
    srv, d = shared
    with BridgeClient(srv.info) as c:
        for kw, why in [
            ({"output": str(tmp_path / "elsewhere.wav")}, "outside the server's allowed roots"),
            ({"output": "relative.wav"}, "must be absolute"),
            ({"output": str(d["out"] / "x.wav"), "video": "/etc/passwd"}, "outside the server's allowed roots"),
            ({"output": str(d["out"] / "x.wav"), "midi": str(d["media"] / "missing.mid")}, "does not exist"),
            ({"output": str(d["out"] / "x.mp3")}, "must end in .wav"),
            ({"output": str(d["out"] / "../../escape.wav")}, "outside"),
        ]:
            out = kw.pop("output")
            with pytest.raises(RemoteError, match=why):
                c.render(out, duration_s=2.0, **kw)
        with pytest.raises(RemoteError, match="not a Standard MIDI File"):
            c.render(d["out"] / "y.wav", duration_s=2.0, midi_bytes=b"RIFF....")
        with pytest.raises(RemoteError, match="no job"):
            c.status("0123abcd")


def test_render_publishes_progress_and_delivers_atomically(shared):
    import soundfile as sf

    srv, d = shared
    out = d["out"] / "cue.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)  # returns once the event connection is up (an event, not a fixed sleep)
        job = c.render(out, duration_s=3.0, steps=4, seed=3, midi_bytes=four_note_midi())
        with pytest.raises(RemoteError, match="already the output of job"):
            c.render(out, duration_s=3.0)
        evs = events_until(c, job)
        types = [e.msg_type for e in evs]
        assert types[:2] == ["job_queued", "job_started"] and types[-1] == "job_finished", evs[-1].content
        denoise = [e.content for e in evs if e.msg_type == "job_progress" and e.content["stage"] == "denoise"]
        assert len(denoise) == 4
        assert [x["fraction"] for x in denoise] == sorted(x["fraction"] for x in denoise)
        assert all(x["eta_s"] is not None and x["eta_s"] >= 0 for x in denoise)
        res = c.result(job)
        st = c.status(job)
    assert Path(res["output"]) == out and st["state"] == "finished" and st["attempts"] == 1
    assert sf.info(str(out)).frames == 3 * 48000
    assert not [p.name for p in d["out"].iterdir() if ".partial" in p.name or p.name.endswith(".tmp")]
    sidecar = out.with_suffix(".json")
    assert sidecar.is_file() and ".partial" not in sidecar.read_text()
    assert ".partial" not in json.dumps(res)


def test_resent_render_gives_the_same_job(shared):
    srv, d = shared
    from filmscore.bridge.client import render_content

    content, buffers = render_content(d["out"] / "dup.wav", duration_s=2.0, steps=2)
    with BridgeClient(srv.info) as c:
        first = c.request("render", content, buffers, msg_id="resend-0001")
        second = c.request("render", content, buffers, msg_id="resend-0001")  # new signature, same msg_id
        assert second["job_id"] == first["job_id"] and second["duplicate"] is True
        assert c.wait(first["job_id"], timeout_s=120)["state"] == "finished"
        assert sum(j["output"] == str(d["out"] / "dup.wav") for j in c.list_jobs(limit=1000)) == 1


@pytest.mark.slow
def test_cancel_stops_within_one_denoising_step(shared):
    import re

    srv, d = shared
    out = d["out"] / "cancelled.wav"
    n_steps = 400
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=3.0, steps=n_steps)
        latest = wait_progress(c, job)
        for ev in c.events(timeout_s=0):  # drain: the newest step the worker has reported so far
            if ev.content.get("job_id") == job and ev.msg_type == "job_progress":
                latest = ev
        step_reported = round(latest.content["fraction"] * n_steps)
        assert c.cancel(job) == "cancelling"
        evs = events_until(c, job)
        st = c.status(job)
    assert evs[-1].msg_type == "job_cancelled" and st["state"] == "cancelled"
    stopped_at = int(re.search(r"step (\d+)/", evs[-1].content["detail"]).group(1))
    # At most the step running when the cancel arrived (plus one whose report was still in flight) completes.
    assert stopped_at <= step_reported + 2, (step_reported, evs[-1].content["detail"])
    assert stopped_at < n_steps // 2
    assert not out.exists() and not [p for p in d["out"].iterdir() if "cancelled" in p.name]
    with BridgeClient(srv.info) as c, pytest.raises(RemoteError, match="already ended"):
        c.cancel(job)


def test_cancel_a_queued_job(shared):
    srv, d = shared
    with BridgeClient(srv.info) as c:
        blocker = c.render(d["out"] / "blocker.wav", duration_s=3.0, steps=400)
        queued = c.render(d["out"] / "queued.wav", duration_s=2.0, steps=2)
        assert c.status(queued)["state"] == "queued" and c.status(queued)["position"] >= 1
        assert c.cancel(queued) == "cancelled"
        c.cancel(blocker)
        assert c.wait(blocker, timeout_s=60)["state"] == "cancelled"
        with pytest.raises(RemoteError, match="only for finished jobs"):
            c.result(queued)


def _worker_pid(c: BridgeClient, job: str) -> int:
    for w in c.status()["workers"]:
        if w["job_id"] == job:
            return w["pid"]
    raise AssertionError(f"no worker runs {job}")


@pytest.mark.slow
def test_killed_worker_is_detected_retried_once_then_failed(dirs, bundle):
    out = dirs["out"] / "killed.wav"
    with serve(dirs, bundle) as srv, BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=3.0, steps=400)
        for attempt in (1, 2):
            wait_progress(c, job)
            pid = _worker_pid(c, job)
            os.kill(pid, signal.SIGKILL)
            # Nothing may appear at the output path, and the partial file is removed.
            ev = next(e for e in c.events(timeout_s=30) if e.content.get("job_id") == job and
                      e.msg_type in ("job_queued", "job_failed"))
            assert not out.exists()
            if attempt == 1:
                assert ev.msg_type == "job_queued" and ev.content["retry"] is True, ev.content
                assert "SIGKILL" in ev.content["reason"]
            else:
                assert ev.msg_type == "job_failed" and "no attempts left" in ev.content["evalue"]
        st = c.status(job)
        assert st["state"] == "failed" and st["attempts"] == 2
        assert not [p for p in dirs["out"].iterdir()]
        # A fresh worker was started and serves the next job.
        ok = c.render(dirs["out"] / "after.wav", duration_s=2.0, steps=2)
        assert c.wait(ok, timeout_s=120)["state"] == "finished"
        assert srv.process.poll() is None


@pytest.mark.slow
def test_killed_server_restarts_with_journal_intact(dirs, bundle):
    srv = start_server(dirs["state"], media_roots=[dirs["media"]], output_roots=[dirs["out"]], bundle=bundle)
    try:
        with BridgeClient(srv.info) as c:
            done = c.render(dirs["out"] / "done.wav", duration_s=2.0, steps=2)
            assert c.wait(done, timeout_s=120)["state"] == "finished"
            c.subscribe(wait_s=30)
            long = c.render(dirs["out"] / "long.wav", duration_s=3.0, steps=400)
            queued = [c.render(dirs["out"] / f"q{i}.wav", duration_s=2.0, steps=2) for i in range(2)]
            wait_progress(c, long)
            worker = _worker_pid(c, long)
    finally:
        srv.process.send_signal(signal.SIGKILL)
        srv.process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the worker dies with its server (PR_SET_PDEATHSIG)
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("worker outlived its server")
    assert srv.connection_file.exists()  # a killed server cannot clean up; the restart reuses the file
    with serve(dirs, bundle) as srv2, BridgeClient(srv2.info) as c:
        assert srv2.info["key"] == srv.info["key"]
        jobs = {j["job_id"]: j for j in c.list_jobs()}
        assert jobs[done]["state"] == "finished" and jobs[done]["result"]["output"] == str(dirs["out"] / "done.wav")
        assert jobs[long]["state"] in ("queued", "running")  # interrupted: back in the queue
        c.cancel(long)
        for q in queued:
            assert c.wait(q, timeout_s=120)["state"] == "finished"
        assert not (dirs["out"] / "long.wav").exists()
        assert (dirs["out"] / "q1.wav").is_file()
    assert not srv2.connection_file.exists()  # taken over from the dead server, removed on a clean exit


def test_shutdown_must_be_signed(dirs, bundle):
    with serve(dirs, bundle) as srv:
        sock = raw_socket(srv.info)
        evil = P.Session(os.urandom(32))
        sock.send_multipart(evil.serialize(evil.msg("shutdown")))
        good = P.Session(key_bytes(srv.info))
        assert recv_reply(sock, good).content["ename"] == "SignatureError"
        assert srv.process.poll() is None
        with BridgeClient(srv.info) as c:
            assert c.shutdown()["stopping"] is True
        assert srv.process.wait(30) == 0
        sock.close()
    assert not srv.connection_file.exists()  # the server wrote it, so the server removed it on exit


def test_remote_bind_needs_allow_remote(dirs, bundle):
    from filmscore.bridge.server import ServerError

    with pytest.raises(ServerError, match="--allow-remote"):
        start_server(dirs["state"], ip="0.0.0.0", bundle=bundle)


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")
def test_allow_remote_uses_curve_and_admits_only_the_file_keypair(dirs, bundle):
    from websockets.sync.client import connect

    with serve(dirs, bundle, allow_remote=True, ws="127.0.0.1:0") as srv:
        info = srv.info
        assert info["ip"] == "0.0.0.0" and info["curve_server_public"] and info["curve_client_secret"]
        loop = dict(info) | {"ip": "127.0.0.1"}
        with BridgeClient(loop) as c:
            assert c.hello()["capabilities"]["curve"] is True
        # Right HMAC key, but no CURVE: the handshake never completes, so nothing is answered.
        plain = {k: v for k, v in loop.items() if not k.startswith("curve")}
        with BridgeClient(plain, timeout_s=1.5) as c, pytest.raises(BridgeTimeout):
            c.hello()
        # CURVE with a keypair the server does not know: refused by ZAP.
        pub, sec = zmq.curve_keypair()
        stranger = loop | {"curve_client_public": pub.decode(), "curve_client_secret": sec.decode()}
        with BridgeClient(stranger, timeout_s=1.5) as c, pytest.raises(BridgeTimeout):
            c.hello()
        # The WebSocket gateway reaches the CURVE sockets with the file's keypair.
        with connect(f"ws://127.0.0.1:{info['ws_port']}") as ws:
            ws.send(json.dumps({"token": info["ws_token"]}))
            assert json.loads(ws.recv(timeout=10))["status"] == "ok"
            ws.send(json.dumps({"header": {"msg_type": "status", "msg_id": "w1"}, "content": {}}))
            reply = json.loads(ws.recv(timeout=10))
            assert reply["parent_header"]["msg_id"] == "w1" and reply["content"]["status"] == "ok"


def _timeline(path: Path) -> Path:
    """A 4 s timeline at 24 fps (a gap: no media) with a 2 s cue marker 1M1 from 1 s."""
    import opentimelineio as otio

    rt = otio.opentime.RationalTime
    tl = otio.schema.Timeline(name="reel 1")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0, 24), rt(96, 24))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(name="1M1", marked_range=otio.opentime.TimeRange(rt(24, 24),
                                                                                                   rt(48, 24))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_render_a_timeline_cue_or_range(shared):
    import soundfile as sf

    srv, d = shared
    tl = _timeline(d["media"] / "reel1.otio")
    with BridgeClient(srv.info) as c:
        with pytest.raises(RemoteError, match="no cue named"):
            c.render(d["out"] / "nope.wav", timeline=tl, cue="9M9")
        by_cue = c.render(d["out"] / "tl_cue.wav", timeline=tl, cue="1M1", steps=2)
        by_range = c.render(d["out"] / "tl_range.wav", timeline=tl, in_s=0.5, out_s=2.0, steps=2)
        for job, seconds in ((by_cue, 2.0), (by_range, 1.5)):
            st = c.wait(job, timeout_s=180)
            assert st["state"] == "finished", st["error"]
            assert sf.info(st["output"]).frames == round(seconds * 48000)


@pytest.mark.slow
def test_eight_concurrent_clients_lose_and_duplicate_nothing(shared):
    from concurrent.futures import ThreadPoolExecutor

    srv, d = shared
    n_clients, n_jobs = 8, 3

    def client(k: int) -> list[str]:
        with BridgeClient(srv.info, timeout_s=30) as c:
            return [c.render(d["out"] / f"load_c{k}_j{i}.wav", duration_s=1.0, steps=2, seed=i, retries=2)
                    for i in range(n_jobs)]

    with ThreadPoolExecutor(n_clients) as pool:
        ids = [j for js in pool.map(client, range(n_clients)) for j in js]
    assert len(ids) == len(set(ids)) == n_clients * n_jobs
    with BridgeClient(srv.info) as c:
        finals = [c.wait(j, timeout_s=300) for j in ids]
        jobs = [j for j in c.all_jobs() if "/load_c" in j["output"]]
    assert all(f["state"] == "finished" for f in finals), [f["error"] for f in finals if f["error"]]
    assert len(jobs) == n_clients * n_jobs and len({j["output"] for j in jobs}) == len(jobs)
    assert sum(1 for p in d["out"].glob("load_c*.wav")) == n_clients * n_jobs


@pytest.mark.slow
def test_sigterm_puts_the_running_job_back_without_using_an_attempt(dirs, bundle):
    from filmscore.bridge.journal import Journal

    srv = start_server(dirs["state"], media_roots=[dirs["media"]], output_roots=[dirs["out"]], bundle=bundle)
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        running = c.render(dirs["out"] / "running.wav", duration_s=3.0, steps=400)
        waiting = c.render(dirs["out"] / "waiting.wav", duration_s=2.0, steps=2)
        wait_progress(c, running)
    assert srv.stop() == 0
    assert not srv.connection_file.exists()
    with Journal(dirs["state"]) as j:
        assert [(r.job_id, r.attempts) for r in j.list(("queued",))] == [(running, 0), (waiting, 0)]
    assert not [p for p in dirs["out"].iterdir()]  # the interrupted render left nothing behind


@pytest.mark.slow
def test_shutdown_wait_lets_the_running_render_finish(dirs, bundle):
    with serve(dirs, bundle) as srv, BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(dirs["out"] / "last.wav", duration_s=2.0, steps=20)
        wait_progress(c, job)
        assert c.shutdown(wait=True)["wait"] is True
        with pytest.raises(RemoteError, match="shutting down"):
            c.render(dirs["out"] / "late.wav", duration_s=2.0)
        assert srv.process.wait(120) == 0
    assert (dirs["out"] / "last.wav").is_file() and not (dirs["out"] / "late.wav").exists()


@pytest.mark.slow
def test_workers_dying_at_start_are_retried_slowly_while_requests_are_served(tmp_path):
    import threading

    from filmscore.bridge.server import BridgeServer, ServerConfig

    cfg = ServerConfig(state_dir=tmp_path / "state", connection_file=tmp_path / "c.json", media_roots=(tmp_path,),
                       output_roots=(tmp_path,), renderer="filmscore.bridge.no_such_module:render_cue")
    srv = BridgeServer(cfg)
    info = srv.start()
    loop = threading.Thread(target=srv.serve_forever, daemon=True)
    loop.start()
    try:
        with BridgeClient(info) as c:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not c.status()["last_worker_exit"]:
                time.sleep(0.2)
            assert "exit code 1" in c.status()["last_worker_exit"]["reason"]
            # Until the server turns a replacement down (the fifth replacement died and it holds off the rest of
            # the minute: `_respawn_warned`), not a fixed wait for a sixth that should not come.
            while time.monotonic() < deadline and not srv._respawn_warned:
                time.sleep(0.2)
            assert srv._respawn_warned and not srv.workers
            assert len(srv._respawns) == 5  # five replacements, then it waits for the minute to pass
            job = c.render(tmp_path / "waits.wav", duration_s=2.0)
            assert c.status(job)["state"] == "queued" and c.hello()["status"] == "ok"
            c.shutdown()
        loop.join(30)
        assert not loop.is_alive()
    finally:
        if loop.is_alive():
            srv.request_stop()
            loop.join(30)


@pytest.mark.slow
def test_render_a_video_range(dirs):
    """A real clip (PyAV-written, two shots cut at 2 s) through the film encoder: start and duration on the wire
    are rational; the picture's cut lands where the range puts it."""
    import soundfile as sf

    from filmscore.engine.bundle_testing import make_tiny_bundle
    from filmscore.engine.film.spec import default_feature_spec
    from filmscore.engine.film.synthetic import Shot, write_edit

    dim, layout = default_feature_spec()
    bundle = make_tiny_bundle(dirs["state"].parent / "video-bundle", seed=0, feature_dim=dim, feature_layout=layout)
    clip = dirs["media"] / "clip.mp4"
    write_edit(clip, [Shot("pan", 2.0), Shot("shapes", 2.0)])
    with serve(dirs, bundle) as srv, BridgeClient(srv.info) as c:
        job = c.render(dirs["out"] / "video.wav", video=clip, start_s=0.5, duration_s=3.0, steps=2)
        st = c.wait(job, timeout_s=180)
        assert st["state"] == "finished", st["error"]
        meta = c.result(job)["metadata"]
    assert sf.info(str(dirs["out"] / "video.wav")).frames == 3 * 48000
    assert meta["picture"]["duration_s"] == pytest.approx(3.0)
    assert any(abs(t - 1.5) < 0.2 for t in meta["picture"]["cuts_s"]), meta["picture"]["cuts_s"]


def test_one_server_per_connection_file_and_per_journal(shared, tmp_path):
    from filmscore.bridge.server import ServerError

    srv, _ = shared
    with pytest.raises(ServerError, match="belongs to a running server"):
        start_server(tmp_path / "other-state", connection_file=srv.connection_file)
    with pytest.raises(ServerError, match="in use by another filmscore server"):
        start_server(Path(srv.summary["state_dir"]), connection_file=tmp_path / "other.json")
    assert srv.process.poll() is None and not (tmp_path / "other.json").exists()


def test_each_worker_renders_on_its_share_of_the_cores(tmp_path):
    from filmscore.bridge.server import ServerConfig

    cores = len(os.sched_getaffinity(0))
    share = {n: ServerConfig(state_dir=tmp_path, workers=n).worker_threads for n in (1, 2, cores, 4 * cores)}
    assert share == {1: cores, 2: max(1, cores // 2), cores: 1, 4 * cores: 1}
