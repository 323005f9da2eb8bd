"""Regenerating a range of a cue `filmscore score` rendered from a timeline region (issue 20): its picture is not
in its JSON, so the front end encodes the region its JSON records again (bridge/timelines/region_picture.py); the
engine checks it against the JSON's summary and its re-run against the cue's samples. The generated edit
(bridge/timelines/edit_testing.py), scored with the tiny bundle, its picture really encoded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from cli_support import run_cli
from timeline_support import SR, score_options, timeline_bundle

from filmscore.bridge.timelines.batch import score_timeline
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.edit_testing import make_edit
from filmscore.bridge.timelines.files import read_timeline
from filmscore.bridge.timelines.region_picture import picture_of_cue_json
from filmscore.engine.errors import RequestError
from filmscore.engine.regenerate import Regeneration, regenerate_cue

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("scored")
    bundle = timeline_bundle(root / "tiny")
    cl = read_cues(read_timeline(make_edit(root)))
    assert score_timeline(cl, cl.cues, root / "scored", score_options(bundle)).ok
    return root / "scored"


@pytest.mark.slow
def test_a_scored_cue_regenerates_from_the_command_line(scored, tmp_path):
    cue, out = scored / "1M2.wav", tmp_path / "1M2.v2.wav"
    meta = json.loads(cue.with_suffix(".json").read_text())
    assert meta["request"]["film_features"] is not None  # rendered from the region's picture
    (scored / "1M2.latent.npy").unlink()  # without the latent score kept: the region encoded again, re-run
    proc = run_cli("render", "--from", cue, "--regenerate", "0.5:2.0", "--seed", "3", "-o", out, "--json",
                   timeout_s=800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    old = sf.read(str(cue), dtype="int32", always_2d=True)[0]
    new = sf.read(str(out), dtype="int32", always_2d=True)[0]
    a, b = SR // 2, 2 * SR
    np.testing.assert_array_equal(new[:a], old[:a])
    np.testing.assert_array_equal(new[b:], old[b:])
    assert not np.array_equal(new[a:b], old[a:b])
    regen = json.loads(out.with_suffix(".json").read_text())["regenerated"]
    assert regen["original_latent"] == "re-run, verified sample-identical" and regen["outside_identical"]


@pytest.mark.slow
def test_without_its_picture_or_with_another_it_is_refused(scored, tmp_path):
    cue = scored / "1M2.wav"
    with pytest.raises(RequestError, match="timeline region's picture"):
        regenerate_cue(Regeneration(cue, tmp_path / "x.wav", 0.5, 2.0, 3))
    meta = json.loads(cue.with_suffix(".json").read_text())
    other = picture_of_cue_json(json.loads((scored / "cue_3.json").read_text()), "cue_3")
    assert other.n_frames != meta["request"]["film_features"]["n_frames"]  # cue 3 is 2.5 s, 1M2 3 s
    with pytest.raises(RequestError, match="is not the picture it was rendered from"):
        regenerate_cue(Regeneration(cue, tmp_path / "x.wav", 0.5, 2.0, 3, other))
    meta["cue"] = None
    with pytest.raises(RequestError, match="no `cue` record"):
        picture_of_cue_json(meta, "1M2.json")
