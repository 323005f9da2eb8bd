"""Bundle v2 training on a tiny corpus v2 in the build's file layout: the reader, the per-stem view, the stages
(VAE and vocoder at 24 kHz, the LDM with per-group condition dropout), resume and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from filmscore.engine.audio.mel import log_mel
from filmscore.engine.bundle_testing_v2 import write_tiny_corpus_v2
from filmscore.engine.data.labels import load_labels
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.models.controls_v2 import ControlsV2
from filmscore.engine.training import train_v2 as T
from filmscore.engine.training.corpus_v2 import CorpusV2, StemCorpus, stem_mel_path, v2_mel_config
from filmscore.engine.training.loop import Run


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return write_tiny_corpus_v2(tmp_path_factory.mktemp("c2") / "v2", n_clips=3, seconds=3.0)


def frozen_clock() -> float:
    return 0.0  # budgets end by step count only


def test_mel_config_v2_is_100_frames_per_second_to_nyquist():
    m = v2_mel_config(24000)
    assert (m.hop_length, m.n_fft, m.f_max, m.n_mels) == (240, 1536, 12000.0, 128) and m.frame_rate == 100
    with pytest.raises(FilmscoreError, match="multiple of 100"):
        v2_mel_config(22050)


def test_reader_gives_stem_mels_controls_and_globals(corpus_dir):
    c = CorpusV2(corpus_dir)
    assert [x.id for x in c.clips] == ["tiny0.p0.c0", "tiny1.p0.c0"] and c.masters() == ("bach", "folk")
    assert [x.id for x in CorpusV2(corpus_dir, "heldout").clips] == ["tiny2.p0.c0"]
    clip = c.clips[0]
    assert len(clip.mels) == 3 and clip.mels[0].shape == (128, 300) and clip.n_frames == 300
    # the cache holds the log-Mel of each stem's mid signal, computed from the FLAC as written
    import soundfile as sf

    wave, _ = sf.read(str(clip.stem_paths["lead"]), dtype="float32", always_2d=True)
    fresh = log_mel(wave.mean(axis=1), c.mel).numpy()[:, :300]
    np.testing.assert_allclose(np.asarray(clip.mels[0], np.float32), fresh, atol=0.02)
    assert stem_mel_path(corpus_dir, clip.id, "lead", c.mel).is_file()
    arrays, _ = load_labels(corpus_dir / "clips" / "bach" / clip.id)
    expect = ControlsV2.from_labels(arrays).fit_length(300).to_model_input()
    np.testing.assert_allclose(clip.control_input.astype(np.float32), expect, atol=1e-3)
    np.testing.assert_allclose(clip.mood_at(0, 100), [0.7, 0.3, 0.6], atol=1e-6)  # first shot (0-1.5 s)
    np.testing.assert_allclose(clip.mood_at(100, 100), [0.5, 0.5, 0.5], atol=1e-6)  # half in each shot
    np.testing.assert_allclose(clip.mood_at(200, 100), [0.3, 0.7, 0.4], atol=1e-6)
    assert c.clips[1].mood is None  # labels without mood: the mood group is absent for that clip
    assert c.hours == pytest.approx(6.0 / 3600)


def test_reader_refuses_a_v1_corpus(tmp_path):
    (tmp_path / "index.jsonl").write_text("")
    with pytest.raises(FilmscoreError, match="corpus.json"):
        CorpusV2(tmp_path)
    (tmp_path / "corpus.json").write_text(json.dumps({"version": 1, "sample_rate": 16000}))
    with pytest.raises(FilmscoreError, match="version 1"):
        CorpusV2(tmp_path)


def test_stem_view_is_one_clip_per_stem(corpus_dir):
    c = CorpusV2(corpus_dir)
    s = StemCorpus(c)
    assert [x.id for x in s.clips[:3]] == ["tiny0.p0.c0/lead", "tiny0.p0.c0/accompaniment", "tiny0.p0.c0/percussion"]
    assert s.clips[1].audio_path.name == "accompaniment.flac" and s.hours == pytest.approx(3 * c.hours)
    crops = s.sample_crops(np.random.default_rng(0), 4, 100)
    assert all(st % 4 == 0 and st + 100 <= x.log_mel.shape[1] for x, st in crops)


def test_condition_dropout_masks_per_group():
    g = torch.Generator().manual_seed(0)
    keep = T.condition_keep(g, 20000)
    assert set(keep) == set(T.GROUPS)
    for k, v in keep.items():
        assert abs(1 - v.float().mean().item() - T.P_DROP[k]) < 0.01, k
    # independent draws: two groups are not dropped on the same rows
    assert not torch.equal(keep["melody"], keep["harmony"])
    both = (~keep["melody"] & ~keep["harmony"]).float().mean().item()
    assert abs(both - T.P_DROP["melody"] * T.P_DROP["harmony"]) < 0.01
    assert all(v.all() for v in T.condition_keep(g, 5, train=False).values())


def _tiny_models(c: CorpusV2, seed: int = 0):
    torch.manual_seed(seed)
    return T.build_v2_models(4, 3, 8, "tiny", c.masters(), token_dim=16, n_tokens=2, block_out_channels=(16, 32, 32),
                             heads=2)


def _tiny_vae(c: CorpusV2):
    vae, _ = T.v2_vae(StemCorpus(c), latent_channels=4, hidden_channels=16, refine_blocks=1)
    return vae.eval().requires_grad_(False)


def test_ldm_loss_falls_on_a_fixed_batch(corpus_dir):
    from diffusers import DDPMScheduler

    from filmscore.engine.schedulers import DEFAULT_NOISE_SCHEDULE

    c = CorpusV2(corpus_dir)
    models = _tiny_models(c)
    sched = DDPMScheduler(**DEFAULT_NOISE_SCHEDULE)
    latents = T.LatentCacheV2(_tiny_vae(c))
    crops = c.sample_crops(np.random.default_rng(0), 4, 128)
    opt = torch.optim.AdamW([p for m in models.values() for p in m.parameters()], lr=2e-3)

    def loss() -> torch.Tensor:
        return T.ldm_loss_v2(models, sched, latents, crops, torch.Generator().manual_seed(7), 128, train=False)

    first = loss().item()
    for _ in range(40):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.6 * first


def test_a_dropped_group_changes_only_its_rows_prediction(corpus_dir):
    """Dropping harmony on row 0 changes row 0's prediction and leaves row 1's (ControlNet zero convs moved)."""
    c = CorpusV2(corpus_dir)
    models = _tiny_models(c)
    with torch.no_grad():
        for p in models["controlnet"].parameters():
            p.add_(torch.randn_like(p) * 0.05)
    crops = c.sample_crops(np.random.default_rng(1), 2, 128)
    keep = T.condition_keep(torch.Generator(), 2, train=False)
    z = torch.randn(2, 12, 32)
    t = torch.tensor([500, 500])

    def predict(keep):
        tokens, ctrl = T.batch_conditions(models, crops, 128, 8, keep, torch.device("cpu"))
        with torch.no_grad():
            down, mid = models["controlnet"](z, t, tokens, ctrl)
            return models["unet"](z, t, tokens, down, mid), ctrl

    full, _ = predict(keep)
    keep["harmony"] = torch.tensor([False, True])
    part, ctrl = predict(keep)
    assert not ctrl[0, 16:42].any() and ctrl[1, 41].min() == 1
    assert not torch.allclose(full[0], part[0]) and torch.allclose(full[1], part[1])


def _train(corpus_dir, tmp, steps: int, stop_at: int | None = None):
    c = CorpusV2(corpus_dir)
    vae = _tiny_vae(c)
    vae.register_to_config(scaling_factor=1.0)
    kw = dict(feature_dim=8, feature_layout="tiny", batch=2, crop=128, heldout=None, clock=frozen_clock, seed=5)
    run = Run("ldm", tmp)
    if stop_at is not None:
        T.train_ldm_v2(c, vae, 60, init=_tiny_models(c), run=run, max_steps=stop_at, **kw)
        run = Run("ldm", tmp)  # a new process: state from the checkpoint only
    T.train_ldm_v2(c, vae, 60, init=_tiny_models(c), run=run, max_steps=steps, **kw)
    state = Run("ldm", tmp).load()
    return state


def test_resume_equals_uninterrupted_and_runs_are_deterministic(corpus_dir, tmp_path):
    straight = _train(corpus_dir, tmp_path / "a", 6)
    resumed = _train(corpus_dir, tmp_path / "b", 6, stop_at=3)
    again = _train(corpus_dir, tmp_path / "c", 6)
    assert straight["step"] == resumed["step"] == 6
    for name in ("unet", "controlnet", "global_cond"):
        for k, v in straight["modules"][name].items():
            torch.testing.assert_close(resumed["modules"][name][k], v, atol=1e-5, rtol=1e-4, msg=f"{name}.{k}")
            assert torch.equal(again["modules"][name][k], v), f"{name}.{k}"
        for k, v in straight["ema"][name].items():
            torch.testing.assert_close(resumed["ema"][name][k], v, atol=1e-5, rtol=1e-4)
    cfg = straight["configs"]
    assert cfg["unet"]["in_channels"] == 12 and cfg["controlnet"]["control_channels"] == 45
    assert tuple(cfg["global_cond"]["masters"]) == ("bach", "folk")


def test_ldm_logs_heldout_loss(corpus_dir, tmp_path):
    c = CorpusV2(corpus_dir)
    vae = _tiny_vae(c)
    held = CorpusV2(corpus_dir, "heldout")
    run = T.train_ldm_v2(c, vae, 60, feature_dim=8, feature_layout="tiny", init=_tiny_models(c),
                         run=Run("ldm", tmp_path), max_steps=2, batch=2, crop=128, heldout=held,
                         clock=frozen_clock)
    curve = run.extra["heldout_loss"]["all"]
    assert [s for s, _ in curve] == [0, 2] and all(np.isfinite(v) for _, v in curve)


def test_vae_and_vocoder_stages_train_at_the_corpus_rate(corpus_dir, tmp_path):
    c = CorpusV2(corpus_dir)
    vae = T.train_vae_v2(c, 60, run=Run("vae", tmp_path), init=_tiny_vae(c).train().requires_grad_(True),
                         max_steps=2, batch=2)
    assert vae.step == 2 and (tmp_path / "vae" / "latest.pt").is_file()
    voc = T.train_vocoder_v2(c, 60, run=Run("vocoder", tmp_path), init=T.v2_vocoder(c.mel, dim=16, n_blocks=1),
                             max_steps=2, batch=2)
    cfg = voc.load()["configs"]["vocoder"]
    assert (cfg["sample_rate"], cfg["hop_length"], cfg["n_fft"], cfg["f_max"]) == (24000, 240, 960, 12000.0)
    # a fresh VAE stage starts from PCA of stem patches at V2_LATENT_CHANNELS
    fresh = T.train_vae_v2(c, 60, run=Run("vae", tmp_path / "fresh"), max_steps=1, batch=2)
    assert fresh.load()["configs"]["vae"]["latent_channels"] == T.V2_LATENT_CHANNELS
    assert fresh.extra["pca_init_l1"] > 0


def test_model_sizes_build_and_the_gpu_size_is_larger():
    counts = {}
    for size, spec in T.MODEL_SIZES.items():
        models = T.build_v2_models(spec["vae"]["latent_channels"], 3, 64, "x", ("bach",), **spec["ldm"])
        counts[size] = sum(p.numel() for m in models.values() for p in m.parameters())
        assert models["unet"].config.in_channels == 3 * spec["vae"]["latent_channels"]
    assert counts["gpu"] > 2 * counts["cpu"]
