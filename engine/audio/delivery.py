"""Delivery: the one path from the engine's waveform to the delivered file, used by every front end (`render`,
`render --bwf`, `score`, the bridge's jobs and timeline jobs).

`deliver` masters the model-rate waveform once (engine/audio/mastering.py: resampling to the delivered rate, the
exact length in samples, loudness and true-peak ceiling from engine/audio/loudness.py) and writes it once, as
`RenderRequest.delivery` describes:

- **plain**: a 24-bit PCM WAV (`fmt `, `data`);
- **bwf** (EBU Tech 3285 v2): `fmt `, `bext` (description, originator, date, time reference = the cue's first
  sample since the timeline's zero, loudness fields), `iXML` (the same timestamp, speed and scene/take as location
  recorders write it, which Pro Tools, Resolve and Premiere read), then `data`. No Python library writes `bext`,
  so the RIFF chunks are written here; soundfile/libsndfile read the result.

Both formats carry the same `data` bytes (libsndfile's float -> 24-bit conversion, the one `regenerate` compares
against), written a block at a time (memory flat in the cue's length), through a temporary file and a rename.
The time reference stays rational (`Delivery.time_reference`) until it is written: `timebase.to_samples` turns it
into samples at the delivered rate, the one conversion. The bext date and time are the moment of writing, or
`SOURCE_DATE_EPOCH` (UTC) when set, as reproducible builds do, so two deliveries of a cue can be compared byte for
byte.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..atomic import write_atomically
from ..errors import FilmscoreError, RequestError
from ..timebase import Rational, rate_fraction, to_samples

if TYPE_CHECKING:  # numpy and scipy are imported when a cue is mastered, not with the delivery format
    from .loudness import Workers

FORMATS: tuple[str, ...] = ("plain", "bwf")
DeliveryFormat = Literal["plain", "bwf"]
BEXT_UNSET = 0x7FFF  # bext loudness fields not measured
PCM_BLOCK = 1 << 16  # samples converted and written at a time
MAX_RIFF_DATA = 0xFFFFFFFF - 4096  # bigger needs RF64, which is not written


@dataclass(frozen=True)
class Delivery:
    """How a cue is delivered: the file format and, for BWF, what its `bext` and `iXML` say. The delivered rate and
    loudness target are the request's (`RenderRequest.sample_rate`, `.target_lufs`), not repeated here.

    `time_reference`: the cue's first sample as a rational time since the timeline's zero (for a timeline starting at
    01:00:00:00, a cue at its first frame is 3600 s), written in samples at the delivered rate. `timecode_rate`:
    the timeline's frame rate (iXML speed), None when the cue has none. `project`/`scene`: iXML (timeline, cue)."""

    format: DeliveryFormat = "plain"
    description: str = ""
    originator: str = "filmscore"
    originator_reference: str = ""
    time_reference: Rational = Rational(0.0, 1.0)
    timecode_rate: float | None = None
    project: str = ""
    scene: str = ""

    def validate(self) -> None:
        """Raise `RequestError` naming the first bad field."""
        if self.format not in FORMATS:
            raise RequestError(f"unknown delivery format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if not isinstance(self.time_reference, Rational) or self.time_reference.rate <= 0 \
                or self.time_reference.value < 0:
            raise RequestError(f"delivery time reference must be a rational time >= 0, got {self.time_reference!r}")
        if self.timecode_rate is not None and not self.timecode_rate > 0:
            raise RequestError(f"delivery timecode rate must be > 0, got {self.timecode_rate}")

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["time_reference"] = self.time_reference.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Delivery:
        """The delivery `to_json` wrote; `RequestError` naming what is wrong otherwise."""
        try:
            kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
            unknown = set(d) - set(kw)
            if unknown:
                raise RequestError(f"delivery: unknown field(s) {', '.join(sorted(unknown))}")
            if "time_reference" in kw:
                kw["time_reference"] = Rational.from_json(kw["time_reference"])
            out = cls(**kw)
        except (KeyError, TypeError, ValueError) as e:
            raise RequestError(f"delivery: not a delivery description ({e})") from None
        out.validate()
        return out


PLAIN = Delivery()


def deliver(wave, sr_in: int, path: Path, n_samples: int, sample_rate: int, target_lufs: float,
            delivery: Delivery = PLAIN, workers: Workers | None = None) -> dict:
    """Master `wave` (model-rate float audio) to `sample_rate`, exactly `n_samples`, `target_lufs` with true peak
    under the ceiling, and write it to `path` as `delivery` says. Returns the loudness report (JSON).

    Streamed (mastering.master_streamed): the delivered-rate signal lives in nameless working files in `path`'s
    folder and is written a block at a time, so memory stays flat in the cue's length; the samples are
    `mastering.master`'s (tests/test_streamed_delivery.py). `workers` (loudness.py `Workers`; default: in turn)
    runs the measuring and limiting: the same samples with any."""
    from .loudness import in_turn
    from .mastering import master_streamed

    with master_streamed(wave, sr_in, sample_rate, n_samples, target_lufs, folder=Path(path).parent,
                         workers=workers or in_turn) as audio:
        _write_riff(Path(path), audio, pcm24, sample_rate, delivery, audio.report, None)
    return audio.report


def pcm24(audio) -> bytes:
    """Float audio `(n,)` or `(n, channels)`, clipped to [-1, 1], as interleaved little-endian 24-bit PCM:
    libsndfile's own conversion (a RAW file in memory)."""
    import io

    import numpy as np
    import soundfile as sf

    x = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, 48000, subtype="PCM_24", format="RAW")  # RAW has no header: the rate is not written
    return buf.getvalue()


def write_wav(path: Path, audio, sample_rate: int, delivery: Delivery = PLAIN, loudness: Mapping | None = None,
              origination: _dt.datetime | None = None) -> None:
    """Write `(n,)` or `(n, channels)` float audio in [-1, 1] as a 24-bit PCM WAV, plain or BWF as `delivery`
    says, atomically; `audio` may be a mastered cue read a block at a time (mastering.py `Mastered`).
    `loudness`: the mastering report (the bext loudness fields); `origination`: the bext date (default:
    `origination_time()`)."""
    import numpy as np

    from .mastering import Mastered

    x = audio if isinstance(audio, Mastered) else np.asarray(audio, np.float32)
    _write_riff(Path(path), x, pcm24, sample_rate, delivery, loudness, origination)


def write_pcm24(path: Path, pcm, sample_rate: int, delivery: Delivery = PLAIN, loudness: Mapping | None = None,
                origination: _dt.datetime | None = None) -> None:
    """As `write_wav`, for samples that are 24-bit integers already (`(n,)` or `(n, channels)`): written as they
    are, bit for bit (`regenerate` splices a cue's own samples)."""
    import numpy as np

    def to_bytes(block) -> bytes:
        q = np.ascontiguousarray(block, "<i4")
        return q.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()

    _write_riff(Path(path), np.asarray(pcm), to_bytes, sample_rate, delivery, loudness, origination)


def _write_riff(path: Path, x, to_bytes, sample_rate: int, delivery: Delivery, loudness: Mapping | None,
                origination: _dt.datetime | None) -> None:
    """The one WAV writer: header chunks, then `data` a block at a time (`to_bytes(block)`), atomically."""
    channels = 1 if x.ndim == 1 else x.shape[1]
    n_bytes = x.shape[0] * channels * 3
    if n_bytes > MAX_RIFF_DATA:
        raise FilmscoreError(f"{path}: {n_bytes} bytes of audio need RF64, which is not written")
    head = wav_header_chunks(sample_rate, channels, delivery, loudness, origination)
    riff_size = 4 + len(head) + 8 + n_bytes + (n_bytes % 2)

    def write(p: Path) -> None:
        with open(p, "wb") as f:  # closed here, so a full disk fails here and not at garbage collection
            f.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + head + b"data" + struct.pack("<I", n_bytes))
            for a in range(0, x.shape[0], PCM_BLOCK):
                f.write(to_bytes(x[a:a + PCM_BLOCK]))
            if n_bytes % 2:
                f.write(b"\0")

    write_atomically(path, write)


def wav_header_chunks(sample_rate: int, channels: int, delivery: Delivery = PLAIN, loudness: Mapping | None = None,
                      origination: _dt.datetime | None = None) -> bytes:
    """The chunks before `data`: `fmt ` (PCM 24-bit), and for BWF `bext` and `iXML`."""
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * channels * 3, channels * 3, 24)
    out = riff_chunk(b"fmt ", fmt)
    if delivery.format == "bwf":
        time_ref = to_samples(delivery.time_reference, sample_rate)
        mode = "mono" if channels == 1 else "stereo" if channels == 2 else "multichannel"
        out += riff_chunk(b"bext", bext_chunk(BextInfo(
            description=delivery.description, originator=delivery.originator,
            originator_reference=delivery.originator_reference, time_reference=time_ref,
            coding_history=f"A=PCM,F={sample_rate},W=24,M={mode},T=filmscore\r\n",
            origination=origination or origination_time(), loudness=loudness)))
        rate = None if delivery.timecode_rate is None else rate_fraction(delivery.timecode_rate)
        out += riff_chunk(b"iXML", ixml_chunk(project=delivery.project, scene=delivery.scene,
                                              note=delivery.description, sample_rate=sample_rate,
                                              time_reference=time_ref,
                                              frame_rate=None if rate is None else (rate.numerator, rate.denominator)))
    return out


def origination_time() -> _dt.datetime:
    """The bext date and time: now (local time, as recorders write it), or `SOURCE_DATE_EPOCH` in UTC when set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise FilmscoreError(f"SOURCE_DATE_EPOCH={epoch!r} is not a time in seconds since 1970") from None
    return _dt.datetime.now()


# -- RIFF chunks ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BextInfo:
    """The `bext` fields filmscore fills. `time_reference`: samples since the timeline's zero. `loudness`: the
    mastering report's `integrated_lufs`, `loudness_range_lu`, `true_peak_dbtp` (a mapping or an object with them)."""

    description: str
    originator: str = "filmscore"
    originator_reference: str = ""
    time_reference: int = 0
    coding_history: str = ""
    origination: _dt.datetime | None = None
    loudness: Any = None


def _fixed(text: str, n: int) -> bytes:
    return text.encode("ascii", "replace")[:n].ljust(n, b"\0")


def _loudness_field(loudness: Any, name: str) -> float | None:
    if loudness is None:
        return None
    return loudness.get(name) if isinstance(loudness, Mapping) else getattr(loudness, name, None)


def bext_cents(v: float | None) -> int:
    """A bext loudness field: hundredths, or `BEXT_UNSET` when not measured."""
    import math

    return BEXT_UNSET if v is None or not math.isfinite(v) else int(round(v * 100))


def bext_chunk(info: BextInfo) -> bytes:
    """The `bext` chunk body (EBU Tech 3285 v2: 602 bytes + coding history)."""
    when = info.origination or origination_time()
    lo, hi = info.time_reference & 0xFFFFFFFF, info.time_reference >> 32
    ld = info.loudness
    return (_fixed(info.description, 256) + _fixed(info.originator, 32) + _fixed(info.originator_reference, 32)
            + _fixed(when.strftime("%Y-%m-%d"), 10) + _fixed(when.strftime("%H:%M:%S"), 8)
            + struct.pack("<IIH", lo, hi, 2) + b"\0" * 64
            + struct.pack("<hhhhh", bext_cents(_loudness_field(ld, "integrated_lufs")),
                          bext_cents(_loudness_field(ld, "loudness_range_lu")),
                          bext_cents(_loudness_field(ld, "true_peak_dbtp")), BEXT_UNSET, BEXT_UNSET)
            + b"\0" * 180 + info.coding_history.encode("ascii", "replace"))


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


def read_wav_chunks(path: str | Path) -> dict[str, bytes]:
    """The chunks of a RIFF/WAVE file by id (for checking and rewriting deliverables)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise FilmscoreError(f"{path}: not a RIFF/WAVE file")
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
        raise FilmscoreError(f"{path}: has no bext chunk")

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
