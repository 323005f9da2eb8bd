"""The streamed tail of a render equals the whole-array computation it replaced, on a real rendered cue.

The pipeline decodes and vocodes a chunk at a time into the wave (engine/pipeline.py), and delivery masters through
working files a block at a time (engine/audio/mastering.py `master_streamed`, engine/audio/spill.py): both must
give the samples the whole-cue arrays give, so a join placed or cropped wrongly anywhere (decoder, vocoder,
resampler, loudness, limiter, writer) fails here. The cue is the tiny seeded bundle's (engine/bundle_testing.py),
45 s: five decoder and five vocoder chunks (three groups of two on one thread), chunked resampling, and nine
loudness/limiter chunks at 48 kHz.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import torch

from filmscore.engine import pipeline as P
from filmscore.engine.audio.delivery import deliver, pcm24, read_wav_chunks
from filmscore.engine.audio.loudness import CHUNK, TRUE_PEAK_CEILING_DBTP
from filmscore.engine.audio.mastering import master, master_streamed
from filmscore.engine.audio.spill import Spill
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.chunking import run_chunked
from filmscore.engine.latent import pcm_sha256, wav_pcm_sha256
from filmscore.engine.render import build_pipeline

SECONDS = 45.0
RATE = 16_000


@pytest.fixture(scope="module")
def cue(tmp_path_factory):
    bundle = make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")
    pipe, _ = build_pipeline(bundle)
    n = int(SECONDS * RATE)
    out = pipe(n_samples=n, steps=2, seed=3, threads=1, keep_mel=True)
    return pipe, n, out


def _whole(pipe, latents, n):
    """The tail as it was: the whole Mel decoded in chunks and joined, then vocoded in chunks and joined."""
    hop = pipe.mel_config.hop_length
    n_mel = math.ceil(n / hop)
    with torch.no_grad():
        mel = run_chunked(pipe.decode, latents / pipe.vae.config.scaling_factor, P.DECODE_CHUNK_LATENT,
                          P.DECODE_MARGIN_LATENT, 4)[..., :n_mel]
        wave = run_chunked(pipe.vocode, mel, P.VOCODE_CHUNK_MEL, P.VOCODE_MARGIN_MEL, hop)[0, :n]
    return mel[0].numpy(), torch.nn.functional.pad(wave, (0, n - wave.shape[0])).numpy()


def test_streamed_decode_and_vocode_equal_the_whole_cue(cue):
    pipe, n, out = cue
    mel, wave = _whole(pipe, out.latents, n)
    assert out.wave.dtype == np.float32 and out.wave.shape == (n,)
    assert np.array_equal(out.wave, wave)  # every chunk join, sample for sample
    assert np.array_equal(out.log_mel, mel)
    two = pipe(n_samples=n, steps=2, seed=3, threads=2)  # groups of four chunks: other joins between groups
    assert two.log_mel is None  # a render keeps no whole-cue Mel
    assert np.array_equal(two.wave, wave)


@pytest.mark.parametrize("target,limited", [(-40.0, False), (-23.0, True)])  # the tiny cue is peaky: -23 limits it
def test_streamed_master_equals_master(cue, tmp_path, target, limited):
    _, _, out = cue
    n_out = int(SECONDS * 48_000)
    whole, report = master(out.wave, RATE, 48_000, n_out, target)
    with master_streamed(out.wave, RATE, 48_000, n_out, target, folder=tmp_path) as streamed:
        assert streamed.shape == (n_out, 1)
        blocks = np.concatenate(list(streamed.blocks(100_003)))[:, 0]  # blocks off the working chunks' grid
        assert streamed.report == report
    assert report["limited"] is limited
    assert np.array_equal(blocks, whole), float(np.abs(blocks - whole).max())
    assert abs(report["integrated_lufs"] - target) < 0.1 and report["true_peak_dbtp"] <= TRUE_PEAK_CEILING_DBTP
    assert abs(pyloudnorm.Meter(48_000).integrated_loudness(blocks.astype(np.float64)) - target) < 0.1  # another meter
    # no click where the working chunks meet: the step across each join is an ordinary step of the signal
    steps = np.abs(np.diff(blocks))
    joins = np.arange(CHUNK, n_out, CHUNK) - 1
    assert steps[joins].max() <= np.quantile(steps, 0.9999)
    assert list(tmp_path.iterdir()) == []  # the working files have no names and are gone


def test_delivered_file_carries_the_whole_array_samples(cue, tmp_path):
    _, _, out = cue
    n_out = int(SECONDS * 48_000)
    whole, _ = master(out.wave, RATE, 48_000, n_out, -23.0)
    report = deliver(out.wave, RATE, tmp_path / "cue.wav", n_out, 48_000, -23.0)
    assert read_wav_chunks(tmp_path / "cue.wav")["data"] == pcm24(whole)
    assert abs(report["integrated_lufs"] + 23.0) < 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cue.wav"]
    # the render's latent record hashes the delivered samples a block at a time: the whole-array hash
    # (the samples decoded here from the data chunk's bytes: 24-bit little-endian two's complement)
    b = np.frombuffer(read_wav_chunks(tmp_path / "cue.wav")["data"], np.uint8).reshape(-1, 3).astype(np.int32)
    pcm = b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16
    assert wav_pcm_sha256(tmp_path / "cue.wav") == pcm_sha256(np.where(pcm >= 1 << 23, pcm - (1 << 24), pcm))


def test_spill_reads_what_was_written_and_zeros_elsewhere(tmp_path):
    with Spill(10, 2, tmp_path) as s:
        s[2:5] = np.arange(6, dtype=np.float32).reshape(3, 2)
        assert np.array_equal(s[0:6], np.array([[0, 0], [0, 0], [0, 1], [2, 3], [4, 5], [0, 0]], np.float32))
        assert np.array_equal(s[3:5, 1], np.array([3, 5], np.float32))
        assert s[8:20].shape == (2, 2)  # clipped at the end, as an array's slice
        with pytest.raises(TypeError):
            s[::2]
