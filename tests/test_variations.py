"""`render_cue(..., variations=N)` / `filmscore render --variations N`: N takes denoised together, named
OUT.takeK.wav with their seeds in their JSON, each re-rendered alone from its JSON's request bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import run_cli

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import RequestError
from filmscore.engine.regenerate import request_from_json
from filmscore.engine.render import render_cue, take_path
from filmscore.engine.request import RenderRequest


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("var") / "tiny", seed=0)


def test_takes_are_seeded_named_and_reproducible_alone(bundle, tmp_path):
    # 12 s: two windows, so each take's calls span windows; a maestro without a theme: each seed draws its own
    req = RenderRequest(output=tmp_path / "cue.wav", bundle=bundle, duration_s=12.0, seed=10, maestro="bach",
                        steps=3, sample_rate=24000)
    first = render_cue(req, variations=3)
    takes = [take_path(req.output, k) for k in (1, 2, 3)]
    assert first.output == takes[0] and not req.output.exists()
    blobs = [t.read_bytes() for t in takes]
    assert len(set(blobs)) == 3  # three different takes
    for k, t in enumerate(takes):
        meta = json.loads(t.with_suffix(".json").read_text())
        assert meta["seed"] == 10 + k and meta["request"]["seed"] == 10 + k
        assert meta["variations"] == {"take": k + 1, "of": 3, "seeds": [10, 11, 12], "takes": [str(p) for p in takes]}
    # take 2 alone, from its JSON's request: the same bytes
    meta = json.loads(takes[1].with_suffix(".json").read_text())
    alone = request_from_json(dict(meta["request"], output=str(tmp_path / "alone.wav")), takes[1])
    render_cue(alone)
    assert (tmp_path / "alone.wav").read_bytes() == blobs[1]


def test_bad_variations_are_refused(bundle, tmp_path):
    req = RenderRequest(output=tmp_path / "x.wav", bundle=bundle, duration_s=2.0)
    with pytest.raises(RequestError, match="variations must be 1..16"):
        render_cue(req, variations=0)
    proc = run_cli("render", "--duration", "2", "--bundle", bundle, "--variations", "40", "-o", tmp_path / "y.wav",
                   timeout_s=600)
    assert proc.returncode == 2 and "--variations 40" in proc.stderr
