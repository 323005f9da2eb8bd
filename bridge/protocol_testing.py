"""Hostile frames for the protocol's tests and benches: signed multipart frames built from raw JSON texts (so they
can hold what `Session.msg` would refuse) and the single requests that used to stop a server (the crash classes).

Shared by tests/test_bridge_hardening_codec.py (in process), tests/test_bridge_hardening.py (against a live server)
and bench/bench_bridge_hardening.py (the fuzzer), so all three send the same frames. Nothing here needs pytest.
"""

from __future__ import annotations

import json

from . import protocol as P


def signed(session: P.Session, header: str, content: str = "{}", parent: str = "{}", metadata: str = "{}",
           buffers: tuple[bytes, ...] = ()) -> list[bytes]:
    """Frames after the delimiter, signed, from raw JSON texts (so they can hold what `Session.msg` would refuse)."""
    parts = [header.encode(), parent.encode(), metadata.encode(), content.encode(), *buffers]
    return [session.sign(parts), *parts]


def header(**over: object) -> str:
    """A valid header's JSON text (a status message dated now), with `over`'s fields replaced or added."""
    h = {"msg_id": "m1", "msg_type": "status", "version": "1.0", "session": "s1",
         "date": P.utcnow().isoformat()} | over
    return json.dumps(h)


def crash_classes() -> dict[str, tuple[str, str]]:
    """Each: a header and a content text as an attacker with the key would send them (fresh ids and dates). A
    render's paths start with "OUT/": callers put their output root there."""
    h = header
    return {
        "msg_id 1e400": (h(msg_id=P.new_id()).replace('"msg_id": "', '"x": "', 1)[:-1] + ', "msg_id": 1e400}', "{}"),
        "msg_id [1e999]": (h(msg_id=P.new_id()).replace('"msg_id": "', '"x": "', 1)[:-1] + ', "msg_id": [1e999]}',
                           "{}"),
        "extra header field 1e400": (h(msg_id=P.new_id())[:-1] + ', "x": 1e400}', "{}"),
        "msg_id lone surrogate": (h(msg_id="\ud800"), "{}"),
        "session lone surrogate": (h(msg_id=P.new_id(), session="\udfff"), "{}"),
        "header key lone surrogate": (h(msg_id=P.new_id())[:-1] + ', "\\ud800": 1}', "{}"),
        "output path lone surrogate": (h(msg_id=P.new_id(), msg_type="render"),
                                       '{"output":"OUT/\\ud800.wav","duration":{"value":2,"rate":1}}'),
        "video path lone surrogate": (h(msg_id=P.new_id(), msg_type="render"),
                                      '{"output":"OUT/a.wav","video":"/x\\udc80"}'),
        "midi path lone surrogate": (h(msg_id=P.new_id(), msg_type="render"),
                                     '{"output":"OUT/a.wav","midi":"/x\\udc80"}'),
        "content NaN": (h(msg_id=P.new_id()), '{"job_id":NaN}'),
        "content -Infinity": (h(msg_id=P.new_id()), '{"x":-Infinity}'),
        "content nested 40 deep": (h(msg_id=P.new_id()), '{"x":' + "[" * 40 + "]" * 40 + "}"),
        "content nested 100000 deep": (h(msg_id=P.new_id()), '{"x":' + "[" * 100_000 + "]" * 100_000 + "}"),
    }
