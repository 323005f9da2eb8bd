"""Tuning a bundle's ControlNet alone (engine/training/train_controlnet.py): LoRA adapters land on the expected
layers and are the only thing that learns, the UNet never changes, runs resume, the merged bundle loads and
renders, bad settings fail with one clear line."""

from __future__ import annotations

import json
import shutil

import mido
import numpy as np
import pytest
import torch
from filmscore.bridge.cli import main as cli_main
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.training.assemble import assemble_tuned_bundle
from filmscore.engine.training.corpus_data import Corpus, parse_where
from filmscore.engine.training.loop import Run
from filmscore.engine.training.train_controlnet import (
    ControlNetTuningError,
    add_lora,
    lora_target_names,
    make_spec,
    merged_controlnet,
    train_controlnet,
)
from torch import nn


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    return load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=3, with_vocoder=False))


def _fresh_controlnet(bundle):
    src = bundle.models["controlnet"]
    net = type(src).from_config(src.config)
    net.load_state_dict(src.state_dict())
    return net


def _inputs(seed: int = 0, length: int = 16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 8, length, generator=g), torch.tensor([10, 700]), torch.randn(2, 2, 16, generator=g),
            torch.rand(2, 14, 4 * length, generator=g))


def _lora_layer_names(model: nn.Module) -> set[str]:
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return {n.removeprefix(prefix) for n, m in model.named_modules() if isinstance(m, LoraLayer)}


@pytest.mark.parametrize("targets", ["all", "attention"])
def test_lora_wraps_the_expected_layers_and_only_adapters_learn(tiny_bundle, targets):
    net = _fresh_controlnet(tiny_bundle)
    expected = lora_target_names(net, targets)
    if targets == "all":
        assert len(expected) == sum(isinstance(m, (nn.Linear, nn.Conv1d)) for m in net.modules())
        assert {"conv_in", "control_embedding.convs.0", "mid.self_attn.to_q", "zero_convs.0"} <= set(expected)
    else:
        assert expected and all(n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "to_out") for n in expected)
    base_down, base_mid = net(*_inputs())
    model = add_lora(net, 4, targets)
    assert _lora_layer_names(model) == set(expected)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)

    # B starts at zero: the wrapped ControlNet is the base one, to float32 rounding (peft 0.21 adds the zero update
    # through another kernel order: 1.8e-7 at most on activations of ~0.3; a trained B moves them by ~1e-2).
    down, mid = model(*_inputs())
    for a, b in zip([*down, mid], [*base_down, base_mid], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)

    # Gradients through the frozen UNet reach the adapters only.
    unet = tiny_bundle.models["unet"]
    x, t, tokens, ctrl = _inputs(1)
    down, mid = model(x, t, tokens, ctrl)
    unet(x, t, tokens, down, mid).square().mean().backward()
    assert all(p.grad is None for p in unet.parameters())
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) <= set(trainable) and any(float(g.abs().sum()) > 0 for g in grads.values())


@pytest.mark.parametrize("rank", [0, -2, 17, 2.5, True])
def test_bad_lora_rank_is_a_clear_error(tiny_bundle, rank):
    # The tiny ControlNet's narrowest layer has 16 channels: rank 16 is the most that is still low-rank.
    with pytest.raises(ControlNetTuningError, match=r"--lora .*: the rank must be an integer from 1 to 16"):
        add_lora(_fresh_controlnet(tiny_bundle), rank)
    add_lora(_fresh_controlnet(tiny_bundle), 16)


def test_bad_targets_and_where_are_clear_errors(tiny_bundle):
    with pytest.raises(ControlNetTuningError, match="LoRA targets 'convs'"):
        add_lora(_fresh_controlnet(tiny_bundle), 4, "convs")
    assert parse_where(["orchestration=strings,brass", "master=bach"]) == \
        {"orchestration": ("strings", "brass"), "master": ("bach",)}
    for bad in ("orchestration", "=strings", "orchestration="):
        with pytest.raises(FilmscoreError, match="expected FIELD=VALUE"):
            parse_where([bad])


def test_cli_rejects_bad_rank_and_stray_flags(tiny_bundle, tmp_path, capsys):
    rc = cli_main(["train", "controlnet", "--lora", "0", "--from-bundle", str(tiny_bundle.path),
                   "--train-dir", str(tmp_path)])
    assert rc == 2 and "--lora 0: the rank must be an integer from 1 to 16" in capsys.readouterr().err
    rc = cli_main(["train", "ldm", "--resume", "--train-dir", str(tmp_path), "--corpus", str(tmp_path)])
    assert rc == 2 and "apply to `train controlnet`" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    if shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed (scripts/setup.sh installs it)")
    from filmscore.engine.data.build import BuildConfig, build_corpus

    root = tmp_path_factory.mktemp("corpus") / "v1"
    build_corpus(BuildConfig(root, hours=1.0, workers=1, tiny=True, features=True))
    return root


@pytest.fixture
def feature_bundle(tmp_path):
    return load_bundle(make_tiny_bundle(tmp_path / "base", seed=5, with_vocoder=False))


def _melody_midi(path):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for note in (60, 64, 67, 72, 67, 64):
        track += [mido.Message("note_on", note=note, velocity=90, time=0),
                  mido.Message("note_off", note=note, velocity=0, time=240)]
    mid.save(path)
    return path


@pytest.mark.slow
def test_where_filters_the_corpus(tiny_corpus):
    corpus = Corpus(tiny_corpus, "train", where={"master": ("folk",)})
    assert corpus.clips and all(c.master == "folk" for c in corpus.clips)
    assert len(corpus.clips) < len(Corpus(tiny_corpus, "train").clips)
    with pytest.raises(FilmscoreError, match="no clip has a field 'colour'"):
        Corpus(tiny_corpus, "train", where={"colour": ("red",)})
    with pytest.raises(FilmscoreError, match="master values here: .*bach"):
        Corpus(tiny_corpus, "train", where={"master": ("mahler",)})


@pytest.mark.slow
def test_lora_tuning_resumes_and_writes_a_merged_bundle_that_renders(tiny_corpus, feature_bundle, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr("filmscore.engine.training.loop.LOG_EVERY", 1)
    base = feature_bundle
    corpus = Corpus(tiny_corpus, "train", base.mel_config)
    train_dir = tmp_path / "train"
    spec = make_spec(base, 4)
    # The tiny corpus has no held-out split to spare: its train clips stand in for the held-out loss's mechanics.
    first = train_controlnet(corpus, base, spec, 5, batch=2, max_steps=3, lr=1e-2, run=Run("controlnet", train_dir),
                             heldout={"subset": corpus})
    assert first.step == 3 and first.ckpt.is_file() and first.dir.name == "controlnet"
    assert [s for s, _ in first.extra["heldout_loss"]["subset"]] == [0, 3]
    assert 0 < first.extra["trainable_parameters"] < 0.5 * first.extra["controlnet_parameters"]
    log = [json.loads(line) for line in (first.dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in log
                                                                         if "loss" in r)
    assert [r["step"] for r in log if "heldout_loss_subset" in r] == [0, 3]

    with pytest.raises(ControlNetTuningError, match="pass --resume to continue it"):
        train_controlnet(corpus, base, spec, 5, batch=2, max_steps=4, run=Run("controlnet", train_dir))
    with pytest.raises(ControlNetTuningError, match="rank: 4 there, 8 now"):
        train_controlnet(corpus, base, make_spec(base, 8), 5, batch=2, max_steps=4, run=Run("controlnet", train_dir),
                         resume=True)
    with pytest.raises(ControlNetTuningError, match="no ControlNet tuning checkpoint"):
        train_controlnet(corpus, base, spec, 5, batch=2, max_steps=4, run=Run("controlnet", tmp_path / "none"),
                         resume=True)
    resumed = train_controlnet(corpus, base, spec, 5, batch=2, max_steps=5, lr=1e-2, run=Run("controlnet", train_dir),
                               resume=True, heldout={"subset": corpus})
    assert resumed.step == 5  # went on from step 3
    assert [s for s, _ in resumed.extra["heldout_loss"]["subset"]] == [0, 3, 5]

    out = tmp_path / "tuned"
    summary = assemble_tuned_bundle(train_dir, out)
    tuned = load_bundle(out)
    tuning = tuned.manifest["provenance"]["controlnet_tuning"]
    assert tuning["method"] == "lora" and tuning["lora"] == {"rank": 4, "alpha": 4.0, "targets": "all", "merged": True}
    assert tuning["base"]["hash"] == base.hash and tuning["steps"] == 5 and tuning["data"]["clips"] == len(corpus.clips)
    assert tuning["heldout_loss"] == resumed.extra["heldout_loss"]
    assert summary["version"] == "0+cn.lora4.5" and tuned.hash != base.hash
    assert {c["dtype"] for c in tuned.manifest["components"].values()} == {"float32"}  # the base's storage
    # A plain ControlNet (no adapter keys), other components bit-identical to the base.
    assert type(tuned.models["controlnet"]).__name__ == "FilmScoreControlNet1D"
    assert not any("lora" in k for k in tuned.models["controlnet"].state_dict())
    for name in ("vae", "unet", "film_head"):
        assert tuned.manifest["components"][name]["config"] == base.manifest["components"][name]["config"]
        for k, v in base.models[name].state_dict().items():
            assert torch.equal(tuned.models[name].state_dict()[k], v), f"{name}.{k} changed"
    x, t, _, ctrl = _inputs(2)
    tokens = base.models["unet"].null_context(2)
    _, mid_base = base.models["controlnet"](x, t, tokens, ctrl)
    _, mid_tuned = tuned.models["controlnet"](x, t, tokens, ctrl)
    assert float((mid_tuned - mid_base).abs().max()) > 1e-4

    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    res = render_cue(RenderRequest(output=tmp_path / "cue.wav", duration_s=2.0, steps=2, bundle=out, backend="torch",
                                   midi=_melody_midi(tmp_path / "theme.mid")))
    assert res.n_samples == 96000


@pytest.mark.slow
def test_full_tuning_trains_every_controlnet_weight(tiny_corpus, feature_bundle, tmp_path):
    base = feature_bundle
    corpus = Corpus(tiny_corpus, "train", base.mel_config, where={"master": ("bach",)})
    run = train_controlnet(corpus, base, make_spec(base, None, where=corpus.where), 5, batch=2, max_steps=2,
                           run=Run("controlnet", tmp_path))
    assert run.extra["trainable_parameters"] == run.extra["controlnet_parameters"]
    assert run.extra["tuning"]["where"] == {"master": ["bach"]}
    summary = assemble_tuned_bundle(tmp_path, tmp_path / "out", fp16=True)
    assert summary["version"] == "0+cn.full.2"
    assert load_bundle(tmp_path / "out").manifest["components"]["controlnet"]["dtype"] == "float16"


@torch.no_grad()
def test_merging_keeps_the_adapters_effect(tiny_bundle):
    model = add_lora(_fresh_controlnet(tiny_bundle), 4)
    for n, p in model.named_parameters():
        if ".lora_B." in n:
            p.normal_(0.0, 0.05)
    _, mid = model(*_inputs(4))
    _, mid_base = tiny_bundle.models["controlnet"](*_inputs(4))
    merged = merged_controlnet(model)
    assert type(merged).__name__ == "FilmScoreControlNet1D" and not any("lora" in k for k in merged.state_dict())
    _, mid_merged = merged(*_inputs(4))
    assert torch.allclose(mid_merged, mid, atol=1e-5) and float((mid - mid_base).abs().max()) > 1e-3
    assert _lora_layer_names(model)  # merged_controlnet works on a copy: the source keeps its adapters
