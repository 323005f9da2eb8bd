"""An .sf3 SoundFont (Ogg Vorbis samples, MuseScore's format) expanded once into a plain SoundFont 2 file.

FluidSynth decodes every Vorbis sample a render uses each time it loads an .sf3: with MuseScore_General.sf3 that is
most of a corpus clip's cost (measured in docs/dataset.md). `expanded_sf2` decodes each sample once (libsndfile via
soundfile, to 16-bit PCM, as FluidSynth's own sf3 loader reads them) and writes a SoundFont 2.04 file with the same
presets, instruments, generators and modulators, byte for byte, and a new sample table:
- sf3 sample headers hold byte offsets into the compressed data (`start`, `end`) and loop points relative to the
  sample's first frame; sf2 headers hold frame indices from the start of the sample data. Each decoded sample is
  followed by 46 zero frames, as the SoundFont 2 specification asks.
- The Vorbis flag (0x10) is cleared from the sample type; the INFO `ifil` version becomes 2.04.
The file goes to `~/.cache/filmscore/soundfonts/<name>.sf2` (written whole, then renamed) and is reused while its
source is unchanged (the source's size and mtime are in its name).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

from ..errors import FilmscoreError

CACHE_DIR = Path("~/.cache/filmscore/soundfonts")
SHDR = struct.Struct("<20sIIIIIBbHH")  # name, start, end, loop start, loop end, rate, key, correction, link, type
VORBIS_FLAG = 0x10
ZERO_FRAMES = 46


class SoundFontError(FilmscoreError):
    """A SoundFont that cannot be read or expanded."""


def _chunks(data: bytes, start: int, end: int):
    """(chunk id, payload offset, payload size) of the RIFF chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def _chunk(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _lists(data: bytes, path: Path) -> dict[bytes, list[tuple[bytes, bytes]]]:
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise SoundFontError(f"SoundFont {path}: not a SoundFont file (no RIFF 'sfbk' header)")
    out: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for cid, off, size in _chunks(data, 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])):
        if cid == b"LIST":
            kind = data[off:off + 4]
            out[kind] = [(c, data[o:o + s]) for c, o, s in _chunks(data, off + 4, off + size)]
    for kind in (b"INFO", b"sdta", b"pdta"):
        if kind not in out:
            raise SoundFontError(f"SoundFont {path}: no {kind.decode()} list")
    return out


def expand_sf3(src: str | Path, dst: str | Path) -> int:
    """Write `src` (.sf3) as a SoundFont 2 file `dst`; returns the number of samples decoded."""
    import numpy as np
    import soundfile as sf

    src = Path(src)
    data = src.read_bytes()
    lists = _lists(data, src)
    smpl = next((p for c, p in lists[b"sdta"] if c == b"smpl"), None)
    shdr = next((p for c, p in lists[b"pdta"] if c == b"shdr"), None)
    if smpl is None or shdr is None or len(shdr) % SHDR.size:
        raise SoundFontError(f"SoundFont {src}: no sample data or a malformed sample header table")
    records = [list(SHDR.unpack_from(shdr, i)) for i in range(0, len(shdr), SHDR.size)]
    pcm = bytearray()
    decoded = 0
    for rec in records[:-1]:  # the last record is the terminal "EOS"
        _, start, end, loop_start, loop_end, *_rest, kind = rec
        if kind & VORBIS_FLAG:
            try:
                frames, _ = sf.read(io.BytesIO(smpl[start:end]), dtype="int16", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as e:
                name = rec[0].split(b"\0", 1)[0].decode(errors="replace")
                raise SoundFontError(f"SoundFont {src}: sample {name} does not decode ({e})") from e
            frames = np.ascontiguousarray(frames[:, 0])
            rel_loop = (loop_start, loop_end)
            decoded += 1
        else:
            frames = np.frombuffer(smpl[2 * start:2 * end], "<i2")
            rel_loop = (loop_start - start, loop_end - start)
        first = len(pcm) // 2
        pcm += frames.astype("<i2").tobytes() + bytes(2 * ZERO_FRAMES)
        rec[1], rec[2] = first, first + len(frames)
        rec[3], rec[4] = first + rel_loop[0], first + rel_loop[1]
        rec[-1] = kind & ~VORBIS_FLAG
    info = [(c, struct.pack("<HH", 2, 4) if c == b"ifil" else p) for c, p in lists[b"INFO"]]
    pdta = [(c, b"".join(SHDR.pack(*r) for r in records) if c == b"shdr" else p) for c, p in lists[b"pdta"]]
    body = b"sfbk" + b"".join(
        _chunk(b"LIST", kind + b"".join(_chunk(c, p) for c, p in chunks))
        for kind, chunks in ((b"INFO", info), (b"sdta", [(b"smpl", bytes(pcm))]), (b"pdta", pdta)))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    os.replace(tmp, dst)
    return decoded


def expanded_sf2(font: str | Path, cache_dir: str | Path = CACHE_DIR) -> Path:
    """`font` itself unless it is an .sf3; then its expanded SoundFont 2 copy in `cache_dir`, made on first use."""
    font = Path(font)
    if font.suffix.lower() != ".sf3":
        return font
    real = font.resolve()
    st = real.stat()
    dst = Path(cache_dir).expanduser() / f"{real.stem}-{st.st_size}-{int(st.st_mtime)}.sf2"
    if not dst.is_file():
        expand_sf3(real, dst)
    return dst
