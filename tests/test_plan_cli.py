"""`filmscore plan` and `filmscore render --plan` from the command line: a plan (JSON and MIDI) without picture,
rendered back with a tiny bundle, its controls the plan's; user mistakes give one line and exit 2."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

from cli_support import cli_bundle, run_cli

from filmscore.engine.plan.plan import CuePlan


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return cli_bundle(tmp_path_factory.mktemp("b") / "tiny")


def test_plan_then_render_the_midi_plan(tmp_path, bundle):
    proc = run_cli("plan", "--duration", "6", "--maestro", "bach", "--theme", "4", "--key", "E minor", "--hits", "2.5",
                   "-o", str(tmp_path / "p.json"), "--midi-out", str(tmp_path / "p.mid"), "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["key"], s["mode"]) == ("E", "minor") and s["hits_on_beat"] == s["hits"] == 1
    assert s["notes"]["melody"] > 0 and s["midi"] == str(tmp_path / "p.mid")
    plan = CuePlan.load(tmp_path / "p.mid")
    out = tmp_path / "cue.wav"
    proc = run_cli("render", "--plan", str(tmp_path / "p.mid"), "--steps", "2", "--bundle", str(bundle),
                   "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert abs(r["duration_s"] - 6.0) < 1e-6  # the plan's duration
    with np.load(tmp_path / "cue.controls.npz") as z:
        mel, dyn = z["melody"], z["dynamics"]
    want = plan.controls(len(mel))
    assert np.array_equal(mel, want.melody) and np.allclose(dyn, want.dynamics)


def test_render_overrides_make_a_plan_beside_the_wav(tmp_path, bundle):
    out = tmp_path / "cue.wav"
    proc = run_cli("render", "--duration", "4", "--tempo", "90", "--valence", "0.1", "--steps", "2", "--bundle",
                   str(bundle), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = CuePlan.load(tmp_path / "cue.plan.json")
    assert plan.mode == "minor" and abs(plan.choices["target_bpm"] - 90) < 1e-6


@pytest.mark.parametrize("args, message", [
    (["plan", "--duration", "5", "--key", "H minor", "-o", "{tmp}/p.json"], "key 'H minor'"),
    (["plan", "--duration", "5", "--tempo", "400", "-o", "{tmp}/p.json"], "(--tempo) must be 40..200"),
    (["plan", "--duration", "5", "-o", "{tmp}/p.mid"], "must end in .json"),
    (["plan", "/nonexistent/clip.mp4", "-o", "{tmp}/p.json"], "clip.mp4"),
    (["plan", "--duration", "5", "--orchestration", "kazoo", "-o", "{tmp}/p.json"], "unknown orchestration"),
    (["render", "--plan", "{tmp}/none.json", "-o", "{tmp}/x.wav"], "none.json: no such plan"),
    (["render", "--plan", "{tmp}/p0.json", "--tempo", "90", "-o", "{tmp}/x.wav"], "as it stands"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "p0.json").write_text("{}")
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0]
