"""Originality: n-gram containment, embedding cosine, nearest training piece, calibrated copy rate."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.metrics.originality import (MIN_NGRAMS, OriginalityScores, TrainingPieces, calibrate,
                                                  containment, interval_ngrams, melody_ngrams, pitch_class_sequence,
                                                  pool_originality)


def _melody(pcs, frames_each=10):
    m = np.zeros((len(pcs) * frames_each, 12), np.float32)
    for k, pc in enumerate(pcs):
        if pc >= 0:
            m[k * frames_each:(k + 1) * frames_each, pc % 12] = 1
    return m


TUNE = [0, 2, 4, 5, 7, 9, 7, 5, 4, 2, 0, 4, 7]
OTHER = [0, 6, 1, 8, 3, 10, 5, 11, 2, 9, 4, 0, 6]


def test_pitch_class_sequence_drops_flicker_and_merges_repeats():
    m = _melody([0, 0, 4, -1, 4, 7])  # repeated C, a rest between two Es
    m[5, :] = 0
    m[5, 11] = 1  # one-frame flicker inside the first C
    assert list(pitch_class_sequence(m)) == [0, 4, 7]


def test_ngrams_are_transposition_invariant():
    a = interval_ngrams(np.array(TUNE))
    b = interval_ngrams((np.array(TUNE) + 5) % 12)
    assert a == b and len(a) >= MIN_NGRAMS


def test_identical_melody_is_a_copy_and_unrelated_is_original():
    tune, other = melody_ngrams(_melody(TUNE)), melody_ngrams(_melody(OTHER))
    assert containment(tune, tune) == 1.0
    assert containment(tune, other) == 0.0
    assert np.isnan(containment(frozenset({(1, 2, 3, 4)}), tune))  # too few n-grams to say


def test_highest_similarity_finds_the_nearest_piece_and_can_exclude_its_work():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, 8)).astype(np.float32)
    pieces = TrainingPieces(["tune", "other", "tune-again"], ["w1", "w2", "w1"],
                            [melody_ngrams(_melody(TUNE)), melody_ngrams(_melody(OTHER)),
                             melody_ngrams(_melody([(p + 3) % 12 for p in TUNE]))], emb)
    hi = pieces.highest(melody_ngrams(_melody(TUNE)), emb[1].copy())
    assert hi["melodic"] == 1.0 and hi["melodic_nearest"] in ("tune", "tune-again")
    assert hi["embedding"] == pytest.approx(1.0) and hi["embedding_nearest"] == "other"
    away = pieces.highest(melody_ngrams(_melody(TUNE)), emb[0], exclude_work="w1")
    assert away["melodic"] == 0.0 and away["melodic_nearest"] == "other"
    assert OriginalityScores(hi["melodic"], hi["embedding"]).originality_melodic == 0.0


def test_calibration_threshold_and_rates():
    other = np.linspace(0.0, 0.5, 101)
    cal = calibrate("melodic", other, [0.9, 0.8, 0.2])
    assert cal.threshold == pytest.approx(0.475)
    assert cal.false_alarm_rate == pytest.approx(5 / 101)
    assert cal.detection_rate == pytest.approx(2 / 3)
    scores = [OriginalityScores(0.9, 0.1), OriginalityScores(0.1, 0.2), OriginalityScores(float("nan"), 0.3)]
    pooled = pool_originality(scores, cal, calibrate("embedding", [0.0, 0.25], []))
    assert pooled["copy_rate_melodic"] == pytest.approx(0.5)  # nan cue left out
    assert pooled["copy_rate_embedding"] == pytest.approx(1 / 3)  # only 0.3 > 0.2375
    assert pooled["originality_melodic"] == pytest.approx(0.5)
    assert np.isnan(pool_originality(scores, None, None)["copy_rate_melodic"])
