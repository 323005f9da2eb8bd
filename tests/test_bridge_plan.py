"""The cue plan through the bridge: a real `filmscore serve` on loopback, a tiny real bundle, real workers.

A render request with overrides (tempo_bpm, key, ...) makes the plan `filmscore render --tempo ...` makes, writes
it beside the cue (OUT.plan.json) and renders it: the plan and the controls equal the command line's. A request
naming a PLAN.json renders it as it stands (its duration when none is given). Bad overrides and plans are refused
before queueing, with the engine's named errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge_support import events_until, tiny_bridge
from cli_support import run_cli

from filmscore.bridge import protocol as P
from filmscore.bridge.client import BridgeClient, RemoteError
from filmscore.engine.plan.plan import CuePlan

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with tiny_bridge(tmp_path_factory.mktemp("plan")) as s:
        yield s


def _finish(c: BridgeClient, job: str) -> dict:
    evs = events_until(c, job)
    assert evs[-1].msg_type == "job_finished", evs[-1].content
    return c.result(job)


def test_overrides_make_the_command_lines_plan_beside_the_cue(served, tmp_path):
    srv, d, bundle = served
    out = d["out"] / "cue.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.render(out, duration_s=4.0, steps=2, seed=5, maestro="bach", theme="4", tempo_bpm=90,
                       key="E minor", energy=0.3, orchestration="winds")
        res = _finish(c, job)
    plan_file = d["out"] / "cue.plan.json"
    plan = CuePlan.load(plan_file)
    assert (plan.key, plan.mode, plan.orchestration) == ("E", "minor", "winds")
    assert abs(plan.choices["target_bpm"] - 90) < 1e-6 and abs(plan.mood.energy - 0.3) < 1e-6
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["request"]["plan"] == str(plan_file) and meta["request"]["maestro"] is None
    assert ".partial" not in json.dumps(res) + plan_file.read_text()
    assert not [p.name for p in d["out"].iterdir() if ".partial" in p.name]

    # the same request on the command line: the same plan, the same controls
    cli_out = tmp_path / "cue.wav"
    proc = run_cli("render", "--duration", "4", "--steps", "2", "--seed", "5", "--maestro", "bach", "--theme", "4",
                "--tempo", "90", "--key", "E minor", "--energy", "0.3", "--orchestration", "winds",
                "--bundle", str(bundle), "-o", str(cli_out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert CuePlan.load(tmp_path / "cue.plan.json").to_json() == plan.to_json()
    with np.load(out.with_suffix(".controls.npz")) as a, np.load(tmp_path / "cue.controls.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert np.array_equal(a[k], b[k]), k


def test_a_plan_file_is_rendered_as_it_stands(served):
    srv, d, _ = served
    proc = run_cli("plan", "--duration", "5", "--key", "D major", "--tempo", "120", "-o", str(d["media"] / "p.json"),
                "--midi-out", str(d["media"] / "p.mid"))
    assert proc.returncode == 0, proc.stderr
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        for name in ("p.json", "p.mid"):
            out = d["out"] / f"from-{name}.wav"
            res = _finish(c, c.render(out, plan=d["media"] / name, steps=2))  # no duration: the plan's
            assert abs(res["duration_s"] - 5.0) < 1e-6
            plan = CuePlan.load(d["media"] / name)
            with np.load(out.with_suffix(".controls.npz")) as z:
                assert np.array_equal(z["melody"], plan.controls(len(z["melody"])).melody)
            assert not out.with_suffix("").with_name(out.stem + ".plan.json").exists()  # nothing made, nothing written


@pytest.mark.parametrize("fields, ename, message", [
    ({"key": "H minor"}, "PlanError", "key 'H minor'"),
    ({"tempo_bpm": 400}, "PlanError", "must be 40..200"),
    ({"energy": 1.5}, "PlanError", "energy must be 0..1"),
    ({"orchestration": "kazoo"}, "PlanError", "unknown orchestration"),
    ({"style": "nobody"}, "PlanError", "no harmony statistics for style 'nobody'"),
    ({"tempo_bpm": "fast"}, "ProtocolError", "'tempo_bpm' must be int/float"),
    ({"free_timing": 1}, "ProtocolError", "'free_timing' must be bool"),
    ({"key": "x" * 65}, "PlanError", "key is 65 characters; the limit is 64"),
    ({"plan": "relative/p.json"}, "PathNotAllowed", "must be absolute"),
    ({"plan": "/etc/hostname"}, "PathNotAllowed", "outside the server's allowed roots"),
    ({"plan": "{media}/none.json"}, "PathNotAllowed", "does not exist"),
    ({"plan": "{media}/bad.json"}, "PlanError", "not a JSON plan"),
    ({"plan": "{media}/bad.txt"}, "RequestError", "must be a PLAN.json or PLAN.mid"),
    ({"plan": "{media}/p.json", "tempo_bpm": 90}, "RequestError", "rendered as it stands"),
    ({"plan": "{media}/p.json", "maestro": "bach"}, "RequestError", "a plan holds its own melody"),
    ({"reference_audio": "{media}/ref.wav", "key": "C major"}, "RequestError", "not reference audio"),
])
def test_bad_plans_and_overrides_are_refused_before_queueing(served, fields, ename, message):
    _assert_refused(served, "render", fields, ename, message)


def _assert_refused(served, msg_type: str, fields: dict, ename: str, message: str) -> None:
    """`msg_type` with `fields` ("{media}" = the media root) is answered `ename` naming `message`; nothing queued."""
    srv, d, _ = served
    (d["media"] / "bad.json").write_text("{not json")
    (d["media"] / "bad.txt").write_text("{}")
    (d["media"] / "ref.wav").write_bytes(b"RIFF")
    if not (d["media"] / "p.json").exists():
        assert run_cli("plan", "--duration", "3", "-o", str(d["media"] / "p.json")).returncode == 0
    content = {"output": str(d["out"] / "refused.wav"), "duration": {"value": 3, "rate": 1}}
    content.update({k: v.replace("{media}", str(d["media"])) if isinstance(v, str) else v for k, v in fields.items()})
    with BridgeClient(srv.info) as c:
        before = len(c.list_jobs())
        with pytest.raises(RemoteError) as e:
            c.request(msg_type, content)
        assert e.value.ename == ename and message in e.value.evalue, (e.value.ename, e.value.evalue)
        assert len(c.list_jobs()) == before


def test_render_params_round_trip_the_plan_fields():
    content = {"output": "/o/x.wav", "plan": "/m/p.json", "tempo_bpm": 96, "key": "Bb major", "energy": 0.2,
               "valence": 1, "tension": 0.0, "orchestration": "dark", "free_timing": True, "style": "bach"}
    params = P.RenderParams.from_content(content)
    assert params.tempo_bpm == 96.0 and isinstance(params.valence, float) and params.free_timing is True
    assert P.RenderParams.from_content(params.to_content()) == params


def test_an_executor_ships_the_plan_with_the_other_inputs(tmp_path):
    """A remote executor copies `input_files()` to its worker (ship_inputs) and points the request at the copies:
    a plan file is one of them, or a Ray actor without shared storage could not read it."""
    from filmscore.bridge.executors.base import CueTask
    from filmscore.engine.request import RenderRequest

    task = CueTask("c", RenderRequest(tmp_path / "c.wav", duration_s=3.0, plan=tmp_path / "p.json"))
    assert task.input_files() == [str(tmp_path / "p.json")]


def test_a_plan_request_makes_the_command_lines_plan_without_audio(served, tmp_path):
    """`plan`: the render's fields, a job on a worker (the loop answers at once), the result is the plan's summary and
    the OUT.plan.json it wrote, equal to `filmscore plan` with the same flags; no audio is rendered."""
    srv, d, _ = served
    out = d["out"] / "planned.wav"
    with BridgeClient(srv.info) as c:
        c.subscribe(wait_s=30)
        job = c.plan(out, duration_s=4.0, seed=5, maestro="bach", theme="4", tempo_bpm=90, key="E minor",
                     energy=0.3, valence=0.7, orchestration="winds")
        assert c.request("status", {"job_id": job})["job"]["kind"] == "plan"
        res = _finish(c, job)
        bare = _finish(c, c.plan(d["out"] / "bare.wav", duration_s=3.0, seed=1))  # no overrides: the plan decides
    plan_file = d["out"] / "planned.plan.json"
    plan = CuePlan.load(plan_file)
    assert res["plan"] == str(plan_file) and (res["key"], res["mode"], res["orchestration"]) == ("E", "minor", "winds")
    assert res["tempo_bpm"] == round(plan.tempo.tempo_bpm, 3) and abs(res["target_bpm"] - 90) < 1e-6
    assert res["mood"] == plan.mood.to_json() and res["mood"]["energy"] == 0.3 and res["mood"]["valence"] == 0.7
    assert res["bars"] == len(plan.tempo.downbeats) > 0 and res["duration_s"] == 4.0
    assert not out.exists() and not [p.name for p in d["out"].iterdir() if ".partial" in p.name]
    assert CuePlan.load(bare["plan"]).duration_s == 3.0 and bare["mode"] in ("major", "minor")

    proc = run_cli("plan", "--duration", "4", "--seed", "5", "--maestro", "bach", "--theme", "4", "--tempo", "90",
                "--key", "E minor", "--energy", "0.3", "--valence", "0.7", "--orchestration", "winds",
                "-o", str(tmp_path / "p.json"))
    assert proc.returncode == 0, proc.stderr
    assert CuePlan.load(tmp_path / "p.json").to_json() == plan.to_json()


@pytest.mark.parametrize("fields, ename, message", [
    ({"key": "H minor"}, "PlanError", "key 'H minor'"),
    ({"tempo_bpm": 400}, "PlanError", "must be 40..200"),
    ({"plan": "{media}/p.json"}, "RequestError", "a plan request makes a plan"),
    ({"reference_audio": "{media}/ref.wav"}, "RequestError", "not reference audio"),
    ({"output": "/etc/x.wav"}, "PathNotAllowed", "outside the server's allowed roots"),
])
def test_bad_plan_requests_are_refused_before_queueing(served, fields, ename, message):
    _assert_refused(served, "plan", fields, ename, message)
