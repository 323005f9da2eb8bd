"""Film-encoder features for corpus clips: written beside the film, index updated, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from filmscore.engine.data.arrange import ClipArrangement
from filmscore.engine.data.dynamics import DynamicsPlan, Phrase
from filmscore.engine.data.features import compute_features
from filmscore.engine.data.film_pairing import plan_film, render_film
from filmscore.engine.data.index import REQUIRED_FIELDS, CorpusError, append_records, read_index


def _clip_with_film(root, dyn: DynamicsPlan, *, beat_s: float, pitch: int, mode: str, bpm: float,
                    seed: int) -> dict:
    """Render the synthetic film of a one-note clip `a` lasting `dyn`'s length into `root/clips/a/film.mp4`;
    returns its index record (not yet appended)."""
    dur = dyn.duration_s
    arr = ClipArrangement(None, dur, np.array([[0, dur, pitch]]), np.arange(0, dur, beat_s), dyn, np.zeros(4), (), 0,
                          mode, 0)
    (root / "clips" / "a").mkdir(parents=True)
    render_film(plan_film(arr, bpm), root / "clips" / "a" / "film.mp4", seed)
    rec = {f: 0 for f in REQUIRED_FIELDS}
    rec.update(id="a", duration_s=dur, video="clips/a/film.mp4")
    return rec


@pytest.mark.slow
def test_features_fill_the_index(tmp_path):
    from filmscore.engine.film.features import FilmFeatures

    dyn = DynamicsPlan((Phrase(0, 3, "terrace", 0.2, 0.0), Phrase(3, 6, "swell", 0.5, 0.4)), 6.0)
    rec = _clip_with_film(tmp_path, dyn, beat_s=1.5, pitch=72, mode="minor", bpm=100.0, seed=0)
    append_records(tmp_path, [rec, dict(rec, id="b", video="clips/b/film.mp4")])  # b's film is missing
    out = compute_features(tmp_path)
    assert out["encoded"] == 1 and out["n_failed"] == 1 and out["failed"][0].startswith("b:")
    records = read_index(tmp_path)
    assert records[0]["features"] == "clips/a/features.npz" and "features" not in records[1]
    feats = FilmFeatures.load_npz(tmp_path / records[0]["features"])
    assert feats.n_frames == 60
    assert any(abs(c - 3.0) <= 0.1 for c in feats.cuts_s)  # the phrase-start cut is visible to the encoder
    again = compute_features(tmp_path)
    assert again["encoded"] == 0 and again["n_failed"] == 1


def test_features_need_an_index(tmp_path):
    with pytest.raises(CorpusError, match="data build"):
        compute_features(tmp_path)


@pytest.mark.slow
def test_pairing_check_on_an_encoded_clip(tmp_path):
    import json

    from filmscore.engine.data.features import pairing_check

    dyn = DynamicsPlan((Phrase(0, 4, "terrace", 0.05, 0.0), Phrase(4, 8, "terrace", 0.95, 0.0)), 8.0)
    rec = _clip_with_film(tmp_path, dyn, beat_s=2.0, pitch=70, mode="major", bpm=90.0, seed=1)
    (tmp_path / "clips" / "a" / "meta.json").write_text(json.dumps({"phrases": dyn.to_json()}))
    append_records(tmp_path, [dict(rec, meta="clips/a/meta.json", cuts_s=[4.0])])
    compute_features(tmp_path)
    out = pairing_check(tmp_path)
    assert out["clips"] == 1 and out["cut_recall"] == 1.0
    assert out["motion_vs_dynamics_r_median"] > 0.3  # the loud shot moves faster
