"""A render that fills the bridge's output disk (issue 16): a real `filmscore serve` whose output root is a small
tmpfs mounted in a private user+mount namespace (tests/small_fs.py's `run_in_small_fs`, as the CLI's full-disk tests
do). The job fails with the named `DiskFull` error (not libsndfile's "System error"), leaves no partial file, the
server keeps serving, and the journal records the job as failed.

The server and its client run inside the namespace (the tmpfs exists only there): this file's `__main__` is that
scenario, and prints what it saw as one JSON line; the test asserts on it and on the journal, which lives outside
the tmpfs and outlives the namespace.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from small_fs import run_in_small_fs

pytestmark = pytest.mark.timeout(600)

TMPFS = "256k"
"""The output root's size: the cue below (8 s of 48 kHz 24-bit audio, well over 1 MB) cannot fit, its JSON can."""


def scenario(root: Path, bundle: Path) -> dict:
    """Run inside the namespace, where `root / "out"` is the small tmpfs."""
    from filmscore.bridge.client import BridgeClient
    from filmscore.bridge.server.launch import launch_server

    out = root / "out"
    seen: dict = {"out_is_small": os.statvfs(out).f_blocks * os.statvfs(out).f_frsize <= 1 << 20}
    with launch_server(root / "state", media_roots=[root / "media"], output_roots=[out], bundle=bundle) as srv, \
            BridgeClient(srv.info) as c:
        job = c.render(out / "cue.wav", duration_s=8.0, steps=2, seed=3)
        st = c.wait(job, timeout_s=400)
        seen.update(job_id=job, state=st["state"], error=st["error"], left_in_out=sorted(os.listdir(out)))
        seen["status_after"] = c.status(job)["state"]  # round trips after the failure: the server still serves
        seen["hello_after"] = c.hello()["status"]
        seen["server_alive"] = srv.process.poll() is None
    return seen


def test_a_render_that_fills_the_output_disk_fails_as_disk_full(tmp_path):
    from bridge_support import bridge_bundle

    from filmscore.bridge.journal import Journal

    bundle = bridge_bundle(tmp_path / "bundle")
    for d in ("out", "media", "state"):
        (tmp_path / d).mkdir()
    proc = run_in_small_fs(tmp_path / "out", TMPFS, [sys.executable, __file__, str(tmp_path), str(bundle)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["out_is_small"], seen  # the scenario really ran on the small tmpfs
    assert seen["state"] == "failed", seen
    assert seen["error"].startswith("DiskFull: no space left on the device of "), seen
    assert "System error" not in seen["error"] or "DiskFull" in seen["error"]
    assert seen["left_in_out"] == [], seen  # no partial WAV, no half-published sidecar
    assert seen["status_after"] == "failed" and seen["hello_after"] == "ok" and seen["server_alive"], seen
    with Journal(tmp_path / "state") as j:  # outside the tmpfs: what a restarted server would read
        rec = j.get(seen["job_id"])
        assert rec is not None and rec.state == "failed" and rec.error == seen["error"]
        assert [e[0] for e in j.events(seen["job_id"])][-1] == "failed"


def test_a_full_disk_is_named_even_when_freeing_the_partial_file_left_room(tmp_path):
    """On a big disk the failed job's partial WAV is deleted before the failure is named, so free space no longer
    shows the full disk: the worker trusts the writer that met ENOSPC (the engine's FilmscoreError names it)."""
    import errno

    from filmscore.bridge.server.worker import _failure
    from filmscore.engine.errors import FilmscoreError
    from filmscore.engine.render import write_atomically

    def full(path: Path) -> None:
        path.write_bytes(b"RIFF")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with pytest.raises(FilmscoreError) as caught:
        write_atomically(tmp_path / "cue.wav", full)
    ename, message = _failure(caught.value, tmp_path / "cue.wav")
    assert (ename, message.split(" (")[0]) == ("DiskFull", f"no space left on the device of {tmp_path}")
    assert list(tmp_path.iterdir()) == []  # the temp file is gone
    assert _failure(FilmscoreError(f"{tmp_path}/cue.wav: cannot write (permission denied)"),
                    tmp_path / "cue.wav")[0] == "FilmscoreError"


if __name__ == "__main__":  # the scenario, inside the namespace (see the module docstring)
    print(json.dumps(scenario(Path(sys.argv[1]), Path(sys.argv[2]))), flush=True)
