"""`filmscore train vae|vocoder|ldm|info --corpus-version 2` on a tiny corpus v2: the default-size v2 models for a
step each, checkpoints in --train-dir, and a clear refusal of stages not written for v2."""

from __future__ import annotations

import json

import numpy as np
from filmscore.bridge.cli import main
from filmscore.engine.bundle_testing_v2 import write_tiny_corpus_v2
from filmscore.engine.bundle_v2 import load_bundle_v2
from filmscore.engine.pipeline_v2 import FilmScorePipelineV2
from filmscore.engine.training.loop import Run
from filmscore.engine.training.train_v2 import V2_LATENT_CHANNELS


def test_v2_stages_from_the_cli(tmp_path, capsys):
    corpus = write_tiny_corpus_v2(tmp_path / "v2", n_clips=2, seconds=6.0, heldout=0)
    common = ["--corpus-version", "2", "--corpus", str(corpus), "--train-dir", str(tmp_path / "t"), "--batch", "2",
              "--max-steps", "1", "--device", "cpu", "--json"]
    for stage in ("vae", "vocoder", "ldm"):
        assert main(["train", stage, *common]) == 0, stage
        out = json.loads(capsys.readouterr().out)
        assert out["stage"] == stage and out["step"] == 1 and out["corpus_version"] == 2
        assert out["model_size"] == "cpu"
    state = Run("ldm", tmp_path / "t").load()
    assert state["configs"]["unet"]["in_channels"] == 3 * V2_LATENT_CHANNELS
    assert (tmp_path / "t" / "ldm" / "vae_frozen.pt").is_file()
    assert {"bach", "folk", "palestrina"} <= set(state["configs"]["global_cond"]["masters"])
    voc = Run("vocoder", tmp_path / "t").load()["configs"]["vocoder"]
    assert voc["sample_rate"] == 24000 and voc["hop_length"] == 240
    assert main(["train", "bundle", "--corpus-version", "2", "--corpus", str(corpus), "--train-dir",
                 str(tmp_path / "t"), "-o", str(tmp_path / "b"), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["version"] == "2.0.1+voc.1" and set(written["side_gains"]) == {"lead", "accompaniment", "percussion"}
    assert written["provenance"]["stages"]["ldm"]["model_size"] == "cpu"
    # the data manifest travels in bundle.json and `bundle info` shows it
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["data"] == written["data"]
    assert main(["bundle", "info", str(tmp_path / "b"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["clips"] == 2 and data["weights"]["licence"] == "Apache-2.0"
    assert {"scores", "soundfonts", "films"} == set(data["sources"])
    bundle = load_bundle_v2(tmp_path / "b")
    out = FilmScorePipelineV2(bundle)(n_samples=24000, master="bach", steps=1, threads=1)
    assert out.mix.shape == (24000, 2) and np.isfinite(out.mix).all()
    assert main(["train", "info", "--corpus-version", "2", "--train-dir", str(tmp_path / "t"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["stages"]) == {"vae", "vocoder", "ldm"}


def test_v2_refuses_stages_it_does_not_have(tmp_path, capsys):
    rc = main(["train", "controlnet", "--corpus-version", "2", "--train-dir", str(tmp_path)])
    assert rc != 0
    assert "not written for bundle v2" in capsys.readouterr().err
    assert main(["train", "bundle", "--corpus-version", "2", "--train-dir", str(tmp_path)]) != 0
    assert "pass -o DIR" in capsys.readouterr().err
    assert main(["train", "evaluate", "--corpus-version", "2", "--train-dir", str(tmp_path)]) != 0
    assert "pass --bundle DIR" in capsys.readouterr().err
