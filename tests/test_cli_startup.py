"""`filmscore render`'s start-up: the request is parsed and checked, and the engine's first stage shown, before the
model runtime (torch, diffusers) is imported; the runtime's import is timed as the render's `import` entry and the
process's age at the first stage is the summary's `startup_s` (bench/bench_startup.py measures both)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_support import run_cli

# The real CLI in a fresh interpreter; the hook the CLI calls at the engine's first stage report records what was
# imported by then and ends the process.
PROBE = """
import json, os, sys
import filmscore.bridge.cli.startup as st
def at_first_stage():
    print(json.dumps(sorted(m for m in ("torch", "diffusers", "onnxruntime") if m in sys.modules)), flush=True)
    os._exit(0)
st.process_age_s = at_first_stage
from filmscore.bridge.cli import main
sys.exit(main(["render", *sys.argv[1:]]))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from filmscore.engine.bundle_testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0)


def test_first_stage_comes_before_the_runtime_is_imported(tmp_path, bundle):
    done = subprocess.run([sys.executable, "-c", PROBE, "--duration", "2", "--maestro", "bach", "--bundle",
                           str(bundle), "-o", str(tmp_path / "cue.wav"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert not (tmp_path / "cue.wav").exists()


def test_render_json_reports_startup_and_the_runtime_import(tmp_path, bundle):
    out = tmp_path / "cue.wav"
    done = run_cli("render", "--duration", "1", "--steps", "1", "--bundle", bundle, "-o", out, "--json",
                   timeout_s=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert isinstance(summary["startup_s"], float) and summary["startup_s"] > 0
    stages = list(summary["timings_s"])
    assert stages[:2] == ["import", "load"] and summary["timings_s"]["import"] > 0  # a fresh process imports here
    assert out.is_file()

