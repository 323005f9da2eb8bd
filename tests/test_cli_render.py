"""`filmscore render` / `bundle info` from the command line: user mistakes give one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import cli_bundle, run_cli


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return cli_bundle(tmp_path_factory.mktemp("b") / "tiny")


@pytest.mark.parametrize("args, message", [
    (["render", "/nonexistent/clip.mp4", "-o", "{tmp}/x.wav"], "clip.mp4"),
    (["render", "--duration", "-3", "-o", "{tmp}/x.wav"], "duration must be a positive number"),
    (["render", "--duration", "5", "--scheduler", "plms", "-o", "{tmp}/x.wav"], "unknown scheduler 'plms'"),
    (["render", "--duration", "5", "--midi", "{tmp}/none.mid", "-o", "{tmp}/x.wav"], "none.mid"),
    (["render", "--duration", "5", "--bundle", "{tmp}/nobundle", "-o", "{tmp}/x.wav"], "nobundle: no such bundle"),
    (["render", "--duration", "5", "--hits", "1,x", "-o", "{tmp}/x.wav"], "--hits"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert message in lines[0]


def test_render_json_summary(tmp_path, bundle):
    proc = run_cli("render", "--duration", "2.5", "--steps", "2", "--bundle", str(bundle), "--sample-rate", "44100",
                   "-o", str(tmp_path / "cue.wav"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["n_samples"] == 110250 and summary["sample_rate"] == 44100
    assert Path(summary["controls"]).is_file()


def test_bundle_info_json(bundle):
    proc = run_cli("bundle", "info", str(bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["name"] == "tiny-test" and set(info["components"]) >= {"vae", "unet", "controlnet", "film_head"}
