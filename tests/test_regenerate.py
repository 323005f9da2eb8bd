"""Regenerating a range of a rendered cue (engine/regenerate.py, `filmscore render --from --regenerate`): outside the
range the WAV is sample-identical to the cue, inside it differs, the original latent is re-run and verified (or read
from a regenerated cue's stored latent), and a cue that does not reproduce is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_support import run_cli

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import FilmscoreError, RequestError
from filmscore.engine.regenerate import Regeneration, keep_mask, latent_path, regenerate_cue
from filmscore.engine.render import render_cue
from filmscore.engine.request import RenderRequest

RATE = 24000


@pytest.fixture(scope="module")
def cue(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("regen")
    bundle = make_tiny_bundle(d / "tiny", seed=0)
    out = d / "cue.wav"
    # 24 s: three windows (latent frames 0-256, 192-448, 344-600), so a short range leaves windows untouched
    render_cue(RenderRequest(output=out, bundle=bundle, duration_s=24.0, seed=3, maestro="bach", steps=3,
                             sample_rate=RATE))
    return out


def _pcm(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32")[0]


def test_outside_identical_inside_differs(cue, tmp_path):
    out = tmp_path / "new.wav"
    res = regenerate_cue(Regeneration(cue, out, 4.0, 7.5, seed=9))
    a, b = res.metadata["regenerated"]["range_samples"]
    assert (a, b) == (4 * RATE, int(7.5 * RATE))
    old, new = _pcm(cue), _pcm(out)
    assert old.shape == new.shape
    assert np.array_equal(old[:a], new[:a]) and np.array_equal(old[b:], new[b:])
    fade = round(0.05 * RATE)
    assert np.mean(old[a + fade:b - fade] != new[a + fade:b - fade]) > 0.9
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["regenerated"]["original_latent"] == "stored latent"  # render_cue keeps OUT.latent.npy
    assert meta["regenerated"]["seed"] == 9 and meta["seed"] == 3  # the request's seed stays the original's
    assert latent_path(out).is_file() and out.with_suffix(".controls.npz").is_file()
    # 4-7.5 s is latent frames 100-188: only the first window has a frame to sample; the others are not denoised
    assert (meta["pipeline"]["n_windows"], meta["pipeline"]["n_windows_denoised"]) == (3, 1)

    # the cue without its latent: its request is run again, verified, and gives the same regeneration
    bare = tmp_path / "bare" / "cue.wav"
    bare.parent.mkdir()
    for src in (cue, cue.with_suffix(".json")):
        shutil.copyfile(src, bare.parent / src.name)
    rerun = regenerate_cue(Regeneration(bare, tmp_path / "rerun.wav", 4.0, 7.5, seed=9))
    assert rerun.metadata["regenerated"]["original_latent"] == "re-run, verified sample-identical"
    assert np.array_equal(_pcm(rerun.output), new)

    # a regenerated cue regenerates from its stored latent; its first range stays as it is outside the new range
    again = regenerate_cue(Regeneration(out, tmp_path / "again.wav", 9.0, 11.0, seed=4))
    assert again.metadata["regenerated"]["original_latent"] == "stored latent"
    c, d = again.metadata["regenerated"]["range_samples"]
    twice = _pcm(tmp_path / "again.wav")
    assert np.array_equal(twice[:c], new[:c]) and np.array_equal(twice[d:], new[d:])


def test_same_seed_same_regeneration(cue, tmp_path):
    one = regenerate_cue(Regeneration(cue, tmp_path / "1.wav", 2.0, 5.0, seed=5))
    two = regenerate_cue(Regeneration(cue, tmp_path / "2.wav", 2.0, 5.0, seed=5))
    assert np.array_equal(_pcm(one.output), _pcm(two.output))


def test_a_changed_cue_is_refused(cue, tmp_path):
    changed = tmp_path / "changed.wav"
    pcm = _pcm(cue)
    pcm[100] += 1 << 8  # one LSB of 24 bits
    sf.write(str(changed), pcm, RATE, subtype="PCM_24")
    changed.with_suffix(".json").write_text(cue.with_suffix(".json").read_text())
    with pytest.raises(FilmscoreError, match="does not reproduce it"):
        regenerate_cue(Regeneration(changed, tmp_path / "x.wav", 2.0, 5.0, seed=5))
    with pytest.raises(RequestError, match="must lie within the cue"):
        regenerate_cue(Regeneration(cue, tmp_path / "x.wav", 20.0, 25.0))
    with pytest.raises(RequestError, match="at least 1 s"):
        regenerate_cue(Regeneration(cue, tmp_path / "x.wav", 8.0, 8.5))


def test_keep_mask_ramps_inside_the_range():
    k = keep_mask(100, 1.0, 2.0, margin_s=0.2)  # frames 25..50, 5-frame ramps
    assert torch.all(k[:25] == 1) and torch.all(k[50:] == 1) and torch.all(k[30:45] == 0)
    assert torch.all(torch.diff(k[24:31]) < 0) and torch.all(torch.diff(k[44:51]) > 0)


def test_cli_regenerate(cue, tmp_path):
    out = tmp_path / "cli.wav"
    proc = run_cli("render", "--from", str(cue), "--regenerate", "3:6", "-o", str(out), "--json", timeout_s=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["regenerated"]["seed"] == 4  # the cue's seed + 1
    assert summary["regenerated"]["outside_identical"] is True
    proc = run_cli("render", "--from", str(cue), "--regenerate", "3-6", "-o", str(tmp_path / "y.wav"), timeout_s=600)
    assert proc.returncode == 2 and "--regenerate '3-6'" in proc.stderr.strip().splitlines()[-1]


def test_cli_regenerate_with_picture(cue, tmp_path):
    """A cue scored to a video: the picture is encoded again for the re-run (verified), and VIDEO must be its video."""
    from video_support import write_clip

    clip = write_clip(tmp_path / "clip.mp4", 4.0)
    bundle = cue.parent / "tiny"
    scored = tmp_path / "scored.wav"
    render_cue(RenderRequest(output=scored, video=clip, bundle=bundle, steps=2, sample_rate=RATE))
    latent_path(scored).unlink()  # without its stored latent: the picture encoded again, the request re-run
    out = tmp_path / "new.wav"
    proc = run_cli("render", clip, "--from", scored, "--regenerate", "1:3", "-o", out, "--json", timeout_s=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["regenerated"]["original_latent"] == "re-run, verified sample-identical"
    a, b = RATE, 3 * RATE
    old, new = _pcm(scored), _pcm(out)
    assert np.array_equal(old[:a], new[:a]) and np.array_equal(old[b:], new[b:]) and not np.array_equal(old, new)
    other = write_clip(tmp_path / "other.mp4", 4.0)
    proc = run_cli("render", other, "--from", scored, "--regenerate", "1:3", "-o", tmp_path / "z.wav", timeout_s=600)
    assert proc.returncode == 2 and f"was rendered for {clip}" in proc.stderr
