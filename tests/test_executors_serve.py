"""`filmscore serve --executor ray`: a real bridge process whose render worker renders through a Ray actor on a
Ray that the server starts (one CPU). Jobs go through the bridge's own queue, journal and events as with local
workers: progress events, atomic delivery, the engine's bytes, cancel within a step, a killed actor's job carried
on by a new actor; when the server stops, its Ray goes with it."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install 'filmscore[ray]'")

from executors_fixture import descendants  # noqa: E402

from filmscore.bridge.client import BridgeClient  # noqa: E402
from filmscore.bridge.server.launch import launch_server  # noqa: E402

from bridge_support import bridge_bundle, events_until  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return bridge_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def server(tmp_path_factory, bundle):
    if not os.path.isdir("/proc"):
        pytest.skip("the process checks read /proc")
    root = tmp_path_factory.mktemp("serve-ray")
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle,
                       extra_args=["--executor", "ray", "--num-cpus", "1"], timeout_s=180) as srv:
        yield srv, d
        ray_procs = {p for p, c in descendants(srv.process.pid).items() if "ray" in c.lower()}
        assert ray_procs, "the server started no Ray"
        srv.stop(timeout_s=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in ray_procs):
            time.sleep(0.5)
        left = [p for p in ray_procs if os.path.exists(f"/proc/{p}")]
        assert not left, f"Ray processes of the server left after it stopped: {left}"


def _denoise_progress(c: BridgeClient, job: str, below: float = 2.0, timeout_s: float = 300.0):
    for ev in c.events(timeout_s=timeout_s):
        if ev.content.get("job_id") != job:
            continue
        if ev.msg_type == "job_progress" and ev.content["stage"] == "denoise" and ev.content["fraction"] < below:
            return ev
        if ev.msg_type in ("job_finished", "job_failed", "job_cancelled"):
            raise AssertionError(f"job ended: {ev.content}")
    raise AssertionError("no denoise progress")


def test_a_job_renders_on_ray_with_progress_and_the_engines_bytes(server, tmp_path):
    from filmscore.bridge.server.worker import request_from_json
    from filmscore.engine.render import render_cue

    srv, d = server
    out = d["out"] / "cue.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)  # until the event socket is connected (and so the subscription sent)
        job = c.render(out, duration_s=3.0, steps=4, seed=3)
        evs = events_until(c, job, timeout_s=300.0)
        res = c.result(job)
        st = c.status(job)
    types = [e.msg_type for e in evs]
    assert types[:2] == ["job_queued", "job_started"] and types[-1] == "job_finished", evs[-1].content
    denoise = [e.content["fraction"] for e in evs if e.msg_type == "job_progress" and e.content["stage"] == "denoise"]
    assert denoise == sorted(denoise) and len(denoise) == 4  # relayed from the actor as it rendered
    assert Path(res["output"]) == out and st["state"] == "finished" and st["attempts"] == 1
    assert not [p.name for p in d["out"].iterdir() if ".partial" in p.name or p.name.endswith(".tmp")]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert ".partial" not in json.dumps(meta) and "filmscore-actor-" not in json.dumps(meta)
    # The same request rendered by the engine in this process: the same bytes.
    here = tmp_path / "cue.wav"
    request = request_from_json({k: v for k, v in meta["request"].items() if k in
                                 ("duration_s", "seed", "steps", "scheduler", "picture_guidance", "control_guidance",
                                  "control_strength", "picture_dynamics", "sample_rate", "target_lufs", "bundle",
                                  "backend", "vocoder", "output")})
    render_cue(replace(request, output=here))
    assert here.read_bytes() == out.read_bytes()


def test_cancel_and_a_killed_actor(server):
    srv, d = server
    out = d["out"] / "long.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=3.0, steps=400)
        first = _denoise_progress(c, job, below=0.05)
        actors = [p for p, cmd in descendants(srv.process.pid).items() if "_RenderActor" in cmd]
        assert len(actors) == 1, actors
        os.kill(actors[0], signal.SIGKILL)  # the actor dies inside the job's render
        deadline = time.monotonic() + 120
        while "died; retrying (attempt 2 of 3)" not in srv.stderr() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "died; retrying (attempt 2 of 3)" in srv.stderr()
        # A new actor renders the job from its first step: a denoise report no further than `first` (the first
        # attempt's own first step, already consumed; its later reports are further), and the job still runs.
        again = _denoise_progress(c, job, below=first.content["fraction"] + 1e-9)
        assert again.content["fraction"] <= first.content["fraction"] and c.status(job)["state"] == "running"
        assert [p for p, cmd in descendants(srv.process.pid).items() if "_RenderActor" in cmd] != actors
        assert c.cancel(job) == "cancelling"
        evs = events_until(c, job, timeout_s=300.0)
        st = c.status(job)
    assert evs[-1].msg_type == "job_cancelled" and st["state"] == "cancelled", evs[-1].content
    assert "step" in evs[-1].content["detail"]
    assert not out.exists() and not [p for p in d["out"].iterdir() if "long" in p.name]
