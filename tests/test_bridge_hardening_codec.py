"""bridge/protocol.py hardening, in process: the strict codec, header and version checks, the replay floor, the
rate-limited log filter and the journal's loss detection and per-session duplicates."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from filmscore.bridge import protocol as P
from filmscore.bridge.journal import Journal, JournalCorrupt, JournalLost
from filmscore.bridge.protocol_testing import crash_classes, header, signed
from filmscore.bridge.server.limits import ConnectionCaps, RepeatFilter

KEY = bytes(range(32))
CRASH_CLASSES = crash_classes()


@pytest.mark.parametrize("case", sorted(CRASH_CLASSES))
def test_unencodable_values_are_refused_on_the_way_in(case):
    hdr, content = crash_classes()[case]
    a, b = P.Session(KEY), P.Session(KEY)
    with pytest.raises(P.ProtocolError) as e:
        b.deserialize(signed(a, hdr, content))
    assert e.value.ename in ("EncodingError", "ProtocolError"), e.value
    if "surrogate" in case or "1e" in case or "NaN" in case or "Infinity" in case or "nested" in case:
        assert e.value.ename == "EncodingError", (case, e.value)
    json.dumps(P.error_content(e.value)).encode("utf-8")  # the error itself always encodes


@pytest.mark.parametrize("version", ["1", "1.999", " 1.0", "\u0661.0", "1.0 ", "+1.0", "1.0.0", "01.0x", "2.0"])
def test_header_versions_must_be_one_this_peer_speaks(version):
    a, b = P.Session(KEY), P.Session(KEY)
    with pytest.raises(P.VersionError):
        b.deserialize(signed(a, header(version=version)))


def test_header_strings_must_be_short_and_printable():
    a, b = P.Session(KEY), P.Session(KEY)
    for field, value in (("msg_id", "x" * 129), ("session", "a\nb"), ("msg_type", ""), ("date", "\x00")):
        with pytest.raises(P.ProtocolError, match=field):
            b.deserialize(signed(a, header(**{field: value})))
    for date in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "not a date", "2026-01-01T00:00:00"):
        with pytest.raises(P.ProtocolError):  # a named error (ProtocolError or ReplayError), never a crash
            b.deserialize(signed(a, header(date=date)))


def test_hello_versions_are_strict():
    for offered in (["\u00b2"], ["1.0", "x"], ["1"]):
        with pytest.raises(P.VersionError):
            P.parse_hello({"protocol_versions": offered})
    assert P.parse_hello({"protocol_versions": ["1.7", "2.0"]}) == "1.0"


def test_out_of_range_numbers_get_named_errors():
    with pytest.raises(P.ProtocolError, match="offset"):
        P.parse_list_jobs({"offset": 2**63})
    with pytest.raises(P.ProtocolError, match="out of range"):
        P.RenderParams.from_content({"output": "/o.wav", "duration": {"value": 10**400, "rate": 1}})
    with pytest.raises(P.ProtocolError, match="out of range"):
        P.RenderParams.from_content({"output": "/o.wav", "hits": [{"value": 1e300, "rate": 1e-300}]})


def test_encoding_is_total_or_named():
    s = P.Session(KEY)
    for bad in ({"x": float("nan")}, {"x": "\ud800"}, {"\udc00": 1}):
        with pytest.raises(P.EncodingError):
            s.serialize(s.msg("status_reply", bad))
        fixed = P.make_encodable(bad)
        s.serialize(s.msg("status_reply", fixed))  # escaped, never raises
    assert P.make_encodable({"p": "/a/\ud800.wav"}) == {"p": "/a/\\ud800.wav"}
    assert P.safe_header({"msg_id": "\ud800", "session": "ok", "x": 1}) == {"session": "ok"}


def test_messages_signed_before_the_server_started_are_replays(monkeypatch):
    from datetime import datetime, timedelta, timezone

    # An injected clock, each reading a second after the last: the restart comes strictly after the capture and
    # the fresh message strictly after the restart, whatever the resolution of the machine's clock (a sleep did it).
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    monkeypatch.setattr(P, "utcnow", clock)
    client = P.Session(KEY)
    captured = client.serialize(client.msg("shutdown"))[1:]  # signed now, sent to the old server
    restarted = P.Session(KEY, not_before_s=clock().timestamp())  # same key, no memory of the old signatures
    with pytest.raises(P.ReplayError, match="before this server started"):
        restarted.deserialize(captured)
    restarted.deserialize(client.serialize(client.msg("status"))[1:])  # a fresh message passes


def test_repeat_filter_holds_back_floods_and_says_so():
    now = [0.0]
    f = RepeatFilter(burst=5, window_s=10.0, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    passed = sum(f.filter(rec("socket.accept() out of system resource")) for _ in range(12_000))
    assert passed == 5
    assert f.filter(rec("another message"))
    now[0] = 11.0
    r = rec("socket.accept() out of system resource")
    assert f.filter(r) and "11995 similar lines held back" in r.getMessage()


def test_connection_caps_leave_descriptors_for_the_server():
    caps = ConnectionCaps.for_limit(1024)
    # two ZeroMQ sockets at their cap plus the WebSocket panels (4 descriptors each) stay under the limit
    assert 2 * caps.per_socket + 4 * caps.websocket + 128 <= 1024


def test_duplicates_are_per_session(tmp_path):
    with Journal(tmp_path) as j:
        a, created_a = j.add("job1", {"output": "/o/1.wav"}, {}, request_msg_id="r-1", session="panel-A")
        b, created_b = j.add("job2", {"output": "/o/2.wav"}, {}, request_msg_id="r-1", session="panel-B")
        again, created_again = j.add("job3", {"output": "/o/1.wav"}, {}, request_msg_id="r-1", session="panel-A")
        assert created_a and created_b and not created_again
        assert a.job_id != b.job_id and again.job_id == a.job_id


def test_schema_1_journal_is_migrated(tmp_path):
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.executescript("""CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
        request_msg_id TEXT UNIQUE, session TEXT, state TEXT NOT NULL, request TEXT NOT NULL, params TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL, started REAL, ended REAL,
        result TEXT, error TEXT);
        INSERT INTO jobs(job_id, request_msg_id, session, state, request, params, created, updated)
        VALUES ('old1', 'r-1', 'sA', 'finished', '{}', '{}', 1, 1);""")
    db.commit()
    db.close()
    with Journal(tmp_path) as j:
        assert j.get("old1").state == "finished"
        _, created = j.add("new1", {"output": "/o.wav"}, {}, request_msg_id="r-1", session="sB")
        assert created


def _journal_with_jobs(tmp_path, n: int = 6) -> None:
    with Journal(tmp_path) as j:
        for i in range(n):
            j.add(f"job{i}", {"output": f"/o/{i}.wav"}, {}, request_msg_id=f"m{i}", session="s")


def test_truncated_journal_is_detected_and_copied_aside(tmp_path):
    _journal_with_jobs(tmp_path)
    (tmp_path / "journal.sqlite").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"journal.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(JournalLost, match="ends at job #0 but #6 was committed") as e:
        Journal(tmp_path)
    assert "a copy is in" in str(e.value)
    assert [p.name for p in tmp_path.glob("lost-*/journal.seq")] == ["journal.seq"]


def test_deleted_wal_after_a_crash_is_detected(tmp_path):
    # A child process adds jobs and dies without a checkpoint: the jobs live only in the -wal.
    import subprocess
    import sys

    code = ("import os\nfrom filmscore.bridge.journal import Journal\n"
            f"j = Journal({str(tmp_path)!r})\n"
            "for i in range(6): j.add(f'job{i}', {'output': '/o.wav'}, {}, request_msg_id=f'm{i}', session='s')\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "journal.sqlite-wal").stat().st_size > 0
    (tmp_path / "journal.sqlite-wal").unlink()
    (tmp_path / "journal.sqlite-shm").unlink(missing_ok=True)
    with pytest.raises(JournalLost, match="but #6 was committed"):
        Journal(tmp_path)


def test_corrupt_journal_is_a_named_error(tmp_path):
    _journal_with_jobs(tmp_path, 200)
    path = tmp_path / "journal.sqlite"
    data = bytearray(path.read_bytes())
    page = 4096
    for i in range(len(data) - page + 100, len(data) - 100):  # flip the bytes of the last page
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="is corrupt"):
        Journal(tmp_path)
