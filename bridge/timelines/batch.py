"""Score a timeline's cues in one resumable batch: render, deliver, place on a scored timeline.

For each cue, in timeline order:
1. its length in samples from its rational record range (`timing.range_samples`, the one conversion);
2. its picture: each visible clip encoded over its source range, joined (`film_of_region.encode_region`); offline
   clips are listed and the cue is rendered from what is there;
3. `render_cue` with the picture as `RenderRequest.film_features` and the cue's hit points, into a work folder;
4. delivery: exactly that many samples, loudness-normalised with a true-peak ceiling, 24-bit BWF whose `bext`
   time reference is the cue's start in samples since the timeline's zero (start timecode included), iXML, a
   JSON sidecar (request, seed, bundle, controls, cue, loudness, offline clips), the fitted theme as MIDI;
5. the manifest `OUTDIR/filmscore-batch.json` is rewritten (atomically) after every cue.

A rerun skips every cue the manifest records as done whose WAV is still there with its length and whose settings
(record range, seed, controls, bundle, ...) are unchanged; a failed cue is recorded with its message and does not
stop the others. At the end the scored timeline holds every done cue (`scored.write_scored_timeline`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from filmscore.engine.constants import DELIVERY_SAMPLE_RATE, MAX_CUE_S, MIN_CUE_S
from filmscore.engine.errors import FilmscoreError, RenderCancelled
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.request import CancelFn, ProgressFn, RenderRequest, RenderResult

from ..deliverables import (BextInfo, DeliveryError, ixml_chunk, normalize_loudness, resolve_target, write_bwf,
                            write_json)
from .cues import CueList, CueRegion
from .film_of_region import EncodeFn, encode_region
from .scored import Placement, write_scored_timeline
from .timing import range_samples, rate_fraction, to_samples

MANIFEST_NAME = "filmscore-batch.json"
WORK_DIR_NAME = ".filmscore-work"

RenderFn = Callable[..., RenderResult]
CueEvent = Callable[[str, CueRegion, int, int, str], None]
"""on_cue(event, cue, index, total, message); event: "start", "skip", "done", "fail"."""


@dataclass(frozen=True)
class ScoreOptions:
    """What every cue of the batch shares. `loudness`: a preset name or LUFS; `sample_rate`: the delivered rate."""

    seed: int = 0
    midi: Path | None = None
    maestro: str | None = None
    reference_audio: Path | None = None
    theme: str | None = None
    steps: int = 25
    scheduler: str = "dpmpp"
    picture_guidance: float = 2.0
    control_guidance: float = 3.0
    control_strength: float = 1.0
    picture_dynamics: float = 0.5
    bundle: Path | None = None
    backend: str = "auto"
    vocoder: str = "auto"
    sample_rate: int = DELIVERY_SAMPLE_RATE
    loudness: str | float = "ebu-r128"
    search_roots: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}


@dataclass
class CueOutcome:
    name: str
    file_stem: str
    status: Literal["done", "skipped", "failed", "pending"]
    wav: str | None = None
    n_samples: int | None = None
    message: str = ""
    missing_picture: list[str] = field(default_factory=list)
    loudness: dict | None = None
    seconds: float | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BatchResult:
    outdir: Path
    outcomes: list[CueOutcome]
    timelines: list[Path]
    timeline_notes: list[str]

    @property
    def ok(self) -> bool:
        return all(o.status in ("done", "skipped") for o in self.outcomes)

    def to_json(self) -> dict:
        return {"outdir": str(self.outdir), "ok": self.ok, "cues": [o.to_json() for o in self.outcomes],
                "scored_timelines": [str(p) for p in self.timelines], "notes": self.timeline_notes}


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return f"missing:{path}"


def _bundle_dir(bundle: Path | None) -> Path:
    """The bundle folder a render uses: the given one, or the default shipped in the engine package."""
    import filmscore.engine

    return Path(bundle) if bundle is not None else Path(filmscore.engine.__file__).parent / "default_bundle"


def cue_key(cue: CueRegion, options: ScoreOptions) -> str:
    """What a cue's audio depends on; a rerun with the same key reuses the finished file."""
    d = {"range": [cue.record_range.start_time.value, cue.record_range.start_time.rate,
                   cue.record_range.duration.value, cue.record_range.duration.rate],
         "global_start": [cue.global_start.value, cue.global_start.rate],
         "hits": [[h.time.value, h.time.rate] for h in cue.hits],
         "picture": [[str(s.media_path), s.kind, s.source_start.value if s.source_start is not None else None,
                      s.time_scalar, s.record_range.duration.value] for s in cue.picture],
         "options": {k: v for k, v in options.to_json().items() if k != "search_roots"},
         "midi": _file_digest(options.midi), "reference": _file_digest(options.reference_audio),
         # bundle.json holds every weight file's sha256: a retrained bundle at the same path renders again
         "bundle": _file_digest(_bundle_dir(options.bundle) / "bundle.json")}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:20]


class Manifest:
    """`OUTDIR/filmscore-batch.json`: per cue its status, settings key, files and length; rewritten atomically."""

    def __init__(self, outdir: Path, timeline: str):
        self.path = outdir / MANIFEST_NAME
        self.data: dict[str, Any] = {"filmscore": "batch/1", "timeline": timeline, "cues": {}}
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
                if isinstance(old, dict) and isinstance(old.get("cues"), dict):
                    self.data["cues"] = old["cues"]
            except (OSError, json.JSONDecodeError):
                pass  # a damaged manifest only costs re-rendering

    def finished(self, cue: CueRegion, key: str, outdir: Path) -> dict | None:
        """The manifest entry of `cue` when it is done with `key` and its WAV still has its length."""
        e = self.data["cues"].get(cue.file_stem)
        if not e or e.get("status") != "done" or e.get("key") != key:
            return None
        wav = outdir / e.get("wav", "")
        try:
            import soundfile as sf

            if sf.info(str(wav)).frames != e.get("n_samples"):
                return None
        except Exception:  # missing or unreadable: render again
            return None
        return e

    def record(self, stem: str, entry: dict) -> None:
        self.data["cues"][stem] = entry
        write_json(self.path, self.data)


def _deliver(cue: CueRegion, result: RenderResult, outdir: Path, n_samples: int, options: ScoreOptions,
             timeline_name: str, missing: list[str]) -> tuple[Path, dict]:
    """Turn the engine's render into the cue's delivery files; return (WAV path, loudness report)."""
    import soundfile as sf

    audio, sr = sf.read(str(result.output), dtype="float32", always_2d=False)
    if sr != options.sample_rate:
        raise DeliveryError(f"cue {cue.name!r}: the engine rendered {sr} Hz, {options.sample_rate} Hz was asked")
    if audio.shape[0] != n_samples:  # the engine rounds duration * rate; keep the timeline's exact count
        pad = [(0, max(0, n_samples - audio.shape[0]))] + [(0, 0)] * (audio.ndim - 1)
        audio = np.pad(audio[:n_samples], pad)
    audio, loud = normalize_loudness(audio, sr, options.loudness)
    time_ref = to_samples(cue.record_timecode_start, sr)
    rate = rate_fraction(cue.record_start.rate)
    description = f"filmscore cue {cue.name} ({timeline_name}), seed {options.seed}"
    bext = BextInfo(description=description, originator="filmscore", originator_reference=cue.file_stem[:32],
                    time_reference=time_ref, loudness=loud,
                    coding_history=f"A=PCM,F={sr},W=24,M=mono,T=filmscore\r\n")
    ixml = ixml_chunk(project=timeline_name, scene=cue.name, note=description, sample_rate=sr,
                      time_reference=time_ref, frame_rate=(rate.numerator, rate.denominator))
    wav = write_bwf(outdir / f"{cue.file_stem}.wav", audio, sr, bext, ixml)
    # Sidecars beside the WAV: the engine's controls and fitted theme, and the metadata with the cue added.
    work = Path(result.output)
    for suffix in (".controls.npz", ".theme.mid"):
        src = work.with_suffix("").with_name(work.stem + suffix)
        if src.is_file():
            try:
                os.replace(src, outdir / f"{cue.file_stem}{suffix}")
            except OSError as e:
                raise DeliveryError(f"cannot write {outdir / (cue.file_stem + suffix)}: {e.strerror or e}") from e
    meta = dict(result.metadata)
    if meta.get("controls"):
        meta["controls"] = dict(meta["controls"], file=f"{cue.file_stem}.controls.npz",
                                theme_midi=f"{cue.file_stem}.theme.mid" if meta["controls"].get("theme_midi") else None)
    meta.update({"cue": cue.to_json(), "wav": wav.name, "n_samples": n_samples, "sample_rate": sr,
                 "time_reference": time_ref, "loudness": loud.to_json(), "missing_picture": missing,
                 "batch_options": options.to_json()})
    write_json(outdir / f"{cue.file_stem}.json", meta)
    return wav, loud.to_json()


def engine_hits_s(cue: CueRegion, film: FilmFeatures | None) -> tuple[float, ...]:
    """The cue's hit points for the engine: the timeline's (edits, point markers) and the picture's own (cuts
    inside a clip, motion accents), seconds from the cue start, merged within 50 ms."""
    times = sorted([h.time.to_seconds() for h in cue.hits] + list(film.hit_points_s if film is not None else ()))
    merged: list[float] = []
    for t in times:
        if 0.0 <= t < cue.duration.to_seconds() and (not merged or t - merged[-1] > 0.05):
            merged.append(round(t, 6))
    return tuple(merged)


def score_timeline(cue_list: CueList, cues: Sequence[CueRegion], outdir: str | Path, options: ScoreOptions, *,
                   render: RenderFn | None = None, encode: EncodeFn | None = None, on_cue: CueEvent | None = None,
                   progress: ProgressFn | None = None, should_cancel: CancelFn | None = None) -> BatchResult:
    """Render `cues` of `cue_list` into `outdir` (made if missing), resumably; write the scored timeline.

    `render` defaults to `filmscore.engine.render.render_cue`, `encode` to the engine's film encoder. A cue that
    fails (bad range, unreadable media, engine error) is recorded and the batch goes on; cancelling
    (`should_cancel` or Ctrl-C) stops after the current cue's state is saved and re-raises."""
    outdir = Path(outdir)
    resolve_target(options.loudness)  # refuse a bad target before any rendering
    if render is None:
        from filmscore.engine.render import render_cue as render
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeliveryError(f"cannot create output folder {outdir}: {e.strerror or e}") from e
    for stale in outdir.glob(".*.part"):  # temporary files of a batch that was killed mid-write
        stale.unlink(missing_ok=True)
    loaded = cue_list.timeline
    timeline_name = loaded.timeline.name or loaded.path.stem
    manifest = Manifest(outdir, str(loaded.path))
    work_root = outdir / WORK_DIR_NAME
    events = on_cue or (lambda *a: None)
    outcomes: list[CueOutcome] = []
    total = len(cues)
    for i, cue in enumerate(cues):
        key = cue_key(cue, options)
        prior = manifest.finished(cue, key, outdir)
        if prior is not None:
            outcomes.append(CueOutcome(cue.name, cue.file_stem, "skipped", prior["wav"], prior["n_samples"],
                                       "already rendered with these settings", prior.get("missing_picture", []),
                                       prior.get("loudness")))
            events("skip", cue, i, total, "already rendered")
            continue
        events("start", cue, i, total, "")
        t0 = time.perf_counter()
        _, n_samples = range_samples(cue.record_range, options.sample_rate)
        outcome = CueOutcome(cue.name, cue.file_stem, "failed", n_samples=n_samples)
        try:
            d = cue.duration.to_seconds()
            if not MIN_CUE_S <= d <= MAX_CUE_S:
                raise FilmscoreError(f"cue {cue.name!r}: {d:.3f} s is outside what the engine renders "
                                     f"({MIN_CUE_S:g}..{MAX_CUE_S:g} s)")
            film = encode_region(cue.picture, encode)
            outcome.missing_picture = film.missing
            work = work_root / cue.file_stem
            work.mkdir(parents=True, exist_ok=True)
            request = RenderRequest(
                output=work / f"{cue.file_stem}.wav", duration_s=n_samples / options.sample_rate,
                midi=options.midi, reference_audio=options.reference_audio, maestro=options.maestro,
                theme=options.theme, hits_s=engine_hits_s(cue, film.features), seed=options.seed,
                steps=options.steps, scheduler=options.scheduler, picture_guidance=options.picture_guidance,
                control_guidance=options.control_guidance, control_strength=options.control_strength,
                picture_dynamics=options.picture_dynamics, sample_rate=options.sample_rate, target_lufs=resolve_target(options.loudness),
                bundle=options.bundle, backend=options.backend, vocoder=options.vocoder,
                film_features=film.features)
            if film.features is None:  # nothing to see: the engine renders without picture guidance
                request = replace(request, picture_guidance=0.0)
            result = render(request, progress=progress, should_cancel=should_cancel)
            wav, loud = _deliver(cue, result, outdir, n_samples, options, timeline_name, film.missing)
            shutil.rmtree(work, ignore_errors=True)
            outcome.status, outcome.wav, outcome.loudness = "done", wav.name, loud
            outcome.seconds = time.perf_counter() - t0
            manifest.record(cue.file_stem, {"status": "done", "key": key, "name": cue.name, "wav": wav.name,
                                            "n_samples": n_samples, "loudness": loud,
                                            "missing_picture": film.missing, "seconds": outcome.seconds})
            events("done", cue, i, total, wav.name)
        except (RenderCancelled, KeyboardInterrupt):
            outcome.message = "cancelled"
            manifest.record(cue.file_stem, {"status": "cancelled", "key": key, "name": cue.name})
            raise
        except FilmscoreError as e:
            outcome.message = str(e)
            manifest.record(cue.file_stem, {"status": "failed", "key": key, "name": cue.name, "error": str(e)})
            events("fail", cue, i, total, str(e))
        outcomes.append(outcome)
    shutil.rmtree(work_root, ignore_errors=True)

    placements = [Placement(c, outdir / o.wav, o.n_samples, options.sample_rate)
                  for c, o in zip(cues, outcomes) if o.status in ("done", "skipped") and o.wav]
    timelines, notes = write_scored_timeline(loaded, placements, outdir) if placements else ([], [])
    return BatchResult(outdir, outcomes, timelines, notes)
