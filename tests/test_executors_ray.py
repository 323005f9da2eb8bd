"""The Ray executor on a local Ray (two CPUs, two half-CPU actors) against the local executor: the same timeline
scored both ways delivers the same files; a rerun renders nothing; an actor killed mid-cue has its cue rendered by
another; inputs shipped through the object store give the same audio; an unreachable cluster is a one-line error
that changes nothing on disk, and so is a cluster where no actor can start; the bridge's Ray renderer writes the
same WAV as the engine in this process. The renders use a tiny seeded bundle, so each cue takes about a second."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install 'filmscore[ray]'")

from cli_support import CLI_ARGV  # noqa: E402
from executors_fixture import (CUES, assert_same_delivery, bwf_without_origination, descendants,  # noqa: E402
                               make_reel)

from filmscore.bridge.executors.ray_executor import RayExecutor, RayOptions  # noqa: E402
from filmscore.bridge.timelines.batch import MANIFEST_NAME, ScoreOptions, score_timeline  # noqa: E402
from filmscore.bridge.timelines.cues import read_cues  # noqa: E402
from filmscore.bridge.timelines.files import read_timeline  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with two CPUs for this module; shut down after it, leaving no Ray process behind."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the process checks read /proc")
    before = set(descendants(os.getpid()))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024,
             namespace="filmscore-tests")
    yield
    ray.shutdown()
    deadline = time.monotonic() + 60
    left = {}
    while time.monotonic() < deadline:
        left = {p: c for p, c in descendants(os.getpid()).items() if p not in before and "ray" in c.lower()}
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"Ray processes left after shutdown: {left}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from filmscore.engine.bundle_testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0)


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Path:
    """A folder the actors' render looks at: `STEM.hold` there makes the render of cue STEM wait (after writing
    `STEM.PID.started`) until the file is removed, so a test can kill an actor while it is inside a cue."""
    return tmp_path_factory.mktemp("gate")


def gated_render(gate: Path):
    from filmscore.engine.render import render_cue

    def render(request, **kw):
        stem = Path(request.output).stem
        hold = gate / f"{stem}.hold"
        if hold.exists():
            (gate / f"{stem}.{os.getpid()}.started").write_text("")
            deadline = time.monotonic() + 600
            while hold.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return render_cue(request, **kw)

    return render


@pytest.fixture(scope="module")
def executor(ray_cluster, bundle, gate):
    import cloudpickle

    # The actors cannot import this test module: its render function travels by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Two actors of half a CPU: the other CPU stays free for the bridge renderer's own actor (last test).
    ex = RayExecutor(RayOptions(num_cpus=0.5, actors=2), bundle=bundle, render=gated_render(gate))
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def reel(tmp_path_factory) -> Path:
    return make_reel(tmp_path_factory.mktemp("reel"))


def options(bundle: Path, **kw) -> ScoreOptions:
    return ScoreOptions(seed=11, steps=3, bundle=bundle, **kw)


@pytest.fixture(scope="module")
def local_run(reel, bundle) -> Path:
    cl = read_cues(read_timeline(reel))
    out = reel.parent / "local"
    result = score_timeline(cl, cl.cues, out, options(bundle))
    assert result.ok, [o.message for o in result.outcomes]
    return out


def _events(log: list):
    return lambda event, cue, index, total, message: log.append((event, cue.file_stem, message))


def test_ray_delivers_what_local_delivers_and_a_rerun_renders_nothing(reel, bundle, executor, local_run):
    cl = read_cues(read_timeline(reel))
    out = reel.parent / "ray"
    log: list = []
    result = score_timeline(cl, cl.cues, out, options(bundle), executor=executor, on_cue=_events(log))
    assert result.ok, [o.message for o in result.outcomes]
    assert [o.status for o in result.outcomes] == ["done"] * len(CUES)
    stems = [c.file_stem for c in cl.cues]
    assert_same_delivery(local_run, out, stems)
    # Two actors, cues longest-first: the two longest start before the others.
    starts = [stem for event, stem, _ in log if event == "start"]
    by_length = sorted(CUES, key=lambda n: -CUES[n][1])
    assert set(starts[:2]) == set(by_length[:2]) and sorted(starts) == sorted(stems)
    workers = {json.loads((out / MANIFEST_NAME).read_text())["cues"][s]["run"]["worker"] for s in stems}
    assert all(not w.startswith("local:") for w in workers)
    # The scored timeline places the same files at the same times.
    assert (out / "reel.scored.otio").read_text().replace(str(out), "OUT") == \
        (local_run / "reel.scored.otio").read_text().replace(str(local_run), "OUT")

    # A rerun: every cue is already there with the same settings; nothing is rendered, nothing rewritten.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    log.clear()
    again = score_timeline(cl, cl.cues, out, options(bundle), executor=executor, on_cue=_events(log))
    assert [o.status for o in again.outcomes] == ["skipped"] * len(CUES)
    assert [e for e, _, _ in log] == ["skip"] * len(CUES)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == stamps
    # One WAV lost: only that cue renders again, to the same bytes.
    (out / "2M1.wav").unlink()
    log.clear()
    third = score_timeline(cl, cl.cues, out, options(bundle), executor=executor, on_cue=_events(log))
    assert [stem for e, stem, _ in log if e == "start"] == ["2M1"] and third.ok
    assert bwf_without_origination(out / "2M1.wav") == bwf_without_origination(local_run / "2M1.wav")


def test_an_actor_killed_mid_cue_has_its_cue_rendered_by_another(reel, bundle, executor, gate, local_run):
    cl = read_cues(read_timeline(reel))
    out = reel.parent / "killed"
    hold = gate / "1M2.hold"
    hold.write_text("")
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            started = list(gate.glob("1M2.*.started"))
            if started:
                pid = int(started[0].name.split(".")[1])
                os.kill(pid, signal.SIGKILL)  # the actor dies inside the cue's render
                killed.append(pid)
                started[0].unlink()
                hold.unlink()  # the retry renders straight through
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    log: list = []
    try:
        result = score_timeline(cl, cl.cues, out, options(bundle), executor=executor, on_cue=_events(log))
    finally:
        hold.unlink(missing_ok=True)
        thread.join(5)
    assert killed, "the held cue never started"
    assert result.ok, [o.message for o in result.outcomes]
    retries = [m for e, stem, m in log if e == "retry" and stem == "1M2"]
    assert len(retries) == 1 and f":{killed[0]} died" in retries[0] and "attempt 2 of 3" in retries[0]
    entry = json.loads((out / MANIFEST_NAME).read_text())["cues"]["1M2"]
    assert entry["status"] == "done" and entry["run"]["attempt"] == 2
    assert not entry["run"]["worker"].endswith(f":{killed[0]}")
    assert_same_delivery(local_run, out, [c.file_stem for c in cl.cues])
    assert executor.actors_started == 3  # two at start, one replacing the killed one


def test_inputs_shipped_through_the_object_store_render_the_same(reel, bundle, executor, local_run):
    from dataclasses import replace

    from filmscore.bridge.timelines.batch import cue_task

    cl = read_cues(read_timeline(reel))
    cue = cl.select(["2M1"])[0]  # spans the cut: both media files
    work = reel.parent / "shipped-work"
    work.mkdir()
    task = cue_task(cue, options(bundle), work, "reel")
    executor.options = replace(executor.options, ship_inputs=True)
    try:
        events = list(executor.run([task]))
    finally:
        executor.options = replace(executor.options, ship_inputs=False)
    done = events[-1]
    assert done.kind == "done", done
    media = reel.parent / "media"
    assert done.output.shipped_inputs == [str(media / "a.mp4"), str(media / "b.mp4")]
    assert done.output.result.output == work / "2M1.wav"
    # The actor's copies never show: the sidecar names the submitting side's files.
    meta = json.loads((work / "2M1.json").read_text())
    assert "filmscore-actor-" not in json.dumps(meta) and meta["request"]["output"] == str(work / "2M1.wav")
    # Same picture, same audio as the local render (before loudness delivery: the engine's own WAV).
    import soundfile as sf

    local_meta = json.loads((local_run / "2M1.json").read_text())
    assert meta["picture"] == local_meta["picture"] and meta["request"]["hits_s"] == local_meta["request"]["hits_s"]
    audio, sr = sf.read(str(work / "2M1.wav"), dtype="float32")
    assert sr == 48000 and audio.shape[0] == local_meta["n_samples"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_and_changes_nothing(reel, bundle, local_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_run, out)
    (out / "1M1.wav").unlink()  # one cue to render
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    argv = [*CLI_ARGV, "score", str(reel), "-o", str(out), "--seed", "11",
            "--steps", "3", "--bundle", str(bundle), "--overwrite", "--executor", "ray", "--address", address]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith(f"filmscore score: error: cannot reach the Ray cluster at {address}: "), proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_the_bridge_renderer_writes_what_the_engine_writes_here(tmp_path, bundle, executor, monkeypatch):
    from dataclasses import replace

    from filmscore.bridge.executors import ray_executor as rx
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    monkeypatch.setenv(rx.SERVE_ENV, json.dumps({"num_cpus": 0.5, "bundle": str(bundle)}))
    for d in ("ray", "here"):
        (tmp_path / d).mkdir()
    request = RenderRequest(tmp_path / "ray" / ".cue.job1.partial.wav", duration_s=2.0, seed=4, steps=3,
                            bundle=bundle)
    stages: list[str] = []
    try:
        result = rx.render_on_ray(request, progress=lambda stage, fraction, message: stages.append(stage))
    finally:
        if rx._WORKER_EXECUTOR is not None:
            rx._WORKER_EXECUTOR.close()
            rx._WORKER_EXECUTOR = None
    render_cue(replace(request, output=tmp_path / "here" / ".cue.job1.partial.wav"))
    names = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "here").iterdir())
    for name in (".cue.job1.partial.wav", ".cue.job1.partial.controls.npz"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
    assert result.output == request.output and {"controls", "denoise"} <= set(stages)
    meta = json.loads((tmp_path / "ray" / ".cue.job1.partial.json").read_text())
    assert meta["request"]["output"] == str(request.output) and "filmscore-actor-" not in json.dumps(meta)


def test_a_cluster_where_no_actor_can_start_stops_the_batch_and_loses_nothing(reel, bundle, executor, local_run,
                                                                              tmp_path):
    from filmscore.bridge.executors import ExecutorError

    out = tmp_path / "out"
    shutil.copytree(local_run, out)
    (out / "2M2.wav").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # Two CPUs per actor on a 2-CPU cluster whose other actors hold one: the actor can never be placed.
    executor.connect()  # (the module's two half-CPU actors exist, whichever tests ran before)
    stuck = RayExecutor(RayOptions(num_cpus=2, actors=1, ready_timeout_s=2.0), bundle=bundle)
    cl = read_cues(read_timeline(reel))
    try:
        with pytest.raises(ExecutorError, match=r"no render actor became ready in 2 s; 1 cue\(s\) not rendered"):
            score_timeline(cl, cl.cues, out, options(bundle), executor=stuck)
    finally:
        stuck.close()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
