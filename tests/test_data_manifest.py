"""The data manifest a v2 bundle carries (engine/data/data_manifest.py): sources, their licences as the installed
files state them, hours; the weights' licence; and `filmscore bundle info` printing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filmscore.engine.data.data_manifest import data_manifest, score_licence, soundfont_licence


def _rec(work: str, master: str, split: str, seconds: float, font: str = "MuseScore_General_Full.sf3") -> dict:
    return {"work": work, "master": master, "split": split, "duration_s": seconds, "soundfont": font}


@pytest.fixture()
def music21_root(tmp_path) -> Path:
    """A corpus tree with the licence files music21 installs: one for the corpus, one for essenFolksong."""
    root = tmp_path / "corpus"
    (root / "essenFolksong").mkdir(parents=True)
    (root / "license.txt").write_text("# header\nSome encodings included in the corpus may not be used for "
                                      "commercial uses or have other restrictions.\n")
    (root / "essenFolksong" / "license.txt").write_text("# header\nThe project has given permission for "
                                                        "non-commercial distribution and use of these files.\n")
    return root


@pytest.fixture()
def doc_root(tmp_path) -> Path:
    d = tmp_path / "doc" / "musescore-general-soundfont"
    d.mkdir(parents=True)
    (d / "copyright").write_text("Licence:\n\nMuseScore_General_HQ SoundFont (MIT, parts PD or CC0):\n"
                                 "Splendid Grand piano (verified Public Domain)\n")
    return tmp_path / "doc"


def test_manifest_sources_licences_and_hours(music21_root, doc_root):
    recs = [_rec("bach/bwv1", "bach", "train", 1800), _rec("bach/bwv2", "bach", "heldout", 360),
            _rec("folk/essenFolksong-a-1", "folk", "train", 720),
            _rec("folk/nottingham-dataset-x-2", "folk", "train", 360, font="FluidR3_GM.sf2")]
    m = data_manifest(recs, corpus_root=music21_root, doc_root=doc_root)
    scores = {s["collection"]: s for s in m["sources"]["scores"]}
    assert set(scores) == {"bach", "essenFolksong", "nottingham-dataset"}
    assert scores["bach"]["hours"] == {"train": 0.5, "heldout": 0.1} and scores["bach"]["works"] == 2
    assert scores["essenFolksong"]["licence"]["commercial_use"] == "no"
    assert scores["bach"]["licence"]["commercial_use"] == "unclear"
    assert scores["essenFolksong"]["licence"]["file"].endswith("essenFolksong/license.txt")
    fonts = {s["soundfont"]: s for s in m["sources"]["soundfonts"]}
    assert fonts["MuseScore_General_Full.sf3"]["licence"] == "CC0, MIT, PD, Public Domain"
    assert fonts["MuseScore_General_Full.sf3"]["hours"]["train"] == pytest.approx(0.7)
    assert fonts["FluidR3_GM.sf2"]["licence"].startswith("unverified")  # its package is not in this doc root
    assert m["sources"]["films"][0]["hours"] == {"train": 0.8, "heldout": 0.1}
    assert m["hours"] == {"train": 0.8, "heldout": 0.1} and m["clips"] == 4
    w = m["weights"]
    assert w["licence"] == "Apache-2.0" and "essenFolksong: 0.20 h" in w["note"] and "non-commercial" in w["note"]


def test_clean_sources_say_so(tmp_path, doc_root):
    root = tmp_path / "c"
    root.mkdir()
    (root / "license.txt").write_text("All works here are in the public domain.\n")
    m = data_manifest([_rec("bach/bwv1", "bach", "train", 36)], corpus_root=root, doc_root=doc_root)
    assert m["weights"]["note"] == "every source's licence permits commercial use"


def test_installed_licences_where_present():
    """The files the corpus build really uses, as installed on this machine (skipped where they are not)."""
    lic = score_licence("essenFolksong")
    if lic["file"] is None:
        pytest.skip("music21 corpus not installed")
    assert lic["commercial_use"] == "no" and any("non-commercial" in x for x in lic["says"])
    sf = soundfont_licence("MuseScore_General_Full.sf3")
    if sf["copyright"] is None:
        pytest.skip("musescore-general-soundfont not installed")
    assert "MIT" in sf["licence"] and sf["package"] == "musescore-general-soundfont"


def test_bundle_info_prints_the_manifest(tmp_path, music21_root, doc_root, capsys):
    from filmscore.bridge.cli import main
    from filmscore.engine.bundle_manifest import manifest_hash, read_manifest
    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2
    from filmscore.engine.bundle_v2 import BUNDLE_SCHEMA_V2, load_bundle_v2, save_bundle_v2

    plain = load_bundle_v2(make_tiny_bundle_v2(tmp_path / "b0"))
    m = data_manifest([_rec("folk/essenFolksong-a-1", "folk", "train", 3600)], corpus_root=music21_root,
                      doc_root=doc_root)
    kw = dict(name="t", version="0", mel=plain.mel_config, stems=plain.stems, side_gains=plain.side_gains,
              film_layout="tiny")
    out = save_bundle_v2(tmp_path / "b1", plain.models, data=m, **kw)
    with_data = read_manifest(out, BUNDLE_SCHEMA_V2)
    assert with_data["data"] == json.loads(json.dumps(m))
    # the manifest describes the weights; it is not part of the bundle's identity. (Saving the same weights twice
    # is not compared: safetensors writes its metadata keys in varying order, so the files' sha256 differ.)
    assert manifest_hash(with_data) == manifest_hash({k: v for k, v in with_data.items() if k != "data"})
    assert main(["bundle", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stems lead, accompaniment, percussion" in text
    assert "music21 corpus: essenFolksong (folk, 1 works): 1.00 h train" in text and "commercial use no" in text
    assert "SoundFont MuseScore_General_Full.sf3 (Debian musescore-general-soundfont)" in text
    assert "weights licence: Apache-2.0; trained in part on score encodings licensed for non-commercial use" in text
