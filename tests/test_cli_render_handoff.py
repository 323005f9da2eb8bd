"""`filmscore render` hands its request to a running bridge (bridge/cli/render_handoff.py): found through the runtime
folder's connection file, the same bytes as rendering here, the draft under --preview, and the cases it must not
take (another bundle, a stale connection file, a path outside the bridge's roots)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bridge_support import bridge_bundle, serve
from cli_support import run_cli

RENDER = ("render", "--duration", "4", "--steps", "3", "--json")


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    """A live bridge on the tiny bundle whose connection file is in the runtime folder, as `filmscore serve` without
    --connection-file puts it: yields (server, folders, bundle, the environment that finds it)."""
    root = tmp_path_factory.mktemp("handoff")
    d = {k: root / k for k in ("state", "media", "out", "runtime")}
    for p in d.values():
        p.mkdir(mode=0o700)
    bundle = bridge_bundle(root / "tiny")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(d["runtime"])}
    # As `filmscore serve` runs from a shell: no OMP_NUM_THREADS, so its one worker takes every core (the tests'
    # own processes, this one's children included, run on one: conftest.py).
    server_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with serve(d, bundle, connection_file=d["runtime"] / "filmscore" / "bridge-1.json", env=server_env) as srv:
        yield srv, d, bundle, env


def _render(env, *args) -> tuple[dict, str]:
    r = run_cli(*RENDER, *args, env=env, timeout_s=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def test_render_runs_on_the_bridge_and_gives_the_bytes_a_local_render_gives(bridge):
    srv, d, bundle, env = bridge
    there, _ = _render(env, "--bundle", bundle, "-o", d["out"] / "there.wav")
    assert there["bridge"]["pid"] == srv.process.pid and there["bridge"]["job_id"]
    assert there["bridge"]["connection_file"] == str(d["runtime"] / "filmscore" / "bridge-1.json")
    here, _ = _render(env, "--bundle", bundle, "-o", d["out"] / "here.wav", "--local")
    assert here["bridge"] is None and here["timings_s"]["import"] > 0
    # The bridge's worker ran the model calls on every core, this process on one: the same bytes (engine/threads.py).
    threads = {k: json.loads((d["out"] / f"{k}.json").read_text())["backend"]["threads"] for k in ("there", "here")}
    assert threads == {"there": len(os.sched_getaffinity(0)), "here": 1}
    assert (d["out"] / "there.wav").read_bytes() == (d["out"] / "here.wav").read_bytes()
    assert (d["out"] / "there.controls.npz").is_file() and (d["out"] / "there.json").is_file()
    for key in ("duration_s", "n_samples", "sample_rate", "seed", "loudness"):
        assert there[key] == here[key], key
    # A warm worker imported the runtime for an earlier job: nothing of it is paid again.
    again, _ = _render(env, "--bundle", bundle, "-o", d["out"] / "again.wav", "--seed", "5")
    assert again["bridge"] is not None and again["timings_s"]["import"] == 0 and again["seed"] == 5


def test_the_draft_is_at_preview_as_well_as_where_the_bridge_publishes_it(bridge):
    srv, d, bundle, env = bridge
    out, draft = d["out"] / "drafted.wav", d["out"] / "first_listen.wav"
    summary, stderr = _render(env, "--bundle", bundle, "-o", out, "--preview", draft, "--steps", "6")
    assert summary["bridge"] is not None
    assert summary["preview"]["path"] == str(draft) and summary["preview"]["steps"] == 4
    published = Path(summary["preview"]["published"])
    assert published == d["out"] / "drafted.draft.wav"
    assert os.path.samefile(draft, published)  # one file, two names: the cue's JSON records the bridge's
    assert json.loads((d["out"] / "drafted.json").read_text())["preview"]["path"] == str(published)
    assert draft.read_bytes() != out.read_bytes()  # 4 steps against 6
    assert "draft ready" in stderr


def test_another_bundle_renders_here_and_says_why(bridge, tmp_path):
    srv, d, bundle, env = bridge
    other = bridge_bundle(tmp_path / "other")
    summary, stderr = _render(env, "--bundle", other, "-o", d["out"] / "other.wav")
    assert summary["bridge"] is None
    assert "rendering here, not on the running bridge" in stderr and str(other) in stderr


def test_a_connection_file_left_by_a_dead_bridge_is_skipped(tmp_path):
    from filmscore.bridge.connection import new_connection_info, write_connection_file

    rt = tmp_path / "runtime"
    rt.mkdir(mode=0o700)
    info = new_connection_info()
    info.update(request_port=1, event_port=1, pid=2 ** 22 + 12345)  # beyond Linux's pid range: never running
    write_connection_file(rt / "filmscore" / "bridge-9.json", info)
    bundle = bridge_bundle(tmp_path / "tiny")
    summary, stderr = _render({**os.environ, "XDG_RUNTIME_DIR": str(rt)}, "--bundle", bundle,
                              "-o", tmp_path / "cue.wav")
    assert summary["bridge"] is None and "no longer runs" in stderr
    assert (tmp_path / "cue.wav").is_file()


def test_a_named_bridge_that_refuses_fails_with_its_reason(bridge, tmp_path):
    srv, d, bundle, env = bridge
    outside = tmp_path / "elsewhere.wav"  # not under the bridge's output root
    r = run_cli(*RENDER, "--bundle", bundle, "-o", outside, "--connection-file", srv.connection_file, env=env)
    assert r.returncode == 2, r.stderr
    assert "refused the render" in r.stderr and "outside the server's allowed roots" in r.stderr
    assert not outside.exists()
    # The same in auto mode renders here instead.
    summary, stderr = _render(env, "--bundle", bundle, "-o", outside)
    assert summary["bridge"] is None and "refused the render" in stderr and outside.is_file()


def test_regenerate_is_not_handed_to_a_named_bridge(bridge, tmp_path):
    srv, d, bundle, env = bridge
    r = run_cli("render", "--from", d["out"] / "there.wav", "--regenerate", "1:2", "-o", tmp_path / "new.wav",
                "--connection-file", srv.connection_file, env=env)
    assert r.returncode == 2 and "--connection-file (a regeneration renders here)" in r.stderr


def test_a_bridge_that_dies_mid_render_is_one_line_and_no_output(tmp_path):
    import signal
    import subprocess

    from cli_support import CLI_ARGV

    d = {k: tmp_path / k for k in ("state", "media", "out", "runtime")}
    for p in d.values():
        p.mkdir(mode=0o700)
    bundle = bridge_bundle(tmp_path / "tiny")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(d["runtime"])}
    out = d["out"] / "long.wav"
    with serve(d, bundle, connection_file=d["runtime"] / "filmscore" / "bridge-1.json") as srv:
        proc = subprocess.Popen([*CLI_ARGV, "render", "--duration", "600", "--steps", "200", "--bundle", str(bundle),
                                 "-o", str(out)], stderr=subprocess.PIPE, text=True, env=env)
        seen = []
        for line in proc.stderr:  # plain progress lines: stderr is a pipe
            seen.append(line)
            if "denoise" in line:  # the job is running on the bridge
                break
        assert any("rendering on the running bridge" in ln for ln in seen), seen
        srv.process.send_signal(signal.SIGKILL)
        rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 2, rest
    assert "stopped answering while it rendered job" in rest and "--local" in rest
    assert not out.exists()


def test_variations_and_a_plan_file_on_the_bridge_are_what_they_are_here(bridge):
    srv, d, bundle, env = bridge
    takes, _ = _render(env, "--bundle", bundle, "-o", d["out"] / "v.wav", "--variations", "2", "--seed", "3")
    assert takes["bridge"] is not None and takes["variations"]["seeds"] == [3, 4]
    alone, _ = _render(env, "--bundle", bundle, "-o", d["out"] / "v2_alone.wav", "--seed", "4", "--local")
    assert (d["out"] / "v.take2.wav").read_bytes() == (d["out"] / "v2_alone.wav").read_bytes()

    plan = d["media"] / "plan.json"  # the bridge reads inputs under its media root
    made = run_cli("plan", "--duration", "4", "--tempo", "90", "--key", "D minor", "-o", plan, env=env)
    assert made.returncode == 0, made.stderr
    there, _ = _render(env, "--bundle", bundle, "--plan", plan, "-o", d["out"] / "planned_there.wav")
    here, _ = _render(env, "--bundle", bundle, "--plan", plan, "-o", d["out"] / "planned_here.wav", "--local")
    assert there["bridge"] is not None and here["bridge"] is None
    assert (d["out"] / "planned_there.wav").read_bytes() == (d["out"] / "planned_here.wav").read_bytes()
