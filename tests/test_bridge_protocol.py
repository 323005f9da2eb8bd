"""bridge/protocol.py: signing, verification, replay window, size limits, versions, request content."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from filmscore.bridge import protocol as P
from filmscore.engine.errors import RequestError

KEY = bytes(range(32))


def pair() -> tuple[P.Session, P.Session]:
    return P.Session(KEY), P.Session(KEY)


def test_round_trip_with_idents_and_buffers():
    a, b = pair()
    msg = a.msg("render", {"output": "/x.wav", "midi": {"buffer": 0}}, buffers=[b"MThd\x00\x01"])
    frames = a.serialize(msg, [b"peer-1"])
    assert frames[1] == P.DELIM and len(frames[2]) == 64
    idents, got = b.recv(frames)
    assert idents == [b"peer-1"]
    assert got.header == msg.header and got.content == msg.content and got.buffers == [b"MThd\x00\x01"]
    assert got.header["version"] == P.PROTOCOL_VERSION and got.header["date"].endswith("+00:00")


@pytest.mark.parametrize("index", [2, 3, 4, 5, 6, 7])
def test_any_tampered_frame_is_rejected(index):
    a, b = pair()
    frames = a.serialize(a.msg("status", {"job_id": "abc"}, buffers=[b"payload"]))
    # frames: DELIM, HMAC, header, parent, metadata, content, buffer
    f = bytearray(frames[index - 1])
    f[len(f) // 2] ^= 0x01
    frames[index - 1] = bytes(f)
    with pytest.raises((P.SignatureError, P.ProtocolError)):
        b.recv(frames)


def test_unsigned_and_wrong_key_are_rejected():
    a, b = pair()
    frames = a.serialize(a.msg("hello"))
    with pytest.raises(P.SignatureError, match="unsigned"):
        b.recv(frames[:1] + [b""] + frames[2:])
    other = P.Session(bytes(32))
    with pytest.raises(P.SignatureError, match="does not match"):
        other.recv(frames)


def test_replay_is_rejected_and_resend_with_same_msg_id_is_not():
    a, b = pair()
    msg = a.msg("render", {"output": "/x.wav"})
    frames = a.serialize(msg)
    b.recv(frames)
    with pytest.raises(P.ReplayError, match="already received"):
        b.recv(frames)
    # A retry re-signs with a fresh date: a new message with the same msg_id (the server dedups by msg_id).
    retry = a.msg("render", {"output": "/x.wav"}, msg_id=msg.msg_id)
    assert b.recv(a.serialize(retry))[1].msg_id == msg.msg_id


def test_messages_outside_the_window_are_rejected():
    a, b = pair()
    for delta in (-120, 120):
        msg = a.msg("hello")
        msg.header["date"] = (P.utcnow() + timedelta(seconds=delta)).isoformat()
        with pytest.raises(P.ReplayError, match="replay window"):
            b.recv(a.serialize(msg))
    msg = a.msg("hello")
    msg.header["date"] = "2026-01-01T00:00:00"  # no offset
    with pytest.raises(P.ProtocolError, match="UTC offset"):
        b.recv(a.serialize(msg))


def test_forgotten_signatures_raise_the_floor():
    a = P.Session(KEY)
    b = P.Session(KEY, max_history=3)
    msgs = [a.serialize(a.msg("status")) for _ in range(5)]
    for f in msgs:
        b.recv(f)
    for f in msgs:  # the first two were forgotten: refused by the floor; the others by the history
        with pytest.raises(P.ReplayError):
            b.recv(f)


def test_size_limits():
    a = P.Session(KEY)
    b = P.Session(KEY, limits=P.Limits(max_message_bytes=10_000, max_json_bytes=2_000, max_buffers=1))
    with pytest.raises(P.MessageTooLarge, match="content is"):
        b.recv(a.serialize(a.msg("status", {"x": "y" * 3000})))
    with pytest.raises(P.MessageTooLarge, match="message is"):
        b.recv(a.serialize(a.msg("status", buffers=[b"z" * 20_000])))
    with pytest.raises(P.MessageTooLarge, match="buffers"):
        b.recv(a.serialize(a.msg("status", buffers=[b"1", b"2"])))


def test_malformed_frames_never_reach_a_handler():
    a, b = pair()
    with pytest.raises(P.ProtocolError, match="delimiter"):
        b.recv([b"x", b"y"])
    with pytest.raises(P.ProtocolError, match="at least 5"):
        b.recv([P.DELIM, b"sig"])
    # Correctly signed but not JSON / not an object / missing fields / wrong major version.
    for header in (b"\xff\xfe", b"[1,2]", json.dumps({"msg_id": "a"}).encode(),
                   json.dumps({"msg_id": "a", "msg_type": "hello", "version": "2.0", "session": "s",
                               "date": P.utcnow().isoformat()}).encode()):
        parts = [header, b"{}", b"{}", b"{}"]
        with pytest.raises(P.ProtocolError):
            b.recv([P.DELIM, a.sign(parts), *parts])
    parts = [json.dumps(a.msg("hello").header).encode(), b"{}", b"{}", b'{"x": NaN}']
    with pytest.raises(P.ProtocolError, match="JSON"):
        b.recv([P.DELIM, a.sign(parts), *parts])


def test_short_keys_are_refused():
    with pytest.raises(P.SignatureError):
        P.Session(b"")
    with pytest.raises(P.SignatureError):
        P.Session(b"short")


def test_version_negotiation():
    assert P.negotiate_version(["1.0"]) == "1.0"
    assert P.negotiate_version(["2.1", "1.3"]) == "1.0"
    for bad in (["1.0", "junk"], ["1"], [" 1.0"], ["\u0661.0"], ["1.0.0"], ["\u00b2"]):
        with pytest.raises(P.VersionError, match="not MAJOR.MINOR"):
            P.negotiate_version(bad)
    with pytest.raises(P.VersionError):
        P.negotiate_version(["2.0"])
    assert P.parse_hello({}) == P.PROTOCOL_VERSION


def test_render_params_round_trip_and_errors():
    content = {"output": "/o/cue.wav", "video": "/m/clip.mov", "start": {"value": 240, "rate": 24},
               "duration": {"value": 12, "rate": 1}, "midi": {"buffer": 0}, "seed": 7, "steps": 10,
               "hits": [{"value": 48000, "rate": 48000}], "scheduler": "ddim", "picture_dynamics": 0.25}
    p = P.RenderParams.from_content(content, n_buffers=1)
    assert p.picture_dynamics == 0.25 and P.RenderParams.from_content({"output": "/o.wav"}).picture_dynamics == 0.5
    assert p.start.to_seconds() == 10.0 and p.duration.to_seconds() == 12.0 and p.midi_buffer == 0
    assert p.hits[0].to_seconds() == 1.0
    assert P.RenderParams.from_content(p.to_content(), n_buffers=1) == p
    bad = [
        ({}, "'output' is required"),
        ({"output": "/o.wav", "sede": 1}, "unknown render field"),
        ({"output": "/o.wav", "seed": "1"}, "must be int"),
        ({"output": "/o.wav", "seed": True}, "got bool"),
        ({"output": "/o.wav", "steps": 2.5}, "must be int"),
        ({"output": "/o.wav", "picture_dynamics": "half"}, "picture_dynamics"),
        ({"output": "/o.wav", "start": 3.5}, "rational time"),
        ({"output": "/o.wav", "start": {"value": 1, "rate": 0}}, "rate must be > 0"),
        ({"output": "/o.wav", "midi": {"buffer": 1}}, "buffer 1 does not exist"),
        ({"output": "/o.wav", "timeline": {"path": "/t.otio"}}, "cue name or both in and out"),
        ({"output": "/o.wav", "video": "/v.mov", "timeline": {"path": "/t.otio", "cue": "1M1"}}, "not both"),
        ({"output": "/o.wav", "timeline": {"path": "/t.otio", "in": {"value": 5, "rate": 1},
                                           "out": {"value": 2, "rate": 1}}}, "after in"),
        ({"output": "/o\x00.wav"}, "NUL"),
    ]
    for c, why in bad:
        with pytest.raises(P.ProtocolError, match=why):
            P.RenderParams.from_content(c)
    # a value of the right JSON type but out of its range or choices: the render option's own error
    # (engine/options.py `RenderOptions.validate`), as the command line and the engine raise it
    with pytest.raises(RequestError, match="unknown scheduler 'plms'; choose one of ddim, dpmpp, euler"):
        P.RenderParams.from_content({"output": "/o.wav", "scheduler": "plms"})


def test_timeline_range_by_cue_or_in_out():
    p = P.RenderParams.from_content({"output": "/o.wav", "timeline": {"path": "/t.otio", "cue": "1M1"}})
    assert p.timeline.cue == "1M1" and p.timeline.in_time is None
    p = P.RenderParams.from_content({"output": "/o.wav", "timeline": {
        "path": "/t.otio", "in": {"value": 86400, "rate": 24}, "out": {"value": 86640, "rate": 24}}})
    assert p.timeline.out_time.to_seconds() - p.timeline.in_time.to_seconds() == 10.0


def test_small_request_parsers():
    assert P.parse_job_id({"job_id": "ab12"}, "status") == "ab12"
    with pytest.raises(P.ProtocolError, match="not a job id"):
        P.parse_job_id({"job_id": "../etc"}, "status")
    assert P.parse_list_jobs({"states": ["queued"], "limit": 5}) == (("queued",), 5, 0, False)
    with pytest.raises(P.ProtocolError, match="1..1000"):
        P.parse_list_jobs({"limit": 5000})
    with pytest.raises(P.ProtocolError, match="state"):
        P.parse_list_jobs({"states": ["done"]})
    assert P.parse_shutdown({"wait": True}) is True
    with pytest.raises(P.ProtocolError):
        P.parse_shutdown({"now": True})
    assert P.error_content(P.SignatureError("bad")) == {"status": "error", "ename": "SignatureError",
                                                        "evalue": "bad"}
