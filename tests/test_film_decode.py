"""The 10/s decoder on real files written with PyAV: frame rates (constant, NTSC, variable, slower than 10/s),
ranges, rotation metadata, analysis size, and the errors a user can cause."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from filmscore.engine.errors import VideoDecodeError
from filmscore.engine.film.decode import ANALYSIS_LONG_SIDE, iter_frames, probe


def _grey_clip(path, times_s, *, width=64, height=36, codec="h264", time_base=Fraction(1, 1000), rate=None):
    """Frame i is a flat grey of level 10 + 4 i (mod 228), shown from times_s[i]; returns the levels."""
    levels = [10 + (4 * i) % 228 for i in range(len(times_s))]
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=rate or 25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.time_base = time_base
        for t, lv in zip(times_s, levels):
            f = av.VideoFrame.from_ndarray(np.full((height, width, 3), lv, np.uint8), format="rgb24")
            f.pts = int(round(t / time_base))
            f.time_base = time_base
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return levels


def _levels(path, *args, **kw):
    frames = np.concatenate([b.rgb for b in iter_frames(path, *args, **kw)])
    return frames.reshape(len(frames), -1).mean(axis=1), frames


def _expected(times_s, levels, targets):
    """The level on screen at each target instant: the last frame with time <= target."""
    idx = np.searchsorted(np.asarray(times_s), np.asarray(targets) + 1e-9, side="right") - 1
    return np.asarray(levels)[np.maximum(idx, 0)]


@pytest.mark.parametrize("fps", [25, 30000 / 1001, 50, 5])
def test_constant_rates_land_on_the_10fps_grid(tmp_path, fps):
    n = int(round(3 * fps))
    times = [i / fps for i in range(n)]
    path = tmp_path / f"c{fps:.2f}.mp4"
    levels = _grey_clip(path, times, rate=Fraction(fps).limit_denominator(1001),
                        time_base=Fraction(1, 30000) if fps != 5 else Fraction(1, 1000))
    got, frames = _levels(path)
    n_out = int(np.ceil(n / fps * 10 - 1e-6))  # 90 frames at 29.97/s last 3.003 s: 31 frames of 10/s
    assert len(got) == n_out
    want = _expected(times, levels, np.arange(n_out) / 10)
    np.testing.assert_allclose(got, want, atol=2.0)  # YUV rounding is up to 2; neighbouring frames differ by 4
    assert max(frames.shape[1:3]) == ANALYSIS_LONG_SIDE


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(3)
    gaps = rng.choice([0.02, 0.04, 0.1, 0.25], size=30)
    times = np.concatenate([[0.0], np.cumsum(gaps)[:-1]]).round(3).tolist()
    path = tmp_path / "vfr.mkv"
    levels = _grey_clip(path, times)
    got, _ = _levels(path)
    targets = np.arange(len(got)) / 10
    np.testing.assert_allclose(got, _expected(times, levels, targets), atol=2.0)
    assert len(got) >= int(times[-1] * 10)


def test_range_seeks_and_counts(tmp_path):
    times = [i / 25 for i in range(250)]  # 10 s, key frames every 12 frames by default
    path = tmp_path / "long.mp4"
    levels = [10 + (4 * i) % 228 for i in range(250)]
    with av.open(str(path), "w") as out:
        s = out.add_stream("h264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 36, "yuv420p"
        for lv in levels:
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((36, 64, 3), lv, np.uint8), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    got, _ = _levels(path, 4.3, 2.0)
    assert len(got) == 20
    np.testing.assert_allclose(got, _expected(times, levels, 4.3 + np.arange(20) / 10), atol=2.0)
    got, _ = _levels(path, 9.0)  # to the end
    assert len(got) == 10


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("h264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)  # counter-clockwise, as a phone held upright records
        img = np.zeros((32, 64, 3), np.uint8)
        img[:, :32] = 255  # left half white
        for _ in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    _, frames = _levels(path)
    h, w = frames.shape[1:3]
    assert (h, w) == (256, 128)  # portrait after rotation
    top, bottom = frames[0, : h // 2 - 8].mean(), frames[0, h // 2 + 8:].mean()
    assert bottom > 200 and top < 50  # the left half turned counter-clockwise ends at the bottom


def test_probe(tmp_path):
    path = tmp_path / "p.mp4"
    _grey_clip(path, [i / 25 for i in range(50)], rate=25, time_base=Fraction(1, 12800))
    info = probe(path)
    assert info.width == 64 and info.height == 36 and info.codec == "h264"
    assert info.duration_s == pytest.approx(2.0, abs=0.05)


def test_errors(tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        list(iter_frames(tmp_path / "nope.mp4"))
    with pytest.raises(VideoDecodeError, match="is a directory"):
        list(iter_frames(tmp_path))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4"):
        list(iter_frames(empty))
    audio = tmp_path / "tone.m4a"
    with av.open(str(audio), "w") as out:
        s = out.add_stream("aac", rate=16000)
        t = np.arange(16000) / 16000
        fr = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                        format="fltp", layout="mono")
        fr.sample_rate = 16000
        for p in s.encode(fr):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(VideoDecodeError, match="no video stream.*audio"):
        list(iter_frames(audio))
    zero = tmp_path / "zero.mkv"  # a video stream without a single frame beside 1 s of audio
    with av.open(str(zero), "w") as out:
        v = out.add_stream("h264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 36, "yuv420p"
        a = out.add_stream("aac", rate=16000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 16000
        for p in [*a.encode(fr), *a.encode(), *v.encode()]:
            out.mux(p)
    with pytest.raises(VideoDecodeError, match="zero.mkv: its video stream holds no decodable frame"):
        list(iter_frames(zero))
    clip = tmp_path / "two.mp4"
    _grey_clip(clip, [i / 25 for i in range(50)], rate=25, time_base=Fraction(1, 12800))
    with pytest.raises(VideoDecodeError, match="past the end"):
        list(iter_frames(clip, 5.0))
    with pytest.raises(VideoDecodeError, match="ends past the end"):
        list(iter_frames(clip, 1.0, 3.0))
    with pytest.raises(VideoDecodeError, match="must be a finite number"):
        list(iter_frames(clip, -1.0))
    with pytest.raises(VideoDecodeError, match="must be a finite number"):
        list(iter_frames(clip, 0.0, 0.0))
