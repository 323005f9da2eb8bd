"""Held-out measures of a bundle: the fixed-draw denoising loss (`train_ldm.heldout_loss`) and
`filmscore train evaluate` (evaluate_bundle + update_metrics) on a tiny real corpus and a tiny bundle."""

from __future__ import annotations

import json

import pytest
import torch
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.metrics.testing import make_tiny_corpus
from filmscore.engine.training.train_ldm import (
    CROP,
    LatentCache,
    heldout_corpora,
    heldout_loss,
)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return make_tiny_corpus(tmp_path_factory.mktemp("corpus"), works_per_master=1, duration_s=6.0)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _loss_parts(bundle_dir):
    from diffusers import DDPMScheduler

    bundle = load_bundle(bundle_dir)
    models = {k: bundle.models[k] for k in ("unet", "controlnet", "film_head")}
    return bundle, models, DDPMScheduler(**bundle.noise_schedule), LatentCache(bundle.models["vae"])


def test_heldout_corpora_are_the_heldout_works_with_a_full_crop(corpus_dir, tmp_path):
    held = heldout_corpora(corpus_dir)
    assert list(held) == ["all"] and {c.id.split("-r")[0] for c in held["all"].clips} == {"high-w1", "low-w1"}
    assert all(c.log_mel.shape[1] >= CROP for c in held["all"].clips)
    short = make_tiny_corpus(tmp_path / "short", works_per_master=1, duration_s=3.0)
    assert heldout_corpora(short) == {}  # no clip holds a 5.12 s crop: nothing to measure on


def test_heldout_loss_is_one_fixed_draw_and_leaves_training_flags_alone(corpus_dir, bundle_dir):
    bundle, models, sched, latents = _loss_parts(bundle_dir)
    held = heldout_corpora(corpus_dir, bundle.mel_config)["all"]
    models["unet"].train()
    models["controlnet"].eval()
    first = heldout_loss(models, held, sched, latents, n_crops=32)
    assert first == heldout_loss(models, held, sched, latents, n_crops=32)  # same crops, timesteps and noise
    assert models["unet"].training and not models["controlnet"].training
    assert first != heldout_loss(models, held, sched, latents, n_crops=32, seed=7)
    with torch.no_grad():  # a model that changes gets another figure on the same draw
        models["unet"].conv_out.bias.add_(0.5)
    assert heldout_loss(models, held, sched, latents, n_crops=32) != first


@pytest.mark.slow
def test_evaluate_writes_adherence_denoising_loss_and_vocoder_figures(corpus_dir, bundle_dir, tmp_path):
    from filmscore.bridge.cli import main

    out = tmp_path / "metrics.json"
    rc = main(["train", "evaluate", "--bundle", str(bundle_dir), "--corpus", str(corpus_dir), "--n-clips", "2",
               "--steps", "2", "--compare-steps", "1", "-o", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    s = result["summary"]
    assert s["n_clips"] == 2 and [r["id"] for r in result["clips"]] == ["high-w1-r0", "low-w1-r0"]
    assert 0.0 <= s["melody_acc@w1"] <= 1.0 and 0.0 <= s["melody_acc@w3_steps1"] <= 1.0
    assert s["real_audio_melody_acc"] > 0.8  # the tiny corpus's own audio re-extracts its melody
    assert s["heldout_v_loss"] > 0 and s["heldout_v_loss_crops"] == 256 and s["heldout_clips"] == 2
    bundle, models, sched, latents = _loss_parts(bundle_dir)  # the figure is heldout_loss of the bundle's models
    held = heldout_corpora(corpus_dir, bundle.mel_config)["all"]
    assert s["heldout_v_loss"] == heldout_loss(models, held, sched, latents, n_crops=256)
    assert s["vocoder_mrstft"] > 0 and s["griffin_lim_mrstft"] > 0 and s["vae_recon_l1_logmel"] > 0
    assert load_bundle(bundle_dir).manifest["metrics"]["heldout_v_loss"] == s["heldout_v_loss"]
    assert s["works"] == 2 and s["masters"] == ["high", "low"]

    assert len(result["heldout_v_loss_per_crop"]) == 256
    assert sum(result["heldout_v_loss_per_crop"]) / 256 == pytest.approx(s["heldout_v_loss"], abs=1e-5)

    again = tmp_path / "again.json"  # the same bundle against itself: every paired difference is exactly 0
    assert main(["train", "evaluate", "--bundle", str(bundle_dir), "--corpus", str(corpus_dir), "--steps", "2",
                 "--compare-steps", "1", "--compare-to", str(out), "-o", str(again)]) == 0
    cmp = json.loads(again.read_text())["comparison"]
    assert cmp["n_clips"] == 2 and {"melody_acc@w3", "dynamics_r@w1", "heldout_v_loss"} <= set(cmp["metrics"])
    assert all(m["diff"] == 0 and m["ci95"] == [0, 0] for m in cmp["metrics"].values())
    assert cmp["metrics"]["heldout_v_loss"]["n"] == 256

    pinned = tmp_path / "pinned.json"  # --clips-from: exactly the clips of an earlier result, in its order
    out.write_text(json.dumps({"summary": {}, "clips": [{"id": "low-w1-r0"}]}))
    assert main(["train", "evaluate", "--bundle", str(bundle_dir), "--corpus", str(corpus_dir), "--steps", "2",
                 "--clips-from", str(out), "-o", str(pinned)]) == 0
    assert [r["id"] for r in json.loads(pinned.read_text())["clips"]] == ["low-w1-r0"]


def test_evaluate_names_clips_it_cannot_find(corpus_dir, bundle_dir, tmp_path, capsys):
    from filmscore.bridge.cli import main

    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"clips": [{"id": "low-w1-r0"}, {"id": "high-w0-r0"}]}))  # w0 is a train work
    assert main(["train", "evaluate", "--bundle", str(bundle_dir), "--corpus", str(corpus_dir),
                 "--clips-from", str(earlier)]) == 2
    err = capsys.readouterr().err
    assert "1 of the 2 clips" in err and "high-w0-r0" in err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["train", "evaluate", "--bundle", str(bundle_dir), "--corpus", str(corpus_dir),
                 "--clips-from", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a `filmscore train evaluate -o` result" in capsys.readouterr().err


def test_select_clips_spreads_over_composers_and_works():
    from types import SimpleNamespace

    from filmscore.engine.training.evaluate import select_clips

    clips = [SimpleNamespace(id=f"{m}{w}.c{k}", work=f"{m}/{w}", master=m)
             for m, n_works in (("bach", 5), ("folk", 3), ("josquin", 1)) for w in range(n_works) for k in range(4)]
    picked = select_clips(clips, 5)
    assert [c.master for c in picked] == ["bach", "folk", "josquin", "bach", "folk"]
    assert len({c.work for c in picked}) == 5 and all(c.id.endswith(".c0") for c in picked)
    assert select_clips(clips, 5) == picked  # deterministic
    assert len(select_clips(clips, 100)) == 9  # one per work at most


def test_compare_evaluations_gives_paired_intervals():
    from filmscore.engine.training.evaluate import EvaluationError, compare_evaluations

    ids = [f"c{i}" for i in range(20)]
    before = {"summary": {"heldout_clips": 5}, "clips": [{"id": i, "melody_acc@w3": 0.5 + 0.01 * k}
                                                        for k, i in enumerate(ids)],
              "heldout_v_loss_per_crop": [0.6] * 8}
    better = {"summary": {"heldout_clips": 5}, "clips": [{"id": i, "melody_acc@w3": 0.6 + 0.01 * k + 0.002 * (k % 3)}
                                                        for k, i in enumerate(ids)],
              "heldout_v_loss_per_crop": [0.6] * 8}
    m = compare_evaluations(before, better)["metrics"]
    assert m["melody_acc@w3"]["diff"] == pytest.approx(0.102, abs=1e-3)
    assert 0.1 <= m["melody_acc@w3"]["ci95"][0] <= m["melody_acc@w3"]["ci95"][1] <= 0.104
    assert m["heldout_v_loss"]["diff"] == 0
    grown = dict(better, summary={"heldout_clips": 6})  # another held-out split: another draw, not paired
    assert "heldout_v_loss" not in compare_evaluations(before, grown)["metrics"]
    with pytest.raises(EvaluationError, match="same clips"):
        compare_evaluations(before, dict(better, clips=better["clips"][1:]))
