"""The v2 held-out evaluation on a tiny corpus v2 and a tiny random v2 bundle: the corpus's own audio (a sine lead on
the written pitches, bass + third, clicks on the beats) scores as such, and every measure comes back for the render."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2, write_tiny_corpus_v2
from filmscore.bridge.cli import main
from filmscore.engine.training.evaluate_v2 import evaluate_bundle_v2, measure_corpus

pytest.importorskip("librosa")
pytest.importorskip("mir_eval")


def test_evaluate_v2_measures_render_and_corpus(tmp_path):
    from filmscore.engine.bundle_testing import make_tiny_bundle

    corpus = write_tiny_corpus_v2(tmp_path / "c", n_clips=4, seconds=4.0, heldout=1)
    bundle = make_tiny_bundle_v2(tmp_path / "b")
    result = evaluate_bundle_v2(bundle, corpus, n_clips=2, seconds=4.0, steps=1, threads=1,
                                compare_v1=make_tiny_bundle(tmp_path / "b1"))
    assert [c["id"] for c in result["clips"]] == ["tiny3.p0.c0"]
    ref = result["summary"]["corpus"]
    assert ref["melody_accuracy_lead"] > 0.8 and abs(ref["register_error"]) < 1.0 and ref["in_register"] == 1.0
    assert ref["chord_iou"] >= 0.4 and ref["lr_correlation"] > 0.9  # the tiny corpus pans sources, no hall
    res = result["resynthesis"]
    assert {"vae_recon_l1_logmel", "griffin_lim_mrstft", "vocoder_mrstft", "vocoder_logmel_l1"} <= set(res)
    assert res["griffin_lim_logmel_l1"] < res["vocoder_logmel_l1"]  # an untrained vocoder loses to Griffin-Lim
    alone = measure_corpus(corpus, "heldout", n_clips=2, seconds=4.0)
    assert alone["clips"] == ["tiny3.p0.c0"] and alone["summary"]["chord_iou"] == pytest.approx(ref["chord_iou"])
    model = result["summary"]["model"]
    assert set(model) == set(ref) | {"hf_db_vs_corpus", "maestro_top1"}
    for k in ("melody_accuracy_mix", "chord_iou", "beat_f1", "lr_correlation", "hf_db", "noise_burst_share",
              "hf_db_vs_corpus", "maestro_top1"):
        assert np.isfinite(model[k]), k
    assert model["hf_db_vs_corpus"] == pytest.approx(model["hf_db"] - ref["hf_db"], abs=1e-3)
    # the corpus's own tones and clicks: few frames above the threshold measured on its train clips
    assert 0.0 <= ref["noise_burst_share"] <= 0.1 and 0.0 < result["noise_threshold"]["threshold"] < 1.0
    # the classifier learnt bach and folk from the three train clips; its held-out clip is one folk clip
    mc = result["maestro_classifier"]
    assert mc["masters"] == ["bach", "folk"] and mc["n"] == 1 and mc["heldout_from"] == "held-out split"
    fad = result["fad_proxy"]
    assert np.isfinite(fad["model"]) and np.isfinite(fad["v1"]) and fad["model"] > 0
    assert model["lr_correlation"] < ref["lr_correlation"]  # the hall side decorrelates the render's channels


def test_evaluate_v2_from_the_cli(tmp_path, capsys):
    import json

    corpus = write_tiny_corpus_v2(tmp_path / "c", n_clips=2, seconds=3.0, heldout=1)
    bundle = make_tiny_bundle_v2(tmp_path / "b")
    assert main(["train", "evaluate", "--corpus-version", "2", "--corpus", str(corpus), "--bundle", str(bundle),
                 "--n-clips", "1", "--steps", "1", "-o", str(tmp_path / "e.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["model"].keys() >= out["summary"]["corpus"].keys()
    assert "error" in out["maestro_classifier"]  # one train clip, one master: no classifier, the rest measured
    assert json.loads((tmp_path / "e.json").read_text())["bundle_hash"] == out["bundle_hash"]


def test_maestro_classifier_cv_and_corpus_noise(tmp_path):
    """The cross-validation runs over works on a tiny corpus (each clip its own work; the tiny masters differ only
    by chance, so its accuracy is not judged here: tests/test_metrics_sound_v2.py judges the classifier), and the
    corpus side reports its noise-burst share against its own threshold."""
    from filmscore.engine.training.evaluate_v2 import maestro_classifier_cv

    corpus = write_tiny_corpus_v2(tmp_path / "c", n_clips=6, seconds=3.0, heldout=1)
    cv = maestro_classifier_cv(corpus, per_master=3, seconds=3.0, folds=3)
    assert cv["n"] == 6 and cv["clips_per_master"] == {"bach": 3, "folk": 3} and 0.0 <= cv["accuracy"] <= 1.0
    assert cv["chance"] == 0.5 and set(cv["recall"]) == {"bach", "folk"}
    alone = measure_corpus(corpus, "train", n_clips=5, seconds=3.0)
    assert 0.0 <= alone["summary"]["noise_burst_share"] <= 0.1 and alone["noise_threshold"]["clips"]
