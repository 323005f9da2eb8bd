"""Audio loading and resampling: any rate, any channel count, any file soundfile or PyAV reads."""

from __future__ import annotations

from collections.abc import Iterator
from math import gcd
from pathlib import Path

import numpy as np

from ..errors import AudioLoadError


RESAMPLE_CHUNK = 1 << 16  # input samples per resampling call (times `down`): memory flat in the signal's length


def resample(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling (scipy `resample_poly`, its default Kaiser filter) along the last axis; float32 out.

    Long signals are resampled a chunk at a time into one output array (`resample_blocks`), without the filter's
    full-length temporaries (~0.8x the output for a 10-minute cue)."""
    if sr_from == sr_to:
        return wave.astype(np.float32, copy=False)
    blocks = resample_blocks(wave, sr_from, sr_to)
    first, y = next(blocks)
    n_out = resampled_length(wave.shape[-1], sr_from, sr_to)
    if y.shape[-1] == n_out:
        return y
    out = np.empty(wave.shape[:-1] + (n_out,), np.float32)
    out[..., :y.shape[-1]] = y
    for oa, y in blocks:
        out[..., oa:oa + y.shape[-1]] = y
    return out


def resampled_length(n: int, sr_from: int, sr_to: int) -> int:
    """Samples `resample` gives for `n` input samples (resample_poly's ceil(n * up / down))."""
    g = gcd(int(sr_from), int(sr_to))
    return -(-n * (sr_to // g) // (sr_from // g))


def resample_blocks(wave: np.ndarray, sr_from: int, sr_to: int) -> Iterator[tuple[int, np.ndarray]]:
    """`resample(wave, sr_from, sr_to)` a piece at a time, in order: `(first output sample, float32 piece)` along
    the last axis, the pieces covering the whole output. A streamed delivery consumes them without holding the
    resampled cue (engine/audio/mastering.py).

    Each piece's input starts on a multiple of `down` (so its outputs fall on the whole signal's output grid) and
    is read with a margin longer than the filter's reach, so every output sample is the same sum over the same
    inputs as in one call (tested equal). A signal of up to 2 * RESAMPLE_CHUNK samples is one piece. The pieces are
    independent (`resample_spans`, `resample_piece`): a delivery resamples several at once."""
    for span in resample_spans(wave.shape[-1], sr_from, sr_to):
        yield resample_piece(wave, span, sr_from, sr_to)


def resample_spans(n: int, sr_from: int, sr_to: int) -> list[tuple[int, int, int, int]]:
    """`(a, b, lo, hi)` per piece of `resample_blocks` over `n` input samples: the piece resamples inputs [lo, hi)
    and keeps the outputs of inputs [a, b)."""
    g = gcd(int(sr_from), int(sr_to))
    up, down = sr_to // g, sr_from // g
    if sr_from == sr_to or n <= 2 * RESAMPLE_CHUNK:
        return [(0, n, 0, n)]
    reach = 10 * max(up, down) // up + 2  # the filter's half length in input samples, and some
    margin = -(-reach // down) * down  # a multiple of `down`: the chunk's first output stays on the grid
    step = RESAMPLE_CHUNK * down
    return [(a, min(a + step, n), max(a - margin, 0), min(a + step + margin, n)) for a in range(0, n, step)]


def resample_piece(wave, span: tuple[int, int, int, int], sr_from: int, sr_to: int) -> tuple[int, np.ndarray]:
    """One piece of `resample_blocks`: `(first output sample, float32 piece)` for a `resample_spans` span."""
    a, b, lo, hi = span
    if sr_from == sr_to:
        return a, np.asarray(wave[..., a:b]).astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(sr_from), int(sr_to))
    up, down = sr_to // g, sr_from // g
    y = resample_poly(wave[..., lo:hi], up, down, axis=-1)
    first, last = (a - lo) * up // down, -(-(b - lo) * up // down)
    return a * up // down, y[..., first:last].astype(np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    return data.T, int(sr)  # (channels, n)


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioLoadError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            sr = stream.codec_context.sample_rate or stream.rate
            resampler = av.AudioResampler(format="fltp", layout=None, rate=sr)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioLoadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise AudioLoadError(f"{path}: cannot decode audio ({e})") from e
    if not chunks:
        raise AudioLoadError(f"{path}: audio stream holds no samples")
    return np.concatenate(chunks, axis=1).astype(np.float32), int(sr)


def load_audio(path: str | Path, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Load `path` as float32 at `sample_rate`: `(n,)` when mono (channel mean), else `(channels, n)`."""
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"{path}: no such audio file")
    got = _read_soundfile(path)
    data, sr = got if got is not None else _read_pyav(path)
    if data.shape[-1] == 0:
        raise AudioLoadError(f"{path}: holds no samples")
    if mono:
        data = data.mean(axis=0)
    return resample(data, sr, sample_rate)
