"""Broadcast-ready delivery files: loudness-normalised 24-bit BWF WAV with `bext` and `iXML`, JSON sidecars.

- **Loudness**: `filmscore.engine.audio.loudness` (the engine masters every cue the same way; re-exported here).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filmscore.engine.audio.loudness import (LOUDNESS_PRESETS, TRUE_PEAK_CEILING_DBTP, LoudnessError,  # noqa: F401
                                            LoudnessReport, normalize_loudness, resolve_target, true_peak_dbtp)
from filmscore.engine.errors import FilmscoreError

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
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a deliverable gets what open() would give it
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


def _umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> Path:
    """A JSON sidecar, atomically (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"))


# -- loudness -------------------------------------------------------------------------------------------------------

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


def riff_chunk(tag: bytes, body: bytes) -> bytes:
    """One RIFF chunk: tag, little-endian size, body, and the pad byte RIFF requires after an odd-sized body."""
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
    chunks = riff_chunk(b"fmt ", fmt) + riff_chunk(b"bext", bext_chunk(bext))
    if ixml is not None:
        chunks += riff_chunk(b"iXML", ixml)
    chunks += riff_chunk(b"data", data)
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
