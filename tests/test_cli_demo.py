"""The README's first command: `filmscore demo` makes a sample clip and scores it with the shipped default bundle."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from filmscore.bridge.cli import main
from filmscore.engine.bundle import DEFAULT_BUNDLE_DIR, load_bundle


def test_default_bundle_ships_and_verifies():
    bundle = load_bundle(DEFAULT_BUNDLE_DIR)  # checks every component's sha256 and the Mel contract
    info = bundle.info()
    assert {"vae", "unet", "controlnet", "film_head"} <= set(info["components"])
    assert info["provenance"]["stages"]["ldm"]["steps"] > 0
    assert "melody_acc@w3" in info["metrics"]
    size = sum(f.stat().st_size for f in DEFAULT_BUNDLE_DIR.iterdir())
    assert size < 100e6


@pytest.mark.slow
def test_demo_renders_the_sample_clip(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path), "--steps", "3", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    audio, sr = sf.read(summary["cue"])
    assert sr == 48000 and audio.shape[0] == round(summary["duration_s"] * 48000)
    assert 12.5 <= summary["duration_s"] <= 14.1  # 14 s of shots, less the dissolve's overlap
    assert len(summary["true_cuts_s"]) == 3
    meta = json.loads((tmp_path / "cue.json").read_text())
    assert meta["picture"] is not None and meta["bundle"]["name"] == "filmscore-default"


def test_demo_keeps_an_earlier_run_unless_overwrite(tmp_path, capsys):
    clip = tmp_path / "sample_clip.mp4"
    clip.write_bytes(b"an earlier sample clip")
    assert main(["demo", "-o", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample_clip.mp4 exists; give --overwrite to replace it" in err
    assert clip.read_bytes() == b"an earlier sample clip" and not (tmp_path / "cue.wav").exists()
