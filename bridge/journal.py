"""The job journal: every render job and each change of its state, in SQLite (WAL mode).

The journal is the server's memory across crashes. A job is written before it is acknowledged, so an acknowledged
job is never lost; a request's `msg_id` is unique within its sender's session, so a client that re-sends after a
lost reply gets the same job back, never a duplicate (and two clients that both use `msg_id` "r-1" each get their
own job). When a server starts on an existing journal, jobs it finds `running` were interrupted with
it: they go back to the queue if they have an attempt left (`max_attempts`, default 2 = one retry), else fail.

WAL with `synchronous=NORMAL` survives the server process dying at any point (a power cut may lose the last
commits, never corrupt the file). One server owns a journal at a time (`fcntl` lock on `LOCK`).

Loss is detected, never silent: `journal.seq` (written atomically after every added job) holds the highest job
sequence number ever committed. A journal that holds less (truncated, its `-wal` deleted after a crash, replaced)
or that fails SQLite's integrity check is copied aside to `lost-<time>/` and refused with `JournalLost` /
`JournalCorrupt`; the server does not start on it until someone decides (the error says how).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError

from .protocol import JOB_STATES

TERMINAL_STATES = ("finished", "failed", "cancelled")

SCHEMA_VERSION = 2
_JOBS_TABLE = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- queue order
    job_id TEXT NOT NULL UNIQUE,
    request_msg_id TEXT,                      -- idempotency: one job per request message per session
    session TEXT,
    state TEXT NOT NULL,
    request TEXT NOT NULL,                    -- engine RenderRequest as JSON
    params TEXT NOT NULL,                     -- the render content as received (wire form)
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    ended REAL,
    result TEXT,
    error TEXT,
    UNIQUE(session, request_msg_id)
);
"""
_SCHEMA = _JOBS_TABLE + """
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    time REAL NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, id);
"""


class JournalError(FilmscoreError):
    """A journal that cannot be opened, is locked by another server, or was asked an impossible state change."""

    ename = "JournalError"


class JournalLost(JournalError):
    """The journal holds fewer jobs than were committed to it (truncated, its WAL deleted, replaced)."""

    ename = "JournalLost"


class JournalCorrupt(JournalError):
    """The journal fails SQLite's integrity check, or a read of it fails."""

    ename = "JournalCorrupt"


@dataclass
class JobRecord:
    """One job as the journal holds it. Times are POSIX seconds."""

    job_id: str
    state: str
    request: dict[str, Any]
    params: dict[str, Any]
    attempts: int
    created: float
    updated: float
    started: float | None = None
    ended: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    request_msg_id: str | None = None
    session: str | None = None
    seq: int = 0

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """The record a `status` reply carries; `full=False` (`list_jobs`) keeps only the result's summary (the
        `result` request gives the rest: metadata, timings)."""
        result = self.result
        if result is not None and not full:
            result = {k: result.get(k) for k in ("output", "duration_s", "n_samples", "sample_rate", "seed")}
        return {"job_id": self.job_id, "kind": self.request.get("kind", "render"), "state": self.state,
                "output": self.request.get("output"),
                "attempts": self.attempts, "created": self.created, "updated": self.updated,
                "started": self.started, "ended": self.ended, "result": result, "error": self.error}


_COLUMNS = ("seq", "job_id", "request_msg_id", "session", "state", "request", "params", "attempts", "created",
            "updated", "started", "ended", "result", "error")


def _row(row: tuple) -> JobRecord:
    d = dict(zip(_COLUMNS, row))
    for k in ("request", "params", "result"):
        d[k] = json.loads(d[k]) if d[k] is not None else None
    return JobRecord(**d)


class Journal:
    """SQLite job journal in `state_dir/journal.sqlite`, owned by one server at a time."""

    def __init__(self, state_dir: Path, *, max_attempts: int = 2) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_attempts = max_attempts
        self._lock_fd = os.open(self.state_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalError(f"journal {self.state_dir} is in use by another filmscore server") from None
        self.path = self.state_dir / "journal.sqlite"
        self.seq_path = self.state_dir / "journal.seq"
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        expected = _read_seq(self.seq_path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            check = self._db.execute("PRAGMA integrity_check").fetchall()
            if [tuple(r) for r in check] != [("ok",)]:
                raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in check[:3]))
            self._migrate()
            self._db.executescript(_SCHEMA)
            have = self._db.execute("SELECT coalesce(max(seq), 0) FROM jobs").fetchone()[0]
            have = max(have, self._db.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name='jobs'")
                       .fetchone()[0])
        except sqlite3.DatabaseError as e:
            copy = self._copy_aside()
            raise JournalCorrupt(f"journal {self.path} is corrupt ({e}); a copy is in {copy}. Move the journal "
                                 "(journal.sqlite*, journal.seq) away to start with an empty one") from None
        if have < expected:
            copy = self._copy_aside()
            raise JournalLost(f"journal {self.path} has lost jobs: it ends at job #{have} but #{expected} was "
                              f"committed (file truncated or its -wal deleted?); a copy is in {copy}. Restore it, "
                              "or delete journal.seq to accept the loss and start")
        self._committed_seq = max(have, expected)

    def _migrate(self) -> None:
        """Schema 1 made `request_msg_id` unique on its own (duplicates were global); 2 scopes it to the session.
        SQLite cannot drop a constraint, so the table is rebuilt once, in one transaction."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='jobs'").fetchone()
        if exists and version < 2:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("ALTER TABLE jobs RENAME TO jobs_v1")
                self._db.execute("DROP INDEX IF EXISTS jobs_state")
                self._db.execute(_JOBS_TABLE)
                self._db.execute(f"INSERT INTO jobs({','.join(_COLUMNS)}) SELECT {','.join(_COLUMNS)} FROM jobs_v1")
                self._db.execute("DROP TABLE jobs_v1")
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        elif not exists:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _copy_aside(self) -> Path:
        """Copy the journal's files (as they are) to `lost-<time>/` before refusing them."""
        dest = self.state_dir / f"lost-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        dest.mkdir(mode=0o700, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                shutil.copy2(src, dest / src.name)
        if self.seq_path.exists():
            shutil.copy2(self.seq_path, dest / self.seq_path.name)
        return dest

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None  # type: ignore[assignment]
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def job_dir(self, job_id: str) -> Path:
        """A private folder for a job's inputs that arrived inline (e.g. a MIDI theme sent as bytes)."""
        return self.state_dir / "jobs" / job_id

    def remove_job_inputs(self, job_id: str) -> None:
        """Delete a job's inline inputs (called when the job ends: they are needed only to run it)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def remove_ended_inputs(self) -> int:
        """Delete the inline inputs of every job that is no longer queued or running (left by a server that died
        between a job's end and the deletion). Returns how many folders were removed."""
        root = self.state_dir / "jobs"
        if not root.is_dir():
            return 0
        live = {r.job_id for r in self.list(("queued", "running"), limit=1_000_000)}
        n = 0
        for d in root.iterdir():
            if d.name not in live:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n

    # -- writing -------------------------------------------------------------------------------------------------
    def _event(self, job_id: str, state: str, now: float, detail: str | None) -> None:
        self._db.execute("INSERT INTO events(job_id, state, time, detail) VALUES (?,?,?,?)",
                         (job_id, state, now, detail))

    def add(self, job_id: str, request: dict[str, Any], params: dict[str, Any], *,
            request_msg_id: str | None = None, session: str | None = None) -> tuple[JobRecord, bool]:
        """Insert a queued job. Returns (record, created): `created` is False when a job for `request_msg_id`
        already exists, and that job is returned instead (a client re-sent its request)."""
        if request_msg_id is not None:
            existing = self.by_request(request_msg_id, session)
            if existing is not None:
                return existing, False
        now = time.time()
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO jobs(job_id, request_msg_id, session, state, request, params, attempts, created, updated)"
                " VALUES (?,?,?,?,?,?,0,?,?)",
                (job_id, request_msg_id, session, "queued", json.dumps(request), json.dumps(params), now, now))
            self._event(job_id, "queued", now, None)
        # After the commit: the marker may lag the journal (a crash here), never lead it, so it never cries wolf.
        self._committed_seq = max(self._committed_seq, int(cur.lastrowid or 0))
        atomic_write_bytes(self.seq_path, f"{self._committed_seq}\n".encode())
        rec = self.get(job_id)
        if rec is None:  # pragma: no cover - the insert above committed
            raise JournalError(f"job {job_id} vanished after insert")
        return rec, True

    def mark_started(self, job_id: str) -> JobRecord:
        now = time.time()
        with self._tx():
            cur = self._db.execute("UPDATE jobs SET state='running', attempts=attempts+1, started=?, updated=? "
                                   "WHERE job_id=? AND state='queued'", (now, now, job_id))
            if cur.rowcount != 1:
                raise JournalError(f"job {job_id} is not queued; it cannot start")
            self._event(job_id, "running", now, None)
        return self._must(job_id)

    def mark_ended(self, job_id: str, state: str, *, result: dict[str, Any] | None = None,
                   error: str | None = None) -> JobRecord:
        """Move a job to a terminal state (`finished`, `failed`, `cancelled`)."""
        if state not in TERMINAL_STATES:
            raise JournalError(f"{state!r} is not a terminal state ({', '.join(TERMINAL_STATES)})")
        now = time.time()
        with self._tx():
            cur = self._db.execute(
                "UPDATE jobs SET state=?, result=?, error=?, ended=?, updated=? WHERE job_id=? AND state IN "
                "('queued','running')",
                (state, json.dumps(result) if result is not None else None, error, now, now, job_id))
            if cur.rowcount != 1:
                raise JournalError(f"job {job_id} has already ended; it cannot become {state}")
            self._event(job_id, state, now, error)
        return self._must(job_id)

    def requeue(self, job_id: str, reason: str, *, count_attempt: bool = True) -> JobRecord:
        """Put a running job back in the queue (its worker died, or the server stopped). With `count_attempt`
        and no attempts left, the job fails instead. The job keeps its place in the queue (its `seq`)."""
        rec = self._must(job_id)
        if rec.state != "running":
            raise JournalError(f"job {job_id} is {rec.state}, not running; it cannot be re-queued")
        if count_attempt and rec.attempts >= self.max_attempts:
            return self.mark_ended(job_id, "failed", error=f"{reason}; no attempts left ({rec.attempts} made)")
        now = time.time()
        with self._tx():
            self._db.execute("UPDATE jobs SET state='queued', attempts=attempts-?, updated=? WHERE job_id=?",
                             (0 if count_attempt else 1, now, job_id))
            self._event(job_id, "queued", now, reason)
        return self._must(job_id)

    def recover(self) -> list[JobRecord]:
        """After a restart: jobs left `running` by the previous server were interrupted with it. Re-queue those with
        an attempt left, fail the others. Returns the affected records."""
        out = []
        for rec in self.list(("running",), limit=1_000_000):
            out.append(self.requeue(rec.job_id, "interrupted: the server stopped while it ran"))
        return out

    # -- reading -------------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return _row(row) if row else None

    def by_request(self, request_msg_id: str, session: str | None = None) -> JobRecord | None:
        """The job made for message `request_msg_id` of `session` (a msg_id is unique only within its session)."""
        row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE request_msg_id=? AND session IS ?",
                               (request_msg_id, session)).fetchone()
        return _row(row) if row else None

    def list(self, states: tuple[str, ...] = JOB_STATES, limit: int = 100, offset: int = 0,
             newest_first: bool = False) -> list[JobRecord]:
        """Jobs in `states`, oldest first (queue order) or newest first."""
        marks = ",".join("?" * len(states))
        order = "DESC" if newest_first else "ASC"
        rows = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE state IN ({marks}) ORDER BY seq "
                                f"{order} LIMIT ? OFFSET ?", (*states, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def events(self, job_id: str) -> list[tuple[str, float, str | None]]:
        """(state, time, detail) of every change of one job, in order."""
        return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
            "SELECT state, time, detail FROM events WHERE job_id=? ORDER BY id", (job_id,))]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        return {s: 0 for s in JOB_STATES} | {s: n for s, n in rows}

    def _must(self, job_id: str) -> JobRecord:
        rec = self.get(job_id)
        if rec is None:
            raise JournalError(f"no job {job_id} in the journal")
        return rec

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self._db)


def _read_seq(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError):
        return 0  # unreadable marker: nothing to compare against (the journal's own checks still run)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and `os.replace`: readers see the old file or the
    whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def iter_partial_files(output: Path, job_id: str, *, temps: bool = True) -> Iterator[Path]:
    """Files a worker may have left for `job_id` beside `output` (see `partial_path`); with `temps`, also the
    engine's own temp files for them (`.<name>.<pid>.tmp`)."""
    output = Path(output)
    if output.parent.is_dir():
        yield from output.parent.glob(f".{output.stem}.{job_id}.partial*")
        if temps:
            yield from output.parent.glob(f"..{output.stem}.{job_id}.partial*")


def partial_path(output: Path, job_id: str) -> Path:
    """Where a worker renders before renaming into `output`: same folder (so the rename is atomic), hidden, and
    named for its job so a crashed job's leftovers can be found and removed."""
    output = Path(output)
    return output.with_name(f".{output.stem}.{job_id}.partial{output.suffix}")
