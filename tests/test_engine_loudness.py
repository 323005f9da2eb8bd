"""The chunked one-pass loudness meter against the reference implementations it replaces (pyloudnorm's BS.1770-4
meter and scipy's resample_poly true peak), and normalisation that delivers the same samples as gain-by-remeasure."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from filmscore.engine.audio import loudness as ld

SR = 48000


def music(seconds: float = 7.0, channels: int = 1, seed: int = 0, transient: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    cols = []
    for c in range(channels):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.01 * c) * t + rng.uniform(0, 6)) for f in (110.0, 440.0, 1760.0)) / 3
        x = 0.2 * x * (0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * t)) + 0.01 * rng.standard_normal(t.size)
        x[SR: SR + 200] += transient * np.hanning(200)
        cols.append(x)
    out = np.stack(cols, 1) if channels > 1 else cols[0]
    return out.astype(np.float32)


@pytest.fixture(params=[None, 5000], ids=["whole", "chunked"])
def chunk(request, monkeypatch):
    """Also run every check with chunks far shorter than the audio, so chunk joins are exercised."""
    if request.param:
        monkeypatch.setattr(ld, "CHUNK", request.param)
    return request.param


@pytest.mark.parametrize("channels", [1, 2])
def test_measure_equals_pyloudnorm_and_resample_poly(chunk, channels):
    x = music(channels=channels)
    x64 = x.astype(np.float64)
    m = ld.measure(x, SR)
    meter = pyloudnorm.Meter(SR)
    assert m.integrated_lufs() == pytest.approx(meter.integrated_loudness(x64), abs=1e-9)
    assert m.loudness_range_lu() == pytest.approx(meter.loudness_range(x64), abs=1e-9)
    ref_peak = max(np.abs(resample_poly(x64.reshape(len(x), -1), 4, 1, axis=0)).max(), np.abs(x64).max())
    assert m.true_peak_dbtp() == pytest.approx(20 * np.log10(ref_peak), abs=1e-9)
    # a gain rescales the measurement exactly as measuring the scaled audio
    g = 0.3
    assert m.integrated_lufs(g) == pytest.approx(meter.integrated_loudness(x64 * g), abs=1e-9)
    assert m.true_peak_dbtp(g) == pytest.approx(20 * np.log10(ref_peak * g), abs=1e-9)


def test_true_peak_at_high_rates_oversamples_twice(chunk):
    x = np.sin(2 * np.pi * 24000 * np.arange(96000) / 96000 + np.pi / 4).astype(np.float32)
    ref = np.abs(resample_poly(x.astype(np.float64), 2, 1)).max()
    assert ld.true_peak_dbtp(x, 96000) == pytest.approx(20 * np.log10(ref), abs=1e-9)


def test_unlimited_normalisation_is_one_gain_from_the_reference_meter(chunk):
    x = music()
    y, rep = ld.normalize_loudness(x, SR, -23.0)
    start = pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))
    expected = (x.astype(np.float64) * 10 ** ((-23.0 - start) / 20.0)).astype(np.float32)
    assert not rep.limited and np.array_equal(y, expected)
    assert rep.input_lufs == pytest.approx(start, abs=1e-9) and rep.integrated_lufs == pytest.approx(-23.0, abs=1e-9)


def test_limited_normalisation_meets_target_and_ceiling(chunk):
    y, rep = ld.normalize_loudness(music(transient=0.9), SR, "streaming")
    assert rep.limited
    y64 = y.astype(np.float64)
    assert abs(pyloudnorm.Meter(SR).integrated_loudness(y64) - rep.integrated_lufs) < 1e-6
    assert abs(rep.integrated_lufs + 16.0) < 0.1
    assert 20 * np.log10(np.abs(resample_poly(y64, 4, 1)).max()) <= -1.0 + 1e-6


@pytest.mark.parametrize("rates", [(16000, 48000), (16000, 44100), (48000, 16000)])
def test_chunked_resampling_equals_one_call(monkeypatch, rates):
    from math import gcd

    from filmscore.engine.audio import io

    monkeypatch.setattr(io, "RESAMPLE_CHUNK", 3000)
    x = music(2.0)[::3].copy()  # 32000 samples: many chunks
    a, b = rates
    g = gcd(a, b)
    assert np.array_equal(io.resample(x, a, b), resample_poly(x, b // g, a // g).astype(np.float32))


def test_master_leaves_the_callers_wave_alone():
    from filmscore.engine.audio.mastering import master

    x = music(3.0)
    keep = x.copy()
    y, rep = master(x, SR, SR, x.shape[0], -23.0)  # no resampling: the output must not be the input's memory
    assert np.array_equal(x, keep) and not np.shares_memory(x, y)
    assert rep["integrated_lufs"] == pytest.approx(-23.0, abs=1e-6)


def exact_everywhere(monkeypatch):
    """No block is ever bounded: every sample's oversampled peak is computed (the meter before the bound)."""
    monkeypatch.setattr(ld, "_overshoot", lambda sample_rate: float("inf"))


@pytest.mark.parametrize("channels", [1, 2])
def test_peaks_bounded_below_a_level_are_exact_above_it(chunk, monkeypatch, channels):
    x = music(channels=channels, transient=0.9).reshape(-1, channels)
    level = 0.5
    fast = ld._sample_peaks(x, SR, below=level)
    exact_everywhere(monkeypatch)
    exact = ld._sample_peaks(x, SR)
    above = exact > level
    assert above.any() and (~above).any()
    assert np.array_equal(fast[above], exact[above])  # where a peak passes the level it is the exact one
    # elsewhere a bound: never under the true peak, never over the level
    assert (fast[~above] >= exact[~above]).all() and (fast[~above] <= level).all()


def test_bounded_peaks_run_the_filters_only_near_loud_blocks(monkeypatch):
    x = music(transient=0.9).reshape(-1, 1) * 0.5
    calls = []
    convolve = np.convolve
    monkeypatch.setattr(np, "convolve", lambda a, v: calls.append(a.size) or convolve(a, v))
    ld._sample_peaks(x, SR, below=0.4)  # only the transient's blocks can pass 0.4
    assert 0 < sum(calls) < 0.05 * 4 * x.shape[0]


def test_limited_normalisation_and_true_peak_are_those_of_the_exact_meter(monkeypatch):
    x = music(channels=2, transient=0.9)
    y, rep = ld.normalize_loudness(x, SR, "streaming")
    peak = ld.true_peak_dbtp(y, SR)
    exact_everywhere(monkeypatch)
    y_exact, rep_exact = ld.normalize_loudness(x, SR, "streaming")
    assert rep.limited and np.array_equal(y, y_exact) and rep == rep_exact
    assert peak == ld.true_peak_dbtp(y, SR)


def clicky(every: int, seconds: float = 7.0, seed: int = 0) -> np.ndarray:
    """Stereo noise at -26 dBFS with a full-scale click every `every` samples: at a streaming target every click is
    limited and the noise between clicks mostly not (a loud noise-like cue, as an untrained bundle renders)."""
    rng = np.random.default_rng(seed)
    x = 0.05 * rng.standard_normal((int(seconds * SR), 2))
    x[::every] += rng.choice([-1.0, 1.0], size=(x[::every].shape[0], 1))
    return x.astype(np.float32)


@pytest.mark.parametrize("every", [4800, 9600])
def test_limiting_aims_with_what_the_limiter_left_alone(chunk, monkeypatch, every):
    passes = []
    limit = ld._limit
    monkeypatch.setattr(ld, "_limit", lambda *a, **k: passes.append(1) or limit(*a, **k))
    x = clicky(every)
    y, rep = ld.normalize_loudness(x, SR, "streaming")
    y64 = y.astype(np.float64)
    assert rep.limited and len(passes) == 2
    assert abs(pyloudnorm.Meter(SR).integrated_loudness(y64) + 16.0) < 0.1
    assert 20 * np.log10(np.abs(resample_poly(y64, 4, 1, axis=0)).max()) <= -1.0 + 1e-6
    # raising the gain by the loudness the limiter took (each pass's plain gain) needs more passes for the same
    passes.clear()
    monkeypatch.setattr(ld.LoudnessMeasure, "gain_to", lambda m, t: 10 ** ((t - m.integrated_lufs()) / 20.0))
    _, plain = ld.normalize_loudness(x, SR, "streaming")
    assert abs(plain.integrated_lufs + 16.0) < 0.1 and len(passes) > 2


def test_measure_keeps_the_energy_of_the_samples_a_limiter_left_alone(chunk):
    x = music(channels=2)
    n = x.shape[0]
    free = ld.Untouched(n)
    for a in range(0, n, ld.CHUNK):  # as `_limit` records it: a chunk at a time; the first half untouched
        free[a:min(a + ld.CHUNK, n)] = np.arange(a, min(a + ld.CHUNK, n)) < n // 2
    m, whole = ld.measure(x, SR, peak=False, free=free), ld.measure(x, SR)
    assert m.peak is None and np.array_equal(m.z, whole.z)
    blocks = ld._Blocks.of(n, SR, 0.4, 0.75)
    first, last = blocks.upper <= n // 2, blocks.lower >= n // 2
    assert np.array_equal(m.z_free[:, first], m.z[:, first]) and (m.z_free[:, last] == 0).all()
    with pytest.raises(ValueError, match="multiples of 8"):  # the bits of a chunk are packed whole
        free[3:11] = np.ones(8, bool)
    # wholly free, the aimed gain is the plain one; wholly held (nothing would rise), too
    target = m.integrated_lufs() + 3.0
    plain = 10 ** (3.0 / 20)
    all_free = ld.LoudnessMeasure(m.z, None, None, m.z)
    assert 20 * np.log10(all_free.gain_to(target) / plain) == pytest.approx(0.0, abs=1e-3)
    assert ld.LoudnessMeasure(m.z, None, None, 0 * m.z).gain_to(target) == pytest.approx(plain)
    # half free: the free half must rise by more than the whole would
    assert m.gain_to(target) > plain


def test_a_loudness_the_ceiling_cannot_allow_is_reported_as_reached(chunk):
    # a click every 20 ms: the limiter's 50 ms hold keeps the whole signal held, so no gain makes it louder under
    # the ceiling; after its passes the loop delivers the last limited signal, the ceiling kept and the loudness
    # reported as it is (not as the target)
    y, rep = ld.normalize_loudness(clicky(960), SR, "streaming")
    y64 = y.astype(np.float64)
    measured = pyloudnorm.Meter(SR).integrated_loudness(y64)
    assert rep.limited and rep.integrated_lufs < -16.0 - 0.1
    assert rep.integrated_lufs == pytest.approx(measured, abs=1e-6)
    assert 20 * np.log10(np.abs(resample_poly(y64, 4, 1, axis=0)).max()) <= -1.0 + 1e-6


@pytest.mark.parametrize("channels", [1, 2])
def test_workers_split_the_passes_and_give_the_same_samples(chunk, channels):
    # a render hands its delivery the stage pool (engine/threads.py): a channel's K-weighting, a chunk's true peak and
    # a chunk's limiting are units run at once on its threads; the samples and report are those made in turn
    from filmscore.engine.threads import model_threads

    x = clicky(4800)[:, :channels]
    y, rep = ld.normalize_loudness(x, SR, "streaming")
    units: list[int] = []
    with model_threads(3) as pool:
        def counted(fn, items):
            items = list(items)
            units.append(len(items))
            return pool.map(fn, items)

        y_pool, rep_pool = ld.normalize_loudness(x, SR, "streaming", workers=counted)
    assert rep.limited and np.array_equal(y, y_pool) and rep == rep_pool
    chunks = -(-x.shape[0] // ld.CHUNK)
    # measured once, limited twice, each limited signal measured; the true peak of the input and of the last
    assert units.count(channels) >= 3 and units.count(chunks) >= 4
