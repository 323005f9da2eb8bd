"""Corpus reference: classifier, training pieces, copy calibration and quality reference from a tiny corpus;
cached by corpus state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from filmscore.engine.metrics.reference import ReferenceError, ReferenceSettings, build_reference
from filmscore.engine.metrics.testing import make_tiny_corpus

SETTINGS = ReferenceSettings(classifier_steps=30, calibration_clips=4, excerpt_s=4.0, transcriber="chroma")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.slow
def test_reference_from_a_tiny_corpus(corpus, tmp_path):
    ref = build_reference(corpus, SETTINGS, cache_root=tmp_path)
    s = ref.summary()
    assert s["classifier"]["classes"] == ["high", "low"]
    assert s["classifier"]["n_heldout_clips"] >= 2  # the corpus's held-out works are test clips too
    assert s["n_training_pieces"] == 12 and s["n_heldout_clips"] == 2
    assert s["quality_reference"] == "heldout" and ref.quality_handcrafted.shape[1] == 57
    mel = ref.calibration["melodic"]
    assert len(mel.other_work) == 4 and np.isfinite(mel.threshold)
    # an excerpt compared with its own source clip (a verbatim copy) is flagged
    assert mel.detection_rate == 1.0
    # a training piece compared with itself is at the top of both similarities
    hi = ref.pieces.highest(ref.pieces.ngrams[0], ref.pieces.embeddings[0])
    assert hi["melodic"] == 1.0 and hi["embedding"] == pytest.approx(1.0, abs=1e-5)
    # an evaluation item cut from the first 0.5 s of a held-out clip leaves exactly the overlapping segments out
    emb_at, hc_at = ref.quality_embedding_at, ref.quality_handcrafted_at
    keep_e = ref.quality_mask("embedding", [("low-w3-r0", 0.0, 0.5)])
    keep_h = ref.quality_mask("handcrafted", [("low-w3-r0", 0.0, 0.5)])
    assert [a for a, k in zip(emb_at, keep_e) if not k] == [("low-w3-r0", 0.0, 3.0)]
    assert [a for a, k in zip(hc_at, keep_h) if not k] == [("low-w3-r0", 0.0, 1.0)]
    again = build_reference(corpus, SETTINGS, cache_root=tmp_path)  # cached: loads, same numbers
    assert again.path == ref.path and again.summary()["calibration"] == s["calibration"]
    np.testing.assert_allclose(again.pieces.embeddings, ref.pieces.embeddings)
    assert again.quality_embedding_at == emb_at


def test_a_grown_corpus_gets_a_new_reference(corpus, tmp_path):
    from filmscore.engine.metrics.reference import digest

    before = digest(corpus, SETTINGS)
    lines = (corpus / "index.jsonl").read_text().splitlines()
    extra = json.loads(lines[0]) | {"id": "copy-of-first"}
    (corpus / "index.jsonl").write_text("\n".join(lines + [json.dumps(extra)]) + "\n")
    try:
        assert digest(corpus, SETTINGS) != before
    finally:
        (corpus / "index.jsonl").write_text("\n".join(lines) + "\n")


def test_no_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ReferenceError, match="index.jsonl"):
        build_reference(tmp_path / "none", SETTINGS, cache_root=tmp_path)
