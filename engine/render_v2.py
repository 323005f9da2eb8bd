"""`render_cue_v2`: one request rendered by a v2 bundle (engine/bundle_v2.py): the stereo mix at OUT.wav and, with
`request.stems`, its stems beside it (OUT.lead.wav, OUT.accompaniment.wav, OUT.percussion.wav), plus v1's sidecars
(OUT.json, OUT.controls.npz, OUT.theme.mid).

`render.render_cue` hands a request here when its bundle's bundle.json says schema `filmscore.bundle/2`
(`bundle_manifest.schema_of`), so every front end (render, score, the bridge) renders a v2 bundle without knowing it is one.

Stems and mix: the pipeline makes the mix as the sum of the stereo stems (engine/stereo_v2.py); mastering measures
the mix and gives every stem the mix's gains, the limiter's per-sample gain included
(engine/audio/stem_mastering.py), so the delivered stems sum to the delivered mix (to float and 24-bit rounding).
All files of a cue have the same rate, length in samples and start, so they line up on a timeline from one point.

Controls, by source (v1's request fields, read as v1 reads them):
- a plan (`request.plan`): all four control groups and the mood (`pipeline_v2.controls_from_plan`);
- a MIDI theme or a maestro's theme: fitted to the cue and its hit points as v1 fits it
  (`render.controls_of_request`), its melody with its written register (`pipeline_v2.controls_from_fitted`), its
  dynamics mixed with the picture's; the maestro is also the style condition when the model knows that master;
- nothing: the picture's dynamics alone (none without a picture).
A reference recording gives v1 only a pitch class per frame, no register; v2 refuses it (`RequestError`) rather
than guess an octave. Guidance: `pipeline_v2.GuidanceV2`'s scales per group, the picture's from
`request.picture_guidance`; `request.control_guidance` and `control_strength` are v1's single control scale and
are not used (the cue's JSON lists the scales used, `pipeline.guidance`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import sidecar
from .bundle_manifest import BUNDLE_SCHEMA_V2, bundle_dir, read_manifest
from .errors import FilmscoreError, RequestError
from .preflight import CheckedRequest, check_request, check_stems, sidecar_paths
from .request import CancelFn, ProgressFn, RenderRequest, RenderResult, cue_n_samples

_LOADED: dict[tuple[str, float], object] = {}


def stem_paths(output: str | Path, stems) -> dict[str, Path]:
    """Where the stems of a cue rendered to `output` go: OUT.<stem>.wav beside OUT.wav."""
    base = Path(output).with_suffix("")
    return {s: Path(f"{base}.{s}.wav") for s in stems}


def request_stem_paths(request: RenderRequest) -> dict[str, Path]:
    """The stem files a request will write (none unless `request.stems`), named by its bundle's stems, read from
    bundle.json alone: front ends check them against the outputs rule before the model loads."""
    if not request.stems:
        return {}
    check_stems(request)  # a v1 bundle has none: refused here as everywhere
    return stem_paths(request.output, read_manifest(bundle_dir(request.bundle), BUNDLE_SCHEMA_V2)["stems"])


def import_runtime_v2() -> float:
    """Import what a v2 render runs on (torch, diffusers' schedulers and model classes, the v2 pipeline): the first
    part of the load stage. Returns the seconds it took (0 once imported, as in a bridge worker)."""
    t0 = time.perf_counter()
    from . import bundle_v2, cue_inputs, pipeline_v2, threads  # noqa: F401 - torch, diffusers, the models, controls
    from .audio import stem_mastering  # noqa: F401 - scipy's filters

    return time.perf_counter() - t0


def load_bundle_v2_cached(path: str | Path | None):
    """Per-process cache of a loaded v2 bundle and its pipeline (bridge workers render many cues with one bundle);
    reloads when bundle.json changes."""
    from .bundle_v2 import load_bundle_v2
    from .pipeline_v2 import FilmScorePipelineV2

    p = bundle_dir(path)
    read_manifest(p, BUNDLE_SCHEMA_V2)  # a clear error for a v1 bundle or a bad file, before the weights
    key = (str(p.resolve()), (p / "bundle.json").stat().st_mtime)
    if key not in _LOADED:
        _LOADED.clear()
        bundle = load_bundle_v2(p)
        _LOADED[key] = (bundle, FilmScorePipelineV2(bundle))
    return _LOADED[key]


def _controls(request: RenderRequest, n_frames: int, film, known_masters) -> tuple:
    """(ControlsV2, mood or None, master or None, fitted theme or None, warnings) of `request` (module doc)."""
    from .models.controls_v2 import ControlsV2
    from .pipeline_v2 import controls_from_fitted, controls_from_plan

    warnings: list[str] = []
    master = request.maestro
    if master is not None and master not in known_masters:
        warnings.append(f"maestro {master!r}: this bundle's style condition knows {', '.join(known_masters)}; "
                        "its theme is followed without a style condition")
        master = None
    if request.plan is not None:
        from .plan.plan import CuePlan

        plan = CuePlan.load(request.plan)
        controls, mood = controls_from_plan(plan, n_frames)
        style = plan.choices.get("style")  # the master whose statistics made the plan (engine/plan/compose.py)
        if master is None and style in known_masters:
            master = style
        return controls, mood, master, None, warnings
    if request.reference_audio is not None:
        raise RequestError(f"{request.reference_audio}: a v2 bundle follows a melody in its written register; a "
                           "reference recording gives only pitch classes. Give a MIDI theme, a maestro or a plan")
    from .cue_inputs import controls_of_request

    v1, fitted = controls_of_request(request, n_frames, film)
    if fitted is None and not v1.dynamics_present:
        return ControlsV2(n_frames), None, master, None, warnings
    return controls_from_fitted(fitted, v1), None, master, fitted, warnings


def render_cue_v2(request: RenderRequest, progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                  checked: CheckedRequest | None = None, preview=None, started: float | None = None) -> RenderResult:
    """Render `request` with its v2 bundle (module docstring); the same contract as `render.render_cue` (exact
    sample count at `request.sample_rate`, atomic files, `RenderCancelled`), the WAVs stereo. `preview`
    (`render.Preview`): first a few-step draft of the mix (no stems) at `preview.path`, as v1 drafts; `started`:
    the `time.perf_counter()` its `ready_after_s` counts from (default: now)."""
    started = time.perf_counter() if started is None else started
    if checked is None:
        checked = check_request(request)
    report = progress or (lambda stage, frac, msg: None)
    timings: dict[str, float] = {}
    out = Path(request.output)
    t0 = time.perf_counter()
    report("load", 0.0, "loading the engine and the model")
    timings["import"] = import_runtime_v2()  # its own entry, as v1's: a fresh process's whole start is accounted
    from .atomic import write_atomically
    from .audio.delivery import origination_time, write_wav
    from .audio.stem_mastering import master_stems
    from .cue_inputs import picture_of_request
    from .film.features import layout_has_faces
    from .pipeline_v2 import GuidanceV2
    from .threads import model_threads, reproducibility

    bundle, pipe = load_bundle_v2_cached(request.bundle)
    timings["load"] = time.perf_counter() - t0 - timings["import"]
    if request.backend not in ("auto", "torch"):
        raise RequestError(f"backend {request.backend!r}: a v2 bundle renders with torch only (no ONNX export of "
                           "its graphs yet)")
    if request.vocoder == "griffin-lim":
        raise RequestError("a v2 bundle renders through its network vocoder; --vocoder griffin-lim is v1's")

    t0 = time.perf_counter()
    want = pipe.film_head.config.feature_layout if pipe.film_head is not None else None
    film = picture_of_request(request, report, faces=bool(want) and layout_has_faces(want))
    if film is not None and want and film.layout != want:
        try:
            film = film.as_layout(want)
        except FilmscoreError:
            raise RequestError(f"bundle {bundle.path.name}: its film head was trained on feature layout {want!r}, "
                               f"the film encoder gives {film.layout!r}") from None
    timings["picture"] = time.perf_counter() - t0
    duration = request.duration_s if request.duration_s is not None else film.duration_s
    sr_model = bundle.mel_config.sample_rate
    n_model = cue_n_samples(duration, sr_model)
    n_out = cue_n_samples(duration, request.sample_rate)
    n_frames = math.ceil(n_model / bundle.mel_config.hop_length)

    t0 = time.perf_counter()
    known = tuple(pipe.global_cond.config.masters)
    controls, mood, master, fitted, warnings = _controls(request, n_frames, film, known)
    timings["controls"] = time.perf_counter() - t0
    report("controls", 1.0, "controls ready")

    guidance = replace(GuidanceV2(), picture=request.picture_guidance)
    run = dict(n_samples=n_model, controls=controls, mood=mood, master=master, film=film, seed=request.seed,
               scheduler=request.scheduler, guidance=guidance, should_cancel=should_cancel)
    draft = None
    if preview is not None:  # the same seed and controls over fewer steps of the same sampler (render.Preview)
        t0 = time.perf_counter()
        steps = preview.steps_for(request.steps)
        d = pipe(**run, steps=steps, waves_to=Path(preview.path).parent,
                 progress=lambda stage, frac, msg: report("preview", 0.9 * frac if stage == "denoise" else 0.9, msg))
        with model_threads() as pool, master_stems(d.stereo, (), sr_model, request.sample_rate, n_out,
                                                    request.target_lufs, folder=Path(preview.path).parent,
                                                    workers=pool.map) as dm:
            write_wav(Path(preview.path), dm.mix, request.sample_rate, request.delivery, dm.report)
        dloud = dm.report
        ready = time.perf_counter() - started
        report("preview", 1.0, f"draft ({steps} steps) wrote {preview.path}")
        if preview.on_ready is not None:
            preview.on_ready(Path(preview.path), ready)
        draft = {"path": str(preview.path), "steps": steps, "ready_after_s": round(ready, 3),
                 "integrated_lufs": dloud["integrated_lufs"]}
        timings["preview"] = time.perf_counter() - t0
    result = pipe(**run, steps=request.steps, progress=report, waves_to=out.parent)  # the stems' waves on disk
    timings.update(result.timings_s)

    t0 = time.perf_counter()
    paths = sidecar_paths(out)
    written = stem_paths(out, bundle.stems) if request.stems else {}
    # only the stems that are written are placed and mastered: a stem follows the mix's gains and never changes the
    # mix, so the mix is the same with or without --stems (stem_mastering.py: streamed, memory flat in length)
    with model_threads() as pool, master_stems(result.stereo, tuple(written), sr_model, request.sample_rate, n_out,
                                                request.target_lufs, folder=out.parent, workers=pool.map) as mastered:
        # every file in the request's delivery format (plain WAV or BWF) with one time reference and origination
        # time; a stem's bext leaves the loudness fields unset (the report is the mix's, whose gains it was given)
        when = origination_time()

        def write_stem(item: tuple[str, Path]) -> None:
            name, p = item
            d = request.delivery
            write_wav(p, mastered.stems[name], request.sample_rate,
                      replace(d, description=f"{d.description} ({name} stem)".strip()), None, when)

        # the stems first (at once, a file a unit), the mix last: the mix's appearance means the cue is complete
        pool.map(write_stem, written.items())
        write_wav(out, mastered.mix, request.sample_rate, request.delivery, mastered.report, when)
    loudness = mastered.report
    timings["stereo"] = mastered.placed_s  # stereo placement, streamed with the delivery: its own entry

    def write_controls(p: Path) -> None:
        arrays = {k: v for k, v in vars(controls).items() if isinstance(v, np.ndarray)}
        with open(p, "wb") as f:
            np.savez_compressed(f, n_frames=controls.n_frames, frame_rate=controls.frame_rate, **arrays)

    write_atomically(paths["controls"], write_controls)
    theme_path = None
    if fitted is not None:
        write_atomically(paths["theme"], lambda p: fitted.write_midi(p))
        theme_path = str(paths["theme"])
    else:
        paths["theme"].unlink(missing_ok=True)
    from .cue_inputs import theme_summary

    backend = {"name": "torch", "reason": "v2 bundles render with torch"}
    metadata = {
        sidecar.KEY: sidecar.CUE.tag, "request": request.to_json(), "duration_s": duration, "n_samples": n_out,
        "sample_rate": request.sample_rate, "channels": 2, "seed": request.seed,
        "bundle": {"name": bundle.manifest.get("name"), "version": bundle.manifest.get("version"),
                   "hash": bundle.hash, "path": str(bundle.path), "schema": bundle.manifest.get("schema")},
        "controls": {"file": str(paths["controls"]), "theme_midi": theme_path, "format": "ControlsV2 arrays",
                     **{g: bool(v) for g, v in controls.present.items()}},
        "stems": {name: str(p) for name, p in written.items()} or None,
        "theme": theme_summary(request, fitted), "warnings": warnings,
        "picture": None if film is None else {"layout": film.layout, "cuts_s": list(film.cuts_s),
                                              "duration_s": film.duration_s},
        "pipeline": result.info, "backend": backend, "loudness": loudness,
        "reproducibility": reproducibility(backend), "preview": draft,
    }
    timings["deliver"] = time.perf_counter() - t0 - timings["stereo"]
    metadata["timings_s"] = timings
    write_atomically(paths["metadata"], lambda p: p.write_text(json.dumps(metadata, indent=2, default=str) + "\n"))
    report("deliver", 1.0, f"wrote {out}" + (f" and {len(written)} stems" if written else ""))
    return RenderResult(out, duration, n_out, request.sample_rate, request.seed, paths["controls"], metadata, timings)
