"""Master classifier / audio embedding: learns separable masters, tested on unseen works; save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.metrics.embedding import (AudioEmbedder, embed_log_mel, predict_master, prepare_log_mel,
                                                segments, split_by_work, train_classifier)
from filmscore.engine.metrics.testing import MASTERS, melody_audio


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    mels, masters, works = [], [], []
    for m, (base, harm) in MASTERS.items():
        for w in range(3):
            pitches = [base + int(x) for x in rng.integers(0, 12, 16)]
            mels.append(prepare_log_mel(melody_audio(pitches, 0.25, harm, seed=w)))
            masters.append(m)
            works.append(f"{m}/w{w}")
    return mels, masters, works


def test_split_by_work_holds_out_whole_works_per_master():
    works = ["a/1", "a/2", "a/3", "a/4", "b/1", "b/2", "c/1"]
    masters = ["a"] * 4 + ["b"] * 2 + ["c"]
    held = split_by_work(works, masters, 0.25, seed=0)
    assert len([w for w in held if w.startswith("a/")]) == 1
    assert len([w for w in held if w.startswith("b/")]) == 1
    assert not any(w.startswith("c/") for w in held)  # one work only: nothing to test on


def test_classifier_recognises_unseen_works(clips, tmp_path):
    mels, masters, works = clips
    trained = train_classifier(mels, masters, works, steps=40, batch=8, seed=0)
    assert trained.heldout_accuracy == 1.0 and trained.n_heldout_clips == 2 and trained.chance == 0.5
    model = trained.model
    assert predict_master(model, mels[0])[0] == "low" and predict_master(model, mels[-1])[0] == "high"
    emb, logits = embed_log_mel(model, mels[0])
    assert emb.shape == (segments(mels[0]).shape[0], model.config.embed_dim) and logits.shape[1] == 2
    model.save(tmp_path)
    again = AudioEmbedder.load(tmp_path)
    np.testing.assert_allclose(embed_log_mel(again, mels[0])[0], emb, rtol=1e-5, atol=1e-5)


def test_level_does_not_change_the_input():
    w = melody_audio([60, 64, 67], 0.25)
    np.testing.assert_allclose(prepare_log_mel(w), prepare_log_mel(w * 0.05), atol=1e-3)


def test_one_master_is_refused(clips):
    mels, masters, works = clips
    with pytest.raises(FilmscoreError, match="two masters"):
        train_classifier(mels[:3], masters[:3], works[:3], steps=2)


def test_missing_embedder_is_a_clear_error(tmp_path):
    with pytest.raises(FilmscoreError, match="cannot load"):
        AudioEmbedder.load(tmp_path)
