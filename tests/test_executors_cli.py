"""`filmscore score --executor ray` against `--executor local`, as a user runs them: two CLI processes, the Ray one
starting its own Ray (one CPU per actor) and stopping it on exit. Same deliveries; no Ray process of the run left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install 'filmscore[ray]'")

from cli_support import CLI_ARGV  # noqa: E402
from executors_fixture import CUES, assert_same_delivery, make_reel  # noqa: E402

pytestmark = pytest.mark.slow


def _score(reel: Path, out: Path, bundle: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    argv = [*CLI_ARGV, "score", str(reel), "-o", str(out), "--seed", "11",
            "--steps", "3", "--bundle", str(bundle), "--json", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return proc, json.loads(stdout)


def _ray_processes_of(pid: int) -> list[str]:
    """Processes of the Ray session a driver with this pid started (its session folder ends with the pid)."""
    pattern = re.compile(rf"/ray/session_[0-9_-]+_{pid}(/|\b)")
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern.search(cmd):
            found.append(f"{entry.name}: {cmd[:120]}")
    return found


def test_score_cli_ray_delivers_what_local_delivers(tmp_path):
    if not os.path.isdir("/proc"):
        pytest.skip("the process check reads /proc")
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny", seed=0)
    reel = make_reel(tmp_path)
    _, local = _score(reel, tmp_path / "local", bundle)
    proc, ray_run = _score(reel, tmp_path / "ray", bundle, "--executor", "ray", "--num-cpus", "1")
    assert local["ok"] and ray_run["ok"]
    assert [c["status"] for c in ray_run["cues"]] == ["done"] * len(CUES)
    stems = [c["file_stem"] for c in local["cues"]]
    assert_same_delivery(tmp_path / "local", tmp_path / "ray", stems)
    manifest = json.loads((tmp_path / "ray" / "filmscore-batch.json").read_text())
    assert not any(e["run"]["worker"].startswith("local:") for e in manifest["cues"].values())
    deadline = time.monotonic() + 60
    while _ray_processes_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes_of(proc.pid)
