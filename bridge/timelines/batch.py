"""Score a timeline's cues in one resumable batch: render, deliver, place on a scored timeline.

For each cue:
1. its length in samples from its rational record range (`timing.range_samples`, the one conversion);
2. a `CueTask` for the executor (`bridge/executors`: this process, or Ray actors on a cluster), which, where it
   renders, encodes the picture (each visible clip over its source range, joined by `film_of_region.encode_region`;
   offline clips are listed and the cue is rendered from what is there) and calls `render_cue` with it as
   `RenderRequest.film_features` and the cue's hit points, into a work folder on this side;
   The request is `render_cue.cue_request`'s, the picture step `render_cue.with_region_picture`'s: the same as a
   bridge timeline job's and `filmscore render --timeline`'s. The engine masters the cue once and writes it as the
   request's delivery says: exactly that many samples, loudness-normalised with a true-peak ceiling, 24-bit BWF
   whose `bext` time reference is the cue's start in samples since the timeline's zero (start timecode included),
   and iXML (engine/audio/delivery.py);
3. as each cue finishes (in whatever order the executor finishes them), here, on the submitting side: the engine's
   BWF moved into OUTDIR as it is, a JSON sidecar (request, seed, bundle, controls, cue, loudness, offline clips,
   plan), the fitted theme as MIDI, and the cue plan (STEM.plan.json, STEM.plan.mid: tempo map on the cue's cuts
   and hits, key, harmony, bass, mood; made on the worker from the same picture, hits, theme and seed; `filmscore
   render --plan` renders it);
4. the manifest `OUTDIR/filmscore-batch.json` is rewritten (atomically) after every cue, cues in timeline order.

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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal


from filmscore.engine import sidecar
from filmscore.engine.audio.loudness import resolve_target
from filmscore.engine.constants import MAX_CUE_S, MIN_CUE_S
from filmscore.engine.errors import FilmscoreError, RenderCancelled
from filmscore.engine.options import RenderOptions
from filmscore.engine.request import CancelFn, ProgressFn, RenderRequest, RenderResult

from ..executors.base import CueTask, Executor, SegmentSpec, TaskEvent
from ..deliverables import DeliveryError, write_json
from .cues import CueList, CueRegion
from .film_of_region import EncodeFn
from .render_cue import cue_request, cue_samples, timeline_hits_s, timeline_name
from .scored import Placement, write_scored_timeline
from .timing import to_samples

MANIFEST_NAME = "filmscore-batch.json"
WORK_DIR_NAME = ".filmscore-work"

RenderFn = Callable[..., RenderResult]
CueEvent = Callable[[str, CueRegion, int, int, str], None]
"""on_cue(event, cue, index, total, message); event: "start", "skip", "done", "fail"."""


@dataclass(frozen=True)
class ScoreOptions(RenderOptions):
    """What every cue of the batch shares: the render options (`RenderOptions`, engine/options.py, inherited as
    keyword-only fields; `sample_rate` is the delivered rate, `target_lufs` the delivered loudness; with plan
    overrides each cue renders the plan made with them) and the theme, bundle and media search roots."""

    midi: Path | None = None
    maestro: str | None = None
    reference_audio: Path | None = None
    theme: str | None = None
    bundle: Path | None = None
    search_roots: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScoreOptions:
        """The options `to_json` wrote (a delivered cue's `batch_options`); unknown keys are left out, and the
        `loudness` (a preset name or LUFS) of sidecars written before `target_lufs` is read as that."""
        kw: dict[str, Any] = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for name in ("midi", "reference_audio", "bundle"):
            if kw.get(name) is not None:
                kw[name] = Path(kw[name])
        kw["search_roots"] = tuple(Path(x) for x in kw.get("search_roots", ()))
        if "target_lufs" not in kw and d.get("loudness") is not None:
            kw["target_lufs"] = resolve_target(d["loudness"])
        return cls(**kw)

    def validate(self) -> None:
        """What the engine would refuse of every cue, before any rendering: the options' ranges, and their
        combination with the theme (plan overrides with reference audio, a theme id without a maestro), checked by
        `RenderRequest.validate` on a probe request of one cue."""
        RenderRequest(Path("cue.wav"), duration_s=MIN_CUE_S, midi=self.midi, reference_audio=self.reference_audio,
                      maestro=self.maestro, theme=self.theme, **self.option_values()).validate()


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
    timings_s: dict | None = None  # where its time went: picture, render, transfer, deliver, journal, worker_cpu
    stems: dict | None = None  # stem name -> file beside the WAV (a v2 bundle's, with RenderOptions.stems)

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

    def __init__(self, outdir: Path, timeline: str, order: Sequence[str] = ()):
        self.path = outdir / MANIFEST_NAME
        self.order = {stem: i for i, stem in enumerate(order)}
        self.data: dict[str, Any] = {sidecar.KEY: sidecar.BATCH.tag, "timeline": timeline, "cues": {}}
        if self.path.is_file():
            try:
                old = sidecar.load(sidecar.BATCH, self.path)  # a newer filmscore's manifest is refused, not clobbered
                if isinstance(old.get("cues"), dict):
                    self.data["cues"] = old["cues"]
            except sidecar.NewerSchemaError:
                raise
            except sidecar.SchemaError:
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
        """Store `entry` and rewrite the file, cues in timeline order (then earlier runs' other cues): the same
        batch gives the same manifest whichever order its cues finished in."""
        cues = dict(self.data["cues"], **{stem: entry})
        rank = {k: (self.order.get(k, len(self.order)), i) for i, k in enumerate(cues)}
        self.data["cues"] = {k: cues[k] for k in sorted(cues, key=rank.__getitem__)}
        write_json(self.path, self.data)


def _deliver(cue: CueRegion, result: RenderResult, outdir: Path, n_samples: int, options: ScoreOptions,
             missing: list[str]) -> tuple[Path, dict]:
    """Move the engine's delivered cue (BWF, mastered and written once by the engine as its request's delivery
    says) and its sidecars from the work folder into `outdir`; return (WAV path, loudness report)."""
    import soundfile as sf

    work = Path(result.output)
    sr = options.sample_rate
    try:
        info = sf.info(str(work))
    except (RuntimeError, OSError) as e:
        raise DeliveryError(f"cue {cue.name!r}: the engine's WAV {work} cannot be read ({e})") from e
    if info.samplerate != sr or info.frames != n_samples:
        raise DeliveryError(f"cue {cue.name!r}: the engine delivered {info.frames} samples at {info.samplerate} Hz; "
                            f"{n_samples} at {sr} Hz were asked")
    wav = outdir / f"{cue.file_stem}.wav"
    try:
        os.replace(work, wav)
    except OSError as e:
        raise DeliveryError(f"cannot write {wav}: {e.strerror or e}") from e
    time_ref = to_samples(cue.record_timecode_start, sr)
    loudness = result.metadata.get("loudness")
    # A v2 bundle's stems (RenderOptions.stems): delivered like the mix, beside it, as STEM.<stem>.wav. Found by name
    # in the work folder (a remote executor returns the folder's files; the paths in the metadata are the worker's).
    stems = {}
    for name in result.metadata.get("stems") or {}:
        src, dst = work.with_name(f"{work.stem}.{name}.wav"), outdir / f"{cue.file_stem}.{name}.wav"
        try:
            os.replace(src, dst)
        except OSError as e:
            raise DeliveryError(f"cue {cue.name!r}: cannot deliver its {name} stem to {dst}: {e.strerror or e}") from e
        stems[name] = dst.name
    # Sidecars beside the WAV: the engine's controls and fitted theme, and the metadata with the cue added.
    for suffix in (".controls.npz", ".theme.mid", ".plan.json", ".plan.mid", ".latent.npy"):
        src = work.with_suffix("").with_name(work.stem + suffix)
        if suffix.startswith(".plan") and not src.is_file():  # no plan this time: an earlier run's is not this cue's
            (outdir / f"{cue.file_stem}{suffix}").unlink(missing_ok=True)
        if src.is_file():
            try:
                os.replace(src, outdir / f"{cue.file_stem}{suffix}")
            except OSError as e:
                raise DeliveryError(f"cannot write {outdir / (cue.file_stem + suffix)}: {e.strerror or e}") from e
    meta = dict(result.metadata)
    if meta.get("controls"):
        meta["controls"] = dict(meta["controls"], file=f"{cue.file_stem}.controls.npz",
                                theme_midi=f"{cue.file_stem}.theme.mid" if meta["controls"].get("theme_midi") else None)
    if meta.get("latent"):  # the final latent (engine/regenerate.py holds it when a range is regenerated)
        meta["latent"] = dict(meta["latent"], file=f"{cue.file_stem}.latent.npy")
    plan = cue_plan_entry(outdir, cue.file_stem)
    meta.update({"cue": cue.to_json(), "wav": wav.name, "n_samples": n_samples, "sample_rate": sr,
                 "time_reference": time_ref, "loudness": loudness, "missing_picture": missing,
                 "batch_options": options.to_json(), "plan": plan, "stems": stems or None})
    write_json(outdir / f"{cue.file_stem}.json", meta)
    return wav, loudness


def cue_plan_entry(outdir: Path, stem: str) -> dict | None:
    """What the manifest and the cue's sidecar record of the plan delivered beside the WAV (STEM.plan.json and
    STEM.plan.mid: its files, tempo, key, mode and mood), or None when the cue has none (rendered from reference
    audio)."""
    path = outdir / f"{stem}.plan.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        return {"json": path.name, "midi": f"{stem}.plan.mid" if (outdir / f"{stem}.plan.mid").is_file() else None,
                "tempo_bpm": doc["tempo_bpm"], "key": doc["key"], "mode": doc["mode"], "mood": doc["mood"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DeliveryError(f"cue plan {path}: unreadable ({e})") from e


def cue_task(cue: CueRegion, options: ScoreOptions, work: Path, timeline_name: str) -> CueTask:
    """What an executor renders for `cue`: the request (`render_cue.cue_request`: the engine's BWF into `work`) and
    the region's picture, which the worker encodes (the heavy decode runs where the render runs)."""
    base = RenderRequest(
        output=work / f"{cue.file_stem}.wav", midi=options.midi, reference_audio=options.reference_audio,
        maestro=options.maestro, theme=options.theme, bundle=options.bundle, **options.option_values())
    request = cue_request(base, cue, timeline_name)
    # plan={}: the cue plan the picture and theme ask for (no overrides), written beside the cue; the cue itself is
    # rendered as `filmscore render` renders it without plan flags (its theme fitted, not the plan's melody). With
    # plan overrides (`score --tempo ...`), the engine makes the plan with them and renders it, as `render` does.
    return CueTask(cue.file_stem, request, tuple(SegmentSpec.of(s) for s in cue.picture), timeline_hits_s(cue),
                   cost_s=float(request.duration_s or 0.0), plan=None if options.plan_given else {})


def score_timeline(cue_list: CueList, cues: Sequence[CueRegion], outdir: str | Path, options: ScoreOptions, *,
                   render: RenderFn | None = None, encode: EncodeFn | None = None, executor: Executor | None = None,
                   on_cue: CueEvent | None = None, progress: ProgressFn | None = None,
                   should_cancel: CancelFn | None = None) -> BatchResult:
    """Render `cues` of `cue_list` into `outdir` (made if missing), resumably; write the scored timeline.

    `executor` renders the cues that are not done yet (default: `LocalExecutor(render, encode)`, this process;
    `render` defaults to the engine's `render_cue`, `encode` to its film encoder). Whichever executor, each finished
    cue is delivered here, atomically, and recorded in the manifest as it arrives. A cue that fails (bad range,
    unreadable media, engine error) is recorded and the batch goes on; cancelling (`should_cancel` or Ctrl-C) stops
    the renders in flight, records them and raises. An `ExecutorError` (a cluster gone) leaves every delivered cue
    recorded and is raised: a rerun renders the rest."""
    outdir = Path(outdir)
    options.validate()  # refuse a bad option (a loudness target out of range, ...) before any rendering
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeliveryError(f"cannot create output folder {outdir}: {e.strerror or e}") from e
    for stale in outdir.glob(".*.part"):  # temporary files of a batch that was killed mid-write
        stale.unlink(missing_ok=True)
    loaded = cue_list.timeline
    name = timeline_name(loaded)
    manifest = Manifest(outdir, str(loaded.path), order=[c.file_stem for c in cues])
    work_root = outdir / WORK_DIR_NAME
    events = on_cue or (lambda *a: None)
    outcomes: dict[str, CueOutcome] = {}
    index = {c.file_stem: i for i, c in enumerate(cues)}
    by_stem = {c.file_stem: c for c in cues}
    keys: dict[str, str] = {}
    tasks: list[CueTask] = []
    total = len(cues)
    for i, cue in enumerate(cues):
        key = keys[cue.file_stem] = cue_key(cue, options)
        prior = manifest.finished(cue, key, outdir)
        if prior is not None:
            outcomes[cue.file_stem] = CueOutcome(cue.name, cue.file_stem, "skipped", prior["wav"], prior["n_samples"],
                                                 "already rendered with these settings",
                                                 prior.get("missing_picture", []), prior.get("loudness"))
            events("skip", cue, i, total, "already rendered")
            continue
        n_samples = cue_samples(cue, options.sample_rate)
        outcome = outcomes[cue.file_stem] = CueOutcome(cue.name, cue.file_stem, "pending", n_samples=n_samples)
        d = cue.duration.to_seconds()
        if not MIN_CUE_S <= d <= MAX_CUE_S:
            outcome.status = "failed"
            outcome.message = (f"cue {cue.name!r}: {d:.3f} s is outside what the engine renders "
                               f"({MIN_CUE_S:g}..{MAX_CUE_S:g} s)")
            manifest.record(cue.file_stem, {"status": "failed", "key": key, "name": cue.name, "error": outcome.message})
            events("fail", cue, i, total, outcome.message)
            continue
        work = work_root / cue.file_stem
        work.mkdir(parents=True, exist_ok=True)
        tasks.append(cue_task(cue, options, work, name))

    if executor is None:
        from ..executors.local import LocalExecutor

        executor = LocalExecutor(render, encode)
    started: set[str] = set()
    cancelled = False
    try:
        for ev in executor.run(tasks, should_cancel=should_cancel):
            cue, i, key, outcome = by_stem[ev.task_id], index[ev.task_id], keys[ev.task_id], outcomes[ev.task_id]
            if ev.kind == "start":
                started.add(ev.task_id)
                events("start", cue, i, total, ev.worker)
            elif ev.kind == "progress":
                if progress is not None:
                    progress(ev.stage, ev.fraction, ev.message)
            elif ev.kind == "retry":
                events("retry", cue, i, total, ev.message)
            elif ev.kind == "done":
                _delivered(cue, i, total, key, ev, outcome, outdir, options, manifest, events)
            elif ev.kind == "failed":
                outcome.status, outcome.message = "failed", ev.message
                manifest.record(cue.file_stem, {"status": "failed", "key": key, "name": cue.name,
                                                "error": ev.message})
                events("fail", cue, i, total, ev.message)
            elif ev.kind == "cancelled":
                cancelled = True
                outcome.message = "cancelled"
                manifest.record(cue.file_stem, {"status": "cancelled", "key": key, "name": cue.name})
            if ev.terminal:
                started.discard(ev.task_id)
    except (KeyboardInterrupt, RenderCancelled):
        for stem in started:  # the renders in flight were stopped by the executor as the loop unwound
            outcomes[stem].message = "cancelled"
            manifest.record(stem, {"status": "cancelled", "key": keys[stem], "name": by_stem[stem].name})
        raise
    if cancelled:
        raise RenderCancelled("the batch was cancelled; a rerun renders the cues not done")
    shutil.rmtree(work_root, ignore_errors=True)

    ordered = [outcomes[c.file_stem] for c in cues]
    placements = [Placement(c, outdir / o.wav, o.n_samples, options.sample_rate)
                  for c, o in zip(cues, ordered) if o.status in ("done", "skipped") and o.wav]
    timelines, notes = write_scored_timeline(loaded, placements, outdir) if placements else ([], [])
    return BatchResult(outdir, ordered, timelines, notes)


def _delivered(cue: CueRegion, i: int, total: int, key: str, ev: TaskEvent, outcome: CueOutcome, outdir: Path,
               options: ScoreOptions, manifest: Manifest, events: CueEvent) -> None:
    """A finished render becomes the cue's delivery files and its manifest entry (or a failure of that cue)."""
    out = ev.output
    assert out is not None
    t0 = time.perf_counter()
    try:
        wav, loud = _deliver(cue, out.result, outdir, outcome.n_samples, options, out.missing_picture)
    except FilmscoreError as e:
        outcome.status, outcome.message = "failed", str(e)
        manifest.record(cue.file_stem, {"status": "failed", "key": key, "name": cue.name, "error": str(e)})
        events("fail", cue, i, total, str(e))
        return
    shutil.rmtree(Path(out.result.output).parent, ignore_errors=True)
    deliver_s = time.perf_counter() - t0
    worker_s = float(out.timings_s.get("picture", 0.0)) + float(out.timings_s.get("render", 0.0))
    outcome.status, outcome.wav, outcome.loudness = "done", wav.name, loud
    outcome.missing_picture = out.missing_picture
    outcome.seconds = worker_s + float(out.timings_s.get("transfer", 0.0)) + deliver_s
    t1 = time.perf_counter()
    # "run": facts of this run (who rendered it, how long each part took), not of the cue: a rerun elsewhere
    # delivers the same files with other run facts.
    run = {"worker": out.worker, "attempt": ev.attempt,
           "timings_s": {"picture": out.timings_s.get("picture", 0.0), "render": out.timings_s.get("render", 0.0),
                         "transfer": out.timings_s.get("transfer", 0.0), "deliver": deliver_s,
                         "worker_cpu": out.timings_s.get("cpu", 0.0)},
           "bytes_returned": out.bytes_returned}
    stems = {s: f"{cue.file_stem}.{s}.wav" for s in out.result.metadata.get("stems") or {}}
    outcome.stems = stems or None
    entry = {"status": "done", "key": key, "name": cue.name, "wav": wav.name, "n_samples": outcome.n_samples,
             "loudness": loud, "missing_picture": out.missing_picture, "seconds": outcome.seconds,
             "plan": cue_plan_entry(outdir, cue.file_stem), "stems": stems or None, "run": run}
    manifest.record(cue.file_stem, entry)
    outcome.timings_s = dict(run["timings_s"], journal=time.perf_counter() - t1)
    events("done", cue, i, total, wav.name)
