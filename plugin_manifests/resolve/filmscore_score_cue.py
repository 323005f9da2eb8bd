"""filmscore for DaVinci Resolve Studio: score a cue of the current timeline with the bridge, then place the cue
on a new audio track at its record frame.

Run from Resolve Studio's menu (Workspace > Scripts > Edit > filmscore_score_cue, after copying this file into
Resolve's Scripts/Edit folder, see plugin_manifests/README.md), or from a terminal while Resolve runs:

    python filmscore_score_cue.py [--cue NAME] [--out DIR] [--seed N] [--steps N] [--maestro NAME | --midi FILE]

Cues follow the bridge's convention (docs/timelines.md): markers longer than one frame named like spotting numbers
(1M1, M3) or "cue ..."; else the timeline's marked In/Out range; else the whole timeline. One-frame markers
inside a cue are its hit points. The picture goes to the bridge as one video and a start when a single clip shows
the whole cue; any other cue is scored without picture (and says so).

Only `ResolveTimeline` touches Resolve's scripting API (DaVinciResolveScript); the cue logic is plain Python and
the bridge is reached only through its protocol (`filmscore.bridge.client`), so Resolve's Python must be able to
import `filmscore` (pip install it there, or put the filmscore virtualenv's site-packages on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

CUE_PATTERN = re.compile(r"^(\d*M\d+\w*|cue\b.*)", re.IGNORECASE)  # = bridge/timelines/cues.py DEFAULT_CUE_PATTERN
# Resolve writes NTSC rates as decimals: read them as the exact rationals they stand for.
_NTSC = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


class ResolveScriptError(Exception):
    """Something the user can fix: no project or timeline open, no such cue, Resolve refused an import."""


@dataclass(frozen=True)
class Marker:
    frame: int  # frames from the timeline's first frame
    name: str
    duration: int  # frames; Resolve's point markers last one frame


@dataclass(frozen=True)
class Clip:
    track: int  # 1-based, V1 = 1
    start: int  # record frames, absolute (timeline start frame included), half-open [start, end)
    end: int
    source_start: int  # frames from the start of the media at the clip's first frame
    path: str


@dataclass
class TimelineInfo:
    name: str
    fps: Fraction
    start_frame: int
    end_frame: int  # exclusive
    markers: list[Marker] = field(default_factory=list)
    mark_in_out: tuple[int, int] | None = None  # frames from the timeline's first frame, half-open
    clips: list[Clip] = field(default_factory=list)


@dataclass(frozen=True)
class Cue:
    name: str
    origin: str  # "marker", "in/out" or "timeline"
    record_frame: int  # absolute record frame of the cue's first frame
    n_frames: int
    hits: tuple[int, ...] = ()  # frames from the cue start


def parse_fps(text: str | float) -> Fraction:
    s = str(text).strip()
    if s in _NTSC:
        return _NTSC[s]
    try:
        fps = Fraction(s).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise ResolveScriptError(f"timeline frame rate {text!r} is not a number") from None
    if fps <= 0:
        raise ResolveScriptError(f"timeline frame rate {text!r} must be positive")
    return fps


def cue_regions(tl: TimelineInfo) -> list[Cue]:
    """The timeline's cues in record order (see the module docstring for the convention)."""
    cues = [Cue(m.name, "marker", tl.start_frame + m.frame, m.duration)
            for m in tl.markers if m.duration > 1 and CUE_PATTERN.match(m.name)]
    if not cues and tl.mark_in_out is not None and tl.mark_in_out[1] > tl.mark_in_out[0]:
        cues = [Cue("In-Out", "in/out", tl.start_frame + tl.mark_in_out[0], tl.mark_in_out[1] - tl.mark_in_out[0])]
    if not cues and tl.end_frame > tl.start_frame:
        cues = [Cue(tl.name, "timeline", tl.start_frame, tl.end_frame - tl.start_frame)]
    points = sorted(tl.start_frame + m.frame for m in tl.markers if m.duration <= 1)
    return sorted((Cue(c.name, c.origin, c.record_frame, c.n_frames,
                       tuple(p - c.record_frame for p in points if c.record_frame < p < c.record_frame + c.n_frames))
                   for c in cues), key=lambda c: c.record_frame)


def picture_for(cue: Cue, clips: list[Clip]) -> tuple[str | None, int, str]:
    """(video path, first source frame, note): the one clip on the top-most busy track that shows all of `cue`."""
    end = cue.record_frame + cue.n_frames
    over = [c for c in clips if c.start < end and c.end > cue.record_frame]
    if not over:
        return None, 0, "no video under the cue: scored without picture"
    top = max(c.track for c in over)
    visible = [c for c in over if c.track == top]
    if len(visible) != 1 or visible[0].start > cue.record_frame or visible[0].end < end:
        return None, 0, f"the cue spans {len(visible)} clip(s) on V{top} (or a gap): scored without picture"
    clip = visible[0]
    if not clip.path or not Path(clip.path).is_file():
        return None, 0, f"the clip under the cue is offline ({clip.path or 'no file'}): scored without picture"
    return clip.path, clip.source_start + cue.record_frame - clip.start, ""


class ResolveTimeline:
    """The only code that calls Resolve: reads the current timeline, imports a WAV and places it."""

    def __init__(self, resolve: Any) -> None:
        if resolve is None:
            raise ResolveScriptError("Resolve is not reachable: run this from Resolve Studio's Scripts menu, or "
                                     "enable Preferences > General > External scripting using: Local")
        self.project = resolve.GetProjectManager().GetCurrentProject()
        if not self.project:
            raise ResolveScriptError("no project is open in Resolve")
        self.timeline = self.project.GetCurrentTimeline()
        if not self.timeline:
            raise ResolveScriptError("no timeline is open in Resolve")
        self.media_pool = self.project.GetMediaPool()

    def read(self) -> TimelineInfo:
        tl = self.timeline
        markers = [Marker(int(round(float(frame))), str(m.get("name", "")), int(m.get("duration", 1)))
                   for frame, m in sorted((tl.GetMarkers() or {}).items(), key=lambda kv: float(kv[0]))]
        mark = tl.GetMarkInOut() if hasattr(tl, "GetMarkInOut") else None  # Resolve 19+
        video = (mark or {}).get("video") or {}
        # Resolve's marked out frame is inclusive; ranges here are half-open.
        in_out = (int(video["in"]), int(video["out"]) + 1) if "in" in video and "out" in video else None
        clips = []
        for track in range(1, int(tl.GetTrackCount("video")) + 1):
            for item in tl.GetItemListInTrack("video", track) or []:
                mpi = item.GetMediaPoolItem()
                clips.append(Clip(track, int(item.GetStart()), int(item.GetEnd()), int(item.GetLeftOffset()),
                                  str(mpi.GetClipProperty("File Path") or "") if mpi else ""))
        return TimelineInfo(str(tl.GetName()), parse_fps(tl.GetSetting("timelineFrameRate")), int(tl.GetStartFrame()),
                            int(tl.GetEndFrame()), markers, in_out, clips)

    def place(self, wav: Path, record_frame: int, n_frames: int) -> int:
        """Import `wav` into the media pool and put it on a new mono audio track at `record_frame`; the track."""
        items = self.media_pool.ImportMedia([str(wav)]) or []
        if not items:
            raise ResolveScriptError(f"Resolve did not import {wav}")
        if not self.timeline.AddTrack("audio", "mono"):
            raise ResolveScriptError("Resolve did not add an audio track")
        track = int(self.timeline.GetTrackCount("audio"))
        placed = self.media_pool.AppendToTimeline([{"mediaPoolItem": items[0], "startFrame": 0,
                                                    "endFrame": n_frames - 1, "mediaType": 2, "trackIndex": track,
                                                    "recordFrame": record_frame}])
        if not placed:
            raise ResolveScriptError(f"Resolve did not place {wav.name} on A{track}")
        return track


@dataclass(frozen=True)
class Scored:
    cue: Cue
    wav: Path
    track: int
    note: str


def score(host: ResolveTimeline, client: Any, out_dir: Path, cue_name: str | None = None, *,
          maestro: str | None = None, midi: Path | None = None, timeout_s: float = 3600.0, log=print,
          **options: Any) -> Scored:
    """Score one cue of `host`'s timeline through the bridge `client` (a `BridgeClient`) and place it. `options`:
    render options as the protocol names them (seed, steps, ..., the cue plan's overrides tempo_bpm, key, energy,
    ...; docs/options.md), None for the bridge's default; with a plan override the bridge plans the cue and writes
    OUT.plan.json beside the WAV."""
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    tl = host.read()
    cues = cue_regions(tl)
    if cue_name is None:
        cue = cues[0]
    else:
        matches = [c for c in cues if c.name == cue_name]
        if not matches:
            raise ResolveScriptError(f"no cue {cue_name!r} on timeline {tl.name!r}; cues: "
                                     f"{', '.join(c.name for c in cues)}")
        cue = matches[0]
    video, source_frame, note = picture_for(cue, tl.clips)
    frame_s = 1 / tl.fps
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "cue"  # noqa: E731
    seed = f"_seed{options['seed']}" if "seed" in options else ""
    wav = Path(out_dir).resolve() / f"{safe(tl.name)}_{safe(cue.name)}{seed}_{stamp}.wav"
    log(f"filmscore: {cue.name} ({cue.origin}), {float(cue.n_frames * frame_s):.2f} s at record frame "
        f"{cue.record_frame}; {note or 'picture: ' + Path(video).name}")
    job = client.render(wav, video=video, start_s=float(source_frame * frame_s) if video else None,
                        duration_s=float(cue.n_frames * frame_s), hits_s=tuple(float(h * frame_s) for h in cue.hits),
                        maestro=maestro, midi=midi, **options)

    def progress(ev) -> None:
        if ev.msg_type == "job_progress":
            log(f"  {ev.content.get('stage')} {100 * float(ev.content.get('fraction') or 0):.0f} %")

    final = client.wait(job, timeout_s=timeout_s, on_event=progress)
    if final["state"] != "finished":
        raise ResolveScriptError(f"the bridge's job {job} {final['state']}: {final.get('error') or ''}".strip())
    result = client.result(job)
    track = host.place(Path(result["output"]), cue.record_frame, cue.n_frames)
    log(f"filmscore: {Path(result['output']).name} on A{track} at record frame {cue.record_frame}")
    return Scored(cue, Path(result["output"]), track, note)


def _resolve_app() -> Any:
    """Resolve's scripting object: the Scripts menu provides `resolve` (or Fusion's `app`); a terminal imports it."""
    g = globals()
    if g.get("resolve"):
        return g["resolve"]
    if g.get("app") is not None and hasattr(g["app"], "GetResolve"):
        return g["app"].GetResolve()
    try:
        import DaVinciResolveScript as dvr  # noqa: N813 - Resolve's module name
    except ImportError:
        raise ResolveScriptError("DaVinciResolveScript is not importable: set RESOLVE_SCRIPT_API and PYTHONPATH as "
                                 "Resolve's Developer/Scripting/README.txt says") from None
    return dvr.scriptapp("Resolve")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="filmscore_score_cue", description="Score a cue of Resolve's current timeline.")
    p.add_argument("--cue", default=None, help="cue name (default: the first cue)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: ~/Music/filmscore; must be one "
                   "of the bridge's output roots)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--maestro", default=None)
    src.add_argument("--midi", type=Path, default=None)
    p.add_argument("--connection-file", type=Path, default=None, help="the bridge's (default: the newest)")
    try:
        from filmscore.bridge.client import BridgeClient
        from filmscore.bridge.option_flags import add_render_options, given_options
        from filmscore.engine.errors import FilmscoreError
    except ImportError:
        print("filmscore: this Python cannot import filmscore; see plugin_manifests/README.md", file=sys.stderr)
        return 2
    # the render options, as `filmscore render` takes them (engine/options.py); the bridge's defaults for the rest
    add_render_options(p)
    args = p.parse_args(argv if argv is not None else [])
    out = args.out or Path.home() / "Music" / "filmscore"
    try:
        out.mkdir(parents=True, exist_ok=True)
        host = ResolveTimeline(_resolve_app())
        with BridgeClient.from_connection_file(args.connection_file) as client:
            score(host, client, out, args.cue, maestro=args.maestro, midi=args.midi.resolve() if args.midi else None,
                  **given_options(args))
    except (ResolveScriptError, FilmscoreError, OSError) as e:
        print(f"filmscore: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Resolve's Scripts menu runs the file as __main__ with no arguments; a terminal passes its own.
    sys.exit(main(sys.argv[1:]))
