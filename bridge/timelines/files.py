"""Read and write editors' timelines through OpenTimelineIO and its adapters.

`read_timeline(path)` picks the adapter from the file suffix; OTIO JSON (`.otio`, and the `content.otio` inside an
`.otioz` bundle) goes through the Marker.3 downgrade pre-pass (`schema_compat`). Every failure is a
`TimelineError` naming the file and what went wrong; nothing else escapes. `write_timeline` writes to a temporary
file beside the target and renames it, so a failed write never leaves half a timeline.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import opentimelineio as otio

from ..deliverables import atomic_write_bytes
from .errors import TimelineError
from .schema_compat import read_otio_json

# suffix -> (OTIO adapter name, human name). Writers exist for all but AAF's (pyaaf2 writes; the adapter is kept
# read-only here) and FCP X's (it writes, but only as a whole library; not offered).
FORMATS: dict[str, tuple[str, str]] = {
    ".otio": ("otio_json", "OpenTimelineIO JSON"),
    ".otioz": ("otioz", "OpenTimelineIO zip bundle"),
    ".xml": ("fcp_xml", "Final Cut Pro 7 XML (Premiere, Resolve)"),
    ".fcpxml": ("fcpx_xml", "Final Cut Pro X XML"),
    ".edl": ("cmx_3600", "CMX 3600 EDL"),
    ".aaf": ("AAF", "Avid AAF"),
}
WRITABLE_SUFFIXES: tuple[str, ...] = (".otio", ".xml", ".edl")


@dataclass
class LoadedTimeline:
    """A timeline as read: the OTIO object, where it came from, and what the reader had to do to it."""

    timeline: otio.schema.Timeline
    path: Path
    adapter: str
    markers_downgraded: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()


def _adapter_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{s} ({h})" for s, (_, h) in FORMATS.items())
        raise TimelineError(f"{path}: unknown timeline format {suffix or '(no suffix)'!r}; known: {known}")
    adapter = FORMATS[suffix][0]
    if adapter not in otio.adapters.available_adapter_names():
        raise TimelineError(f"{path}: the OpenTimelineIO adapter {adapter!r} is not installed "
                            f"(pip install the filmscore dependencies)")
    return adapter


def read_timeline(path: str | Path) -> LoadedTimeline:
    """Read any supported timeline file. Raises `TimelineError` (one line, naming the file) on any failure."""
    path = Path(path)
    if not path.is_file():
        raise TimelineError(f"{path}: no such timeline file")
    adapter = _adapter_for(path)
    downgraded = 0
    try:
        if adapter == "otio_json":
            obj, downgraded = read_otio_json(path.read_text(encoding="utf-8"), str(path))
        elif adapter == "otioz":
            with zipfile.ZipFile(path) as z:
                obj, downgraded = read_otio_json(z.read("content.otio").decode("utf-8"), f"{path}:content.otio")
        else:
            obj = otio.adapters.read_from_file(str(path), adapter_name=adapter)
    except TimelineError:
        raise
    except (zipfile.BadZipFile, KeyError) as e:
        raise TimelineError(f"{path}: not a valid .otioz bundle ({e})") from e
    except UnicodeDecodeError as e:
        raise TimelineError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except Exception as e:  # adapters raise anything from ElementTree.ParseError to IndexError on bad input
        raise TimelineError(f"{path}: the {FORMATS[path.suffix.lower()][1]} reader refused it "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})") from e
    if isinstance(obj, otio.schema.SerializableCollection):
        timelines = list(obj.find_children(descended_from_type=otio.schema.Timeline))
        if not timelines:
            raise TimelineError(f"{path}: holds no timeline")
        obj = timelines[0]
    if not isinstance(obj, otio.schema.Timeline):
        raise TimelineError(f"{path}: holds a {type(obj).__name__}, not a timeline")
    notes = [f"{downgraded} Marker.3 downgraded to Marker.2"] if downgraded else []
    return LoadedTimeline(obj, path, adapter, downgraded, notes)


def write_timeline(timeline: otio.schema.Timeline, path: str | Path) -> Path:
    """Write `timeline` in the format of `path`'s suffix, atomically (temporary file + rename).

    OTIO JSON is written with Marker.2 (what OpenTimelineIO 0.18 writes and Resolve and Premiere read).
    Raises `TimelineError` when the adapter refuses the timeline and `DeliveryError` when the file cannot be written.
    """
    path = Path(path)
    adapter = _adapter_for(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise TimelineError(f"{path}: filmscore writes timelines as {', '.join(WRITABLE_SUFFIXES)}, "
                            f"not {path.suffix}")
    try:
        text = otio.adapters.write_to_string(timeline, adapter_name=adapter)
    except Exception as e:
        raise TimelineError(f"{path}: the {FORMATS[path.suffix.lower()][1]} writer refused the timeline "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})") from e
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def timeline_sample_rate(timeline: otio.schema.Timeline) -> int | None:
    """The sequence's audio rate where the exporter recorded it (FCP 7 XML: media/audio/format/
    samplecharacteristics/samplerate, kept by OTIO in the timeline's `fcp_xml` metadata), else None."""
    try:
        rate = timeline.metadata["fcp_xml"]["media"]["audio"]["format"]["samplecharacteristics"]["samplerate"]
        value = int(float(rate))
    except (KeyError, TypeError, ValueError):
        return None
    return value if 8000 <= value <= 192000 else None
