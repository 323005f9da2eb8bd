"""End to end through `render_cue` with a tiny bundle of real safetensors weights: exact length, determinism,
bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import BundleError, RequestError
from filmscore.engine.render import render_cue
from filmscore.engine.request import RenderRequest


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0)


def _render(bundle: Path, out: Path, **kw) -> np.ndarray:
    req = RenderRequest(output=out, bundle=bundle, steps=kw.pop("steps", 4), **kw)
    render_cue(req)
    audio, sr = sf.read(out, dtype="float32")
    assert sr == req.sample_rate
    return audio


@pytest.mark.slow
def test_37_3_s_cue_exact_length_and_seeded(tiny_bundle, tmp_path):
    a = _render(tiny_bundle, tmp_path / "a.wav", duration_s=37.3, seed=7)
    assert a.shape == (int(round(37.3 * 48000)),)  # 1,790,400 samples
    b = _render(tiny_bundle, tmp_path / "b.wav", duration_s=37.3, seed=7)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    c = _render(tiny_bundle, tmp_path / "c.wav", duration_s=37.3, seed=8)
    assert not np.array_equal(a, c)
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["n_samples"] == 1790400 and meta["pipeline"]["n_windows"] == 5  # 933 latent frames: starts 0, 192, 384, 576, 677
    assert (tmp_path / "a.controls.npz").is_file()
    assert np.isfinite(a).all() and np.abs(a).max() <= 10 ** (-1 / 20) + 1e-4


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp", "euler"])
def test_every_scheduler_renders(tiny_bundle, tmp_path, scheduler):
    a = _render(tiny_bundle, tmp_path / f"{scheduler}.wav", duration_s=3.0, scheduler=scheduler, sample_rate=44100)
    assert a.shape == (132300,) and np.abs(a).max() > 0


def test_bad_requests_name_the_field(tiny_bundle, tmp_path):
    with pytest.raises(RequestError, match="duration"):
        RenderRequest(output=tmp_path / "x.wav", duration_s=-1).validate()
    with pytest.raises(RequestError, match="scheduler"):
        RenderRequest(output=tmp_path / "x.wav", duration_s=5, scheduler="plms").validate()  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="without a video"):
        RenderRequest(output=tmp_path / "x.wav").validate()
    with pytest.raises(RequestError, match="does not exist"):
        render_cue(RenderRequest(output=tmp_path / "nope" / "x.wav", duration_s=5, bundle=tiny_bundle))


def test_corrupt_bundle_names_the_file(tiny_bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    with open(broken / "unet.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="unet.safetensors: sha256"):
        render_cue(RenderRequest(output=tmp_path / "x.wav", duration_s=2, bundle=broken))
    (broken / "vae.safetensors").unlink()
    with pytest.raises(BundleError, match="vae.safetensors: component 'vae' file is missing"):
        render_cue(RenderRequest(output=tmp_path / "x.wav", duration_s=2, bundle=broken))


def test_same_bytes_at_one_and_two_threads(tiny_bundle, tmp_path):
    """The CLI runs all cores, a bridge worker one thread: the same request and seed must give the same WAV. 25 s
    with a theme: 3 windows x 2 guidance passes in 2 denoiser calls, 3 vocoder chunks (engine/threads.py)."""
    import torch

    before = torch.get_num_threads()
    files = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = tmp_path / f"t{n}.wav"
            _render(tiny_bundle, out, duration_s=25.0, seed=5, maestro="bach", steps=3)
            files[n] = out.read_bytes()
            assert torch.get_num_threads() == n  # the render restores the caller's setting
    finally:
        torch.set_num_threads(before)
    assert files[1] == files[2]
    meta = json.loads((tmp_path / "t2.json").read_text())
    assert meta["pipeline"]["threads"] == 2
    rep = meta["reproducibility"]
    assert rep["independent_of_threads"] and rep["depends_on"]["backend"] == "torch"
    assert rep["depends_on"]["cpu_isa"] and rep["depends_on"]["libraries"]["torch"] == torch.__version__


def test_preview_is_delivered_first_and_leaves_the_final_unchanged(tiny_bundle, tmp_path):
    from filmscore.engine.render import Preview

    out, draft = tmp_path / "cue.wav", tmp_path / "draft.wav"
    seen = []

    def ready(path, seconds):
        seen.append((path, seconds, out.exists()))

    req = RenderRequest(output=out, bundle=tiny_bundle, steps=5, duration_s=6.0, seed=3, maestro="bach")
    render_cue(req, preview=Preview(draft, steps=2, on_ready=ready))
    assert len(seen) == 1 and seen[0][0] == draft and seen[0][1] > 0 and not seen[0][2]  # before the full cue
    info = sf.info(str(draft))
    assert (info.frames, info.samplerate, info.subtype) == (6 * 48000, 48000, "PCM_24")
    meta = json.loads((tmp_path / "cue.json").read_text())
    assert meta["preview"]["steps"] == 2 and meta["preview"]["path"] == str(draft)
    assert "preview" in meta["timings_s"]
    plain = tmp_path / "plain.wav"
    render_cue(RenderRequest(output=plain, bundle=tiny_bundle, steps=5, duration_s=6.0, seed=3, maestro="bach"))
    assert plain.read_bytes() == out.read_bytes()  # the draft does not disturb the full render
    assert draft.read_bytes() != out.read_bytes()


def test_concurrent_renders_in_one_process_restore_the_thread_count():
    """Two renders on two threads of one process (an in-process executor): each runs its calls on one intra-op
    thread, and the caller's thread count comes back when the last one ends, not the other's 1."""
    import threading

    import torch

    from filmscore.engine.threads import model_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    inside, release = threading.Barrier(3), threading.Event()  # both renders and this thread
    seen = []

    def render():
        with model_threads() as pool:
            seen.append((pool.threads, torch.get_num_threads()))
            inside.wait(timeout=30)
            release.wait(timeout=30)

    try:
        workers = [threading.Thread(target=render) for _ in range(2)]
        for w in workers:
            w.start()
        inside.wait(timeout=30)
        release.set()
        for w in workers:
            w.join(timeout=30)
        assert seen == [(2, 1), (2, 1)] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
