"""The evaluation runner and its report: every system on a tiny set with a tiny bundle; known answers for the
ground truth (its controls were re-extracted from it), the shuffled baseline, and the report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.metrics.evalset import load_set
from filmscore.engine.metrics.reference import ReferenceSettings, build_reference
from filmscore.engine.metrics.report import write_report
from filmscore.engine.metrics.runner import SYSTEMS, EvalOptions, evaluate
from filmscore.engine.options import RenderOptions
from filmscore.engine.metrics.testing import make_tiny_corpus, make_tiny_set


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    bundle = make_tiny_bundle(root / "bundle")
    evalset = load_set(make_tiny_set(root / "set"))
    corpus = make_tiny_corpus(root / "corpus")
    ref = build_reference(corpus, ReferenceSettings(classifier_steps=20, calibration_clips=2, excerpt_s=2.0,
                                                    transcriber="chroma"), cache_root=root / "ref")
    opts = EvalOptions(bundle=bundle, render=RenderOptions(steps=2, backend="torch"), transcriber="chroma")
    return evaluate(evalset, opts, ref, audio_dir=root / "audio"), root


@pytest.mark.slow
def test_every_system_renders_every_item(run):
    r, root = run
    assert set(r.pooled) == set(SYSTEMS)
    assert all(r.pooled[s]["n_cues"] == 2 for s in SYSTEMS)
    for c in r.cues:
        assert c.wave.shape == (32000,) and np.all(np.isfinite(c.wave))
        assert (root / "audio" / c.system / f"{c.item}.wav").is_file()


@pytest.mark.slow
def test_ground_truth_is_the_ceiling(run):
    r, _ = run
    gt = r.pooled["ground_truth"]
    assert gt["melody_accuracy_pooled"] == pytest.approx(1.0)
    assert gt["dynamics_r_micro"] == pytest.approx(1.0) and gt["dynamics_r_macro"] == pytest.approx(1.0)
    assert gt["hit_onset_rate"] == 1.0  # item0's notes start on its cut at 1 s
    assert r.pooled["griffin_lim"]["melody_accuracy_pooled"] > 0.8
    # the untrained model follows neither its own controls nor the shuffled ones
    assert r.pooled["shuffled"]["melody_accuracy_pooled"] < 0.5


@pytest.mark.slow
def test_corpus_metrics_are_measured(run):
    r, _ = run
    for s in SYSTEMS:
        p = r.pooled[s]
        assert np.isfinite(p["fad_proxy_embedding"]) and np.isfinite(p["fad_proxy_handcrafted"])
        assert 0.0 <= p["originality_embedding"] <= 2.0
    assert r.pooled["ground_truth"]["fad_proxy_handcrafted"] < r.pooled["model"]["fad_proxy_handcrafted"]
    assert all(c.recognised["predicted_master"] in ("low", "high") for c in r.cues)


@pytest.mark.slow
def test_report_files(run, tmp_path):
    r, _ = run
    doc = write_report(r, tmp_path, command="filmscore eval --set tiny")
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert on_disk["schema"] == "filmscore.eval/1" and len(on_disk["cues"]) == 2 * len(SYSTEMS)
    assert on_disk["systems"]["ground_truth"]["melody_accuracy_pooled"] == pytest.approx(1.0)
    md = (tmp_path / "report.md").read_text()
    assert "filmscore eval --set tiny" in md and "| melody accuracy (pooled) ↑ |" in md and "FAD-proxy" in md
    assert "VGGish FAD" not in md.replace("not VGGish FAD", "")
    for name in ("summary.png", "item0.png", "item1.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 5000


def test_unknown_system_is_refused(tmp_path):
    with pytest.raises(FilmscoreError, match="unknown system"):
        EvalOptions(systems=("model", "oracle")).validate()
