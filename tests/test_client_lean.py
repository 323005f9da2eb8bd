"""The host-side client path: bridge/client.py (with protocol.py, connection.py, engine/errors.py) and the Resolve
script import with the standard library and pyzmq alone, and score a cue through a live bridge that way.

A child Python runs with an import hook that refuses every top-level module outside the standard library, zmq and
filmscore, as a host's Python that installed only `pyzmq` and `filmscore --no-deps` would (pyproject.toml). The
same check was made by hand in a real fresh venv holding only pyzmq (see the commit that added this file)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "plugin_manifests" / "resolve" / "filmscore_score_cue.py"

# Runs in the child: the hook first, then the Resolve script as __main__ (--help), then its score() through the
# bridge with the one piece Resolve provides (reading the timeline, placing the cue) as a stand-in host.
CHILD = textwrap.dedent('''
    import importlib.abc, importlib.util, json, sys
    from fractions import Fraction
    from pathlib import Path

    # "org": the standard library's own probe for Jython (copy, pickle), which it expects to fail
    ALLOWED = set(sys.stdlib_module_names) | {"zmq", "filmscore", "filmscore_score_cue"}
    PROBES = {"org"}
    refused = []

    class LeanOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            top = name.split(".")[0]
            if top not in ALLOWED:
                if top not in PROBES:
                    refused.append(name)
                raise ModuleNotFoundError(f"not in a lean client: {name}", name=name)
            return None

    before = set(sys.modules)  # the interpreter's start-up (site's .pth hooks) is not the client's doing
    sys.meta_path.insert(0, LeanOnly())
    script, connection_file, out = sys.argv[1:4]
    import runpy
    sys.argv = [script, "--help"]
    try:
        runpy.run_path(script, run_name="__main__")
        help_rc = None
    except SystemExit as e:
        help_rc = e.code
    spec = importlib.util.spec_from_file_location("filmscore_score_cue", script)
    R = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = R
    spec.loader.exec_module(R)

    class Host:  # what ResolveTimeline reads from Resolve and does there, nothing else
        placed = None
        def read(self):
            return R.TimelineInfo("lean", Fraction(24), 1000, 1096, [R.Marker(12, "1M1", 48)])
        def place(self, wav, record_frame, n_frames):
            Host.placed = (str(wav), record_frame, n_frames)
            return 2

    from filmscore.bridge.client import BridgeClient
    with BridgeClient.from_connection_file(connection_file) as client:
        done = R.score(Host(), client, Path(out), "1M1", seed=3, steps=2, log=lambda line: None, tempo_bpm=90,
                       key="E minor", energy=0.25)
    # zmq's Cython extension registers its runtime as modules of its own (cython_runtime, _cython_3_x)
    third_party = sorted({m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)
                         - {"__main__", "cython_runtime"} - {m for m in sys.modules if m.startswith("_cython_")})
    print(json.dumps({"help_rc": help_rc, "wav": str(done.wav), "placed": Host.placed, "refused": refused,
                      "third_party": third_party}))
''')


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resolve_script_needs_only_pyzmq_and_scores_through_a_live_bridge(tmp_path):
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing import make_tiny_bundle

    out = tmp_path / "cues"
    out.mkdir()
    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    with launch_server(tmp_path / "state", output_roots=[out], bundle=bundle) as srv:
        child = subprocess.run([sys.executable, "-c", CHILD, str(SCRIPT), str(srv.connection_file), str(out)],
                               capture_output=True, text=True, timeout=240)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert "usage: filmscore_score_cue" in child.stdout and report["help_rc"] == 0
    assert all(f in child.stdout for f in ("--tempo", "--key", "--energy", "--valence", "--tension",
                                           "--orchestration"))
    assert report["refused"] == [] and set(report["third_party"]) == {"zmq", "filmscore", "filmscore_score_cue"}
    assert "numpy" not in report["third_party"] and "torch" not in report["third_party"]
    wav = Path(report["wav"])
    assert wav.is_file() and wav.parent == out.resolve()
    assert report["placed"] == [str(wav), 1012, 48]
    import soundfile as sf

    assert sf.info(wav).frames == 2 * 48000  # 48 frames at 24 fps, at the timeline's 48 kHz
    # the overrides reached the bridge's plan: it was made with them, written beside the cue, and rendered
    from filmscore.engine.plan.plan import CuePlan

    plan = CuePlan.load(wav.with_name(wav.stem + ".plan.json"))
    assert (plan.key, plan.mode) == ("E", "minor") and abs(plan.choices["target_bpm"] - 90) < 1e-6
    assert abs(plan.mood.energy - 0.25) < 1e-6
