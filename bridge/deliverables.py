"""Broadcast-ready delivery files: loudness-normalised 24-bit BWF WAV with `bext` and `iXML`, JSON sidecars.

- **Loudness** (pyloudnorm, ITU-R BS.1770-4): gain to the target integrated loudness, then, when the true peak
  exceeds the ceiling, a look-ahead peak limiter and a new gain, until both hold (loudness within 0.1 LU).
  Presets: EBU R128 -23 LUFS, ATSC A/85 -24 LKFS, streaming -16 LUFS; ceiling -1 dBTP.
- **True peak**: 4x oversampled sample peak (BS.1770-4 Annex 2).
- **BWF** (EBU Tech 3285 v2): `fmt ` (PCM 24-bit), `bext` (description, originator, date, time reference = the
  cue's position in samples since the timeline's zero, loudness fields), `iXML` (the same timestamp, speed and
  scene/take as location recorders write it, which Pro Tools, Resolve and Premiere read), then `data`. No
  Python library writes `bext`, so the RIFF chunks are written here; soundfile/libsndfile read the result.
- Every file is written to a temporary file in the target folder and renamed: a failed write leaves no half file,
  and a missing, unwritable or full destination is a `DeliveryError` naming the path.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filmscore.engine.errors import FilmscoreError

LOUDNESS_PRESETS: dict[str, float] = {"ebu-r128": -23.0, "atsc-a85": -24.0, "streaming": -16.0}
"""Target integrated loudness (LUFS / LKFS) by name."""
TRUE_PEAK_CEILING_DBTP = -1.0
BEXT_UNSET = 0x7FFF  # loudness fields not measured


class DeliveryError(FilmscoreError):
    """A deliverable (WAV, sidecar, timeline) that cannot be written: missing or unwritable folder, full disk."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync and rename. Raises
    `DeliveryError` naming `path` when the folder cannot be made or written or the disk is full."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise DeliveryError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """A JSON sidecar, atomically (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"))


# -- loudness -------------------------------------------------------------------------------------------------------

def resolve_target(target: str | float) -> float:
    """A preset name (`ebu-r128`, `atsc-a85`, `streaming`) or a number in LUFS -> LUFS."""
    if isinstance(target, str) and target in LOUDNESS_PRESETS:
        return LOUDNESS_PRESETS[target]
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise DeliveryError(f"loudness target {target!r}: give LUFS (e.g. -23) or one of "
                            f"{', '.join(LOUDNESS_PRESETS)}") from None
    if not -70.0 <= value <= 0.0:
        raise DeliveryError(f"loudness target {value} LUFS is outside -70..0")
    return value


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP of `(n,)` or `(n, channels)` float audio: 4x oversampled peak (BS.1770-4 Annex 2;
    at 96 kHz and above, 2x)."""
    from scipy.signal import resample_poly

    x = audio.reshape(audio.shape[0], -1).astype(np.float64)
    if x.shape[0] == 0:
        return float("-inf")
    up = 4 if sample_rate < 96000 else 2
    peak = float(np.max(np.abs(resample_poly(x, up, 1, axis=0))))
    peak = max(peak, float(np.max(np.abs(x))))
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def _limit(audio: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Look-ahead peak limiter: the gain each sample needs (from the 4x oversampled peak) is spread as a minimum
    over +-5 ms and held 50 ms, then smoothed over 5 ms; the smoothed gain never exceeds what a peak within its
    window needs, so the ceiling holds without clipping."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d
    from scipy.signal import resample_poly

    x = audio.reshape(audio.shape[0], -1)
    up = 4 if sample_rate < 96000 else 2
    os_peak = np.abs(resample_poly(x.astype(np.float64), up, 1, axis=0)).max(axis=1)
    peak = np.maximum(os_peak[: x.shape[0] * up].reshape(x.shape[0], up).max(axis=1), np.abs(x).max(axis=1))
    ceiling = 10 ** (ceiling_dbtp / 20.0) * 0.985  # a little headroom for the 24-bit rounding and filter ripple
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    attack = max(1, int(0.005 * sample_rate))
    hold = max(1, int(0.050 * sample_rate))
    g = minimum_filter1d(need, size=2 * attack + 1, mode="nearest")
    g = minimum_filter1d(g, size=hold, origin=-(hold // 2) + (0 if hold % 2 else 1), mode="nearest")
    g = uniform_filter1d(g, size=attack, mode="nearest")
    g = np.minimum(g, minimum_filter1d(need, size=2 * attack + 1, mode="nearest"))
    return (x * g[:, None]).reshape(audio.shape).astype(np.float32)


@dataclass(frozen=True)
class LoudnessReport:
    """What normalisation measured and did: loudness in LUFS, true peak in dBTP, loudness range in LU."""

    target_lufs: float
    integrated_lufs: float
    true_peak_dbtp: float
    loudness_range_lu: float | None
    gain_db: float
    limited: bool
    input_lufs: float

    def to_json(self) -> dict:
        return asdict(self)


def normalize_loudness(audio: np.ndarray, sample_rate: int, target: str | float = "ebu-r128",
                       ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> tuple[np.ndarray, LoudnessReport]:
    """Bring `(n,)` or `(n, channels)` float audio to `target` integrated loudness with true peak <= ceiling.

    Raises `DeliveryError` for audio shorter than one 400 ms gating block or silent throughout (its loudness is
    undefined: nothing to normalise)."""
    import pyloudnorm

    target_lufs = resolve_target(target)
    x = np.asarray(audio, np.float64)
    if x.shape[0] < int(0.4 * sample_rate):
        raise DeliveryError(f"audio of {x.shape[0] / sample_rate:.3f} s is too short to measure loudness (>= 0.4 s)")
    meter = pyloudnorm.Meter(sample_rate)
    start = meter.integrated_loudness(x)
    if not np.isfinite(start):
        raise DeliveryError("the audio is silent: its loudness cannot be normalised")
    y, limited, lufs = x, False, start
    for _ in range(6):
        y = y * 10 ** ((target_lufs - lufs) / 20.0)
        if true_peak_dbtp(y, sample_rate) > ceiling_dbtp:
            y = _limit(y, sample_rate, ceiling_dbtp).astype(np.float64)
            limited = True
        lufs = meter.integrated_loudness(y)
        if abs(lufs - target_lufs) < 0.1 and true_peak_dbtp(y, sample_rate) <= ceiling_dbtp:
            break
    try:
        lra = float(meter.loudness_range(y))
    except Exception:  # pyloudnorm < 0.2 has no loudness_range; very short audio has too few blocks
        lra = None
    tp = true_peak_dbtp(y, sample_rate)
    gain = 20 * np.log10(np.max(np.abs(y)) / max(np.max(np.abs(x)), 1e-12))
    return y.astype(np.float32), LoudnessReport(target_lufs, float(lufs), float(tp), lra, float(gain), limited,
                                                float(start))


# -- BWF ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BextInfo:
    """The `bext` fields filmscore fills. `time_reference`: samples since the timeline's zero (for a timeline
    starting at 01:00:00:00, a cue at its first frame has 3600 * rate)."""

    description: str
    originator: str = "filmscore"
    originator_reference: str = ""
    time_reference: int = 0
    coding_history: str = ""
    origination: _dt.datetime | None = None
    loudness: LoudnessReport | None = None


def _fixed(text: str, n: int) -> bytes:
    return text.encode("ascii", "replace")[:n].ljust(n, b"\0")


def bext_chunk(info: BextInfo) -> bytes:
    """The `bext` chunk body (EBU Tech 3285 v2: 602 bytes + coding history)."""
    when = info.origination or _dt.datetime.now()
    lo, hi = info.time_reference & 0xFFFFFFFF, info.time_reference >> 32
    ld = info.loudness

    def cent(v: float | None) -> int:
        return BEXT_UNSET if v is None or not np.isfinite(v) else int(round(v * 100))

    body = (_fixed(info.description, 256) + _fixed(info.originator, 32) + _fixed(info.originator_reference, 32)
            + _fixed(when.strftime("%Y-%m-%d"), 10) + _fixed(when.strftime("%H:%M:%S"), 8)
            + struct.pack("<IIH", lo, hi, 2) + b"\0" * 64
            + struct.pack("<hhhhh", cent(ld.integrated_lufs if ld else None),
                          cent(ld.loudness_range_lu if ld else None), cent(ld.true_peak_dbtp if ld else None),
                          BEXT_UNSET, BEXT_UNSET)
            + b"\0" * 180 + info.coding_history.encode("ascii", "replace"))
    return body


def ixml_chunk(*, project: str, scene: str, note: str, sample_rate: int, time_reference: int,
               frame_rate: tuple[int, int] | None = None, user: dict | None = None) -> bytes:
    """An iXML document with the timestamp in samples since midnight (the timeline's zero), as recorders write."""
    root = ET.Element("BWFXML")
    for tag, text in (("IXML_VERSION", "2.10"), ("PROJECT", project), ("SCENE", scene), ("TAKE", "1"),
                      ("NOTE", note)):
        ET.SubElement(root, tag).text = text
    speed = ET.SubElement(root, "SPEED")
    if frame_rate:
        fr = f"{frame_rate[0]}/{frame_rate[1]}"
        for tag in ("MASTER_SPEED", "CURRENT_SPEED", "TIMECODE_RATE"):
            ET.SubElement(speed, tag).text = fr
        ET.SubElement(speed, "TIMECODE_FLAG").text = "NDF"
    for tag, text in (("FILE_SAMPLE_RATE", sample_rate), ("AUDIO_BIT_DEPTH", 24),
                      ("DIGITIZER_SAMPLE_RATE", sample_rate),
                      ("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI", time_reference >> 32),
                      ("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO", time_reference & 0xFFFFFFFF),
                      ("TIMESTAMP_SAMPLE_RATE", sample_rate)):
        ET.SubElement(speed, tag).text = str(text)
    if user:
        ET.SubElement(root, "USER").text = json.dumps(user, default=str)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def pcm24(audio: np.ndarray) -> bytes:
    """Float audio in [-1, 1] `(n,)` or `(n, channels)` as interleaved little-endian 24-bit PCM."""
    q = np.clip(np.round(np.asarray(audio, np.float64) * 8388607.0), -8388608, 8388607).astype("<i4")
    return q.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def write_bwf(path: str | Path, audio: np.ndarray, sample_rate: int, bext: BextInfo,
              ixml: bytes | None = None) -> Path:
    """Write a 24-bit PCM Broadcast WAV (fmt, bext, iXML, data), atomically. `audio`: `(n,)` or `(n, channels)`
    float32 in [-1, 1]. Files over 4 GiB would need RF64 and are refused."""
    x = np.asarray(audio, np.float32)
    channels = 1 if x.ndim == 1 else x.shape[1]
    data = pcm24(x)
    if len(data) > 0xFFFFFFFF - 4096:
        raise DeliveryError(f"cannot write {path}: {len(data)} bytes of audio need RF64, which is not written")
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * channels * 3, channels * 3, 24)
    chunks = _chunk(b"fmt ", fmt) + _chunk(b"bext", bext_chunk(bext))
    if ixml is not None:
        chunks += _chunk(b"iXML", ixml)
    chunks += _chunk(b"data", data)
    return atomic_write_bytes(path, b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


def read_wav_chunks(path: str | Path) -> dict[str, bytes]:
    """The chunks of a RIFF/WAVE file by id (for checking deliverables)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise DeliveryError(f"{path}: not a RIFF/WAVE file")
    out, i = {}, 12
    while i + 8 <= len(raw):
        tag, size = raw[i:i + 4].decode("latin-1"), struct.unpack("<I", raw[i + 4:i + 8])[0]
        out[tag] = raw[i + 8:i + 8 + size]
        i += 8 + size + (size % 2)
    return out


def read_bext(path: str | Path) -> dict[str, Any]:
    """The `bext` fields of a BWF file: description, originator, date, time, time_reference, version, loudness."""
    b = read_wav_chunks(path).get("bext")
    if b is None:
        raise DeliveryError(f"{path}: has no bext chunk")

    def s(a: int, n: int) -> str:
        return b[a:a + n].split(b"\0", 1)[0].decode("ascii", "replace")

    lo, hi, version = struct.unpack("<IIH", b[338:348])
    loud = struct.unpack("<hhhhh", b[412:422])
    return {"description": s(0, 256), "originator": s(256, 32), "originator_reference": s(288, 32),
            "date": s(320, 10), "time": s(330, 8), "time_reference": lo | (hi << 32), "version": version,
            "loudness_value": None if loud[0] == BEXT_UNSET else loud[0] / 100,
            "loudness_range": None if loud[1] == BEXT_UNSET else loud[1] / 100,
            "max_true_peak": None if loud[2] == BEXT_UNSET else loud[2] / 100,
            "coding_history": b[602:].split(b"\0", 1)[0].decode("ascii", "replace")}
