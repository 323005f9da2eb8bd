"""bridge/journal.py: job states in SQLite WAL, idempotent adds, retries, recovery after a restart."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from filmscore.bridge.journal import (Journal, JournalError, atomic_write_bytes, iter_partial_files,
                                      partial_path)

REQ = {"output": "/o/a.wav", "duration_s": 3.0}


def test_lifecycle_and_events(tmp_path):
    with Journal(tmp_path) as j:
        rec, created = j.add("a1", REQ, {"output": "/o/a.wav"}, request_msg_id="m1", session="s")
        assert created and rec.state == "queued" and rec.attempts == 0
        assert j.mark_started("a1").attempts == 1
        with pytest.raises(JournalError, match="not queued"):
            j.mark_started("a1")
        done = j.mark_ended("a1", "finished", result={"output": "/o/a.wav", "n_samples": 144000})
        assert done.state == "finished" and done.result["n_samples"] == 144000
        with pytest.raises(JournalError, match="already ended"):
            j.mark_ended("a1", "failed", error="x")
        assert [e[0] for e in j.events("a1")] == ["queued", "running", "finished"]
        assert j.counts()["finished"] == 1
        assert sqlite3.connect(j.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_same_request_message_gives_the_same_job(tmp_path):
    with Journal(tmp_path) as j:
        first, _ = j.add("a1", REQ, {}, request_msg_id="m1")
        again, created = j.add("b2", REQ, {}, request_msg_id="m1")
        assert not created and again.job_id == first.job_id
        assert len(j.list()) == 1


def test_one_retry_then_failure(tmp_path):
    with Journal(tmp_path, max_attempts=2) as j:
        j.add("a1", REQ, {})
        j.mark_started("a1")
        assert j.requeue("a1", "worker died").state == "queued"
        j.mark_started("a1")
        rec = j.requeue("a1", "worker died")
        assert rec.state == "failed" and "no attempts left" in rec.error
        # A stop that is not the job's fault does not use up an attempt.
        j.add("b2", REQ, {})
        j.mark_started("b2")
        assert j.requeue("b2", "server stopped", count_attempt=False).attempts == 0


def test_recover_after_a_killed_server(tmp_path):
    # A real separate process opens the journal, starts jobs and dies without closing anything.
    script = f"""
import os
from filmscore.bridge.journal import Journal
j = Journal({str(tmp_path)!r})
for i in range(3):
    j.add(f"j{{i}}", {{"output": f"/o/{{i}}.wav"}}, {{}})
j.mark_started("j0"); j.mark_ended("j0", "finished", result={{"ok": True}})
j.mark_started("j1")
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False)
    with Journal(tmp_path) as j:
        recovered = j.recover()
        assert [(r.job_id, r.state) for r in recovered] == [("j1", "queued")]
        assert [r.job_id for r in j.list(("queued",))] == ["j1", "j2"]  # queue order kept
        assert j.get("j0").result == {"ok": True}


def test_one_server_per_journal(tmp_path):
    with Journal(tmp_path):
        with pytest.raises(JournalError, match="in use"):
            Journal(tmp_path)
    Journal(tmp_path).close()  # released on close


def test_atomic_write_and_partial_names(tmp_path):
    out = tmp_path / "cue.wav"
    atomic_write_bytes(out, b"RIFF")
    assert out.read_bytes() == b"RIFF" and [p.name for p in tmp_path.iterdir()] == ["cue.wav"]
    part = partial_path(out, "ab12")
    assert part.parent == out.parent and part.name == ".cue.ab12.partial.wav"
    part.write_bytes(b"x")
    (tmp_path / "..cue.ab12.partial.wav.77.tmp").write_bytes(b"x")
    (tmp_path / ".cue.zz99.partial.wav").write_bytes(b"x")
    assert sorted(p.name for p in iter_partial_files(out, "ab12")) == ["..cue.ab12.partial.wav.77.tmp",
                                                                        ".cue.ab12.partial.wav"]
    assert [p.name for p in iter_partial_files(out, "ab12", temps=False)] == [".cue.ab12.partial.wav"]
