"""`render_cue`: one request -> one delivered cue (WAV + controls + metadata). Every front end calls this.

Steps: up-front checks (`preflight`: inputs read, output writable, before any heavy work) -> bundle -> picture (film
encoder) -> local controls (MIDI / reference / maestro, fitted to the cue and its hit points; dynamics from the
picture when none is given) -> pipeline -> mastering -> atomic files.

A picture read "to the end" (no duration) that stops short of what its container claims (a truncated file whose
index survived) is rendered over the picture that decodes, with a warning in the result's metadata ("warnings")
that front ends print; a range of given length that cannot be decoded to its end is refused up front.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import sidecar
from .atomic import write_atomically
from .audio.delivery import deliver, write_wav  # noqa: F401 - write_wav: render_v2 writes its stems with it
from .constants import MIN_CUE_S, MODEL_SAMPLE_RATE
from .controls.types import Controls
from .errors import FilmscoreError, RequestError
from .film.features import layout_has_faces
from .preflight import CheckedRequest, check_request, sidecar_paths
from .request import CancelFn, ProgressFn, RenderRequest, RenderResult, cue_n_samples
from .cue_inputs import controls_of_request, picture_of_request, theme_summary  # noqa: F401 (regenerate's)

# The model runtime (torch, diffusers, the bundle's modules) is imported by `import_runtime`, inside the render's
# first stage, not with this module: `filmscore render` checks its request and shows its first stage before it pays
# for it (several seconds on the 2-core machine; bench/results/startup.json), and a refused request never does.
if TYPE_CHECKING:
    from .pipeline import FilmScorePipeline

logger = logging.getLogger(__name__)


def import_runtime() -> float:
    """Import what a v1 render runs on (torch, diffusers' schedulers and model classes, scipy's filters): the first
    part of the render's load stage. Returns the seconds it took (0 once imported, as in a bridge worker)."""
    t0 = time.perf_counter()
    from . import cue_controls, pipeline, threads  # noqa: F401 - pipeline brings torch, diffusers and the models
    from .backends import select  # noqa: F401

    return time.perf_counter() - t0


def build_pipeline(bundle_path: Path | None) -> tuple[FilmScorePipeline, object]:
    from .bundle import load_bundle_cached
    from .pipeline import FilmScorePipeline

    bundle = load_bundle_cached(bundle_path)
    m = bundle.models
    pipe = FilmScorePipeline(m["vae"], m["unet"], m.get("controlnet"), m.get("film_head"), m.get("vocoder"),
                             bundle.mel_config, bundle.noise_schedule)
    return pipe, bundle


PREVIEW_STEPS = 4  # a draft's denoising steps: the whole cue, same seed and plan, a fraction of the full render


@dataclass(frozen=True)
class Preview:
    """A draft of the cue delivered before the full render: the same request, seed, picture and controls, so the
    same initial noise integrated over fewer steps of the same deterministic sampler (DDIM, DPM-Solver++ and Euler
    here are ODE solvers): the full render refines the draft rather than making another piece. `on_ready(path,
    seconds)` is called once the draft's WAV exists, `seconds` after `render_cue` was entered."""

    path: Path
    steps: int = PREVIEW_STEPS
    on_ready: Callable[[Path, float], None] | None = None

    def steps_for(self, request_steps: int) -> int:
        """The draft's steps for a render of `request_steps`: never more than the full render takes."""
        return max(1, min(self.steps, request_steps))


def _deliver_preview(preview: Preview, pipe: FilmScorePipeline, run: dict, request: RenderRequest, n_out: int,
                     started: float, report: ProgressFn, should_cancel: CancelFn | None) -> dict:
    """Render and write the draft (delivered as the cue is: same format and time reference); its metadata for the
    cue's JSON."""
    from .threads import model_threads

    steps = preview.steps_for(request.steps)
    draft = pipe(**run, steps=steps, should_cancel=should_cancel,
                 progress=lambda stage, frac, msg: report("preview", 0.9 * frac if stage == "denoise" else 0.9, msg))
    with model_threads() as pool:  # the delivery's filters on the model stages' workers (engine/threads.py)
        loudness = deliver(draft.wave, MODEL_SAMPLE_RATE, Path(preview.path), n_out, request.sample_rate,
                           request.target_lufs, request.delivery, pool.map)
    ready = time.perf_counter() - started
    report("preview", 1.0, f"draft ({steps} steps) wrote {preview.path}")
    if preview.on_ready is not None:
        preview.on_ready(Path(preview.path), ready)
    return {"path": str(preview.path), "steps": steps, "ready_after_s": round(ready, 3),
            "integrated_lufs": loudness["integrated_lufs"]}


def take_path(output: Path, take: int) -> Path:
    """cue.wav -> cue.take1.wav: where take `take` (1-based) of `render_cue(..., variations=N)` is written."""
    output = Path(output)
    return output.with_name(f"{output.stem}.take{take}{output.suffix}")


def render_cue(request: RenderRequest, progress: ProgressFn | None = None,
               should_cancel: CancelFn | None = None, checked: CheckedRequest | None = None,
               preview: Preview | None = None, variations: int = 1) -> RenderResult:
    """Render `request` to `request.output` (WAV, PCM 24-bit, `request.sample_rate`, exactly
    round(duration * rate) samples) and its sidecars. Raises FilmscoreError subclasses for bad input (before any
    heavy work: `preflight.check_request`, skipped when the caller passes what it returned as `checked`) and
    `RenderCancelled` when `should_cancel()` turns true. Replaces an existing output: whether that is allowed is the
    front end's rule (CLI --overwrite, the bridge's overwrite flag). With `preview`, a few-step draft of the whole cue
    is written to `preview.path` first (`Preview`).

    With `variations` N > 1: N takes of the request, seeds `seed`, `seed + 1`, ..., denoised together (every step's
    model calls of all takes in one batch on the pool, each take's calls those of a render of it alone) and written
    to `take_path(output, k)` with their own JSON (the request with that take's seed and path, and `variations`):
    take k is re-rendered alone, bit for bit, by its JSON's request. Returns take 1's result; its metadata's
    `variations` lists every take."""
    if not 1 <= variations <= 16:
        raise RequestError(f"variations must be 1..16, got {variations}")
    if variations > 1 and preview is not None:
        raise RequestError("a preview drafts one take: give --preview or --variations, not both")
    started = time.perf_counter()
    if checked is None:
        checked = check_request(request)
    if request.plan is None and request.plan_given:  # plan overrides: make the plan (OUT.plan.json), render it
        from .plan.spec import PlanSpec, plan_path, plan_request

        request = plan_request(request, PlanSpec.of(request), plan_path(request.output), progress=progress)
        checked = check_request(request)
    from .bundle_manifest import BUNDLE_SCHEMA_V2, schema_of
    from .render_v2 import render_cue_v2

    if schema_of(request.bundle) == BUNDLE_SCHEMA_V2:  # the bundle's schema picks the engine, not the caller
        if variations > 1:
            raise RequestError("a v2 bundle renders one take at a time (variations are not built for v2 yet)")
        return render_cue_v2(request, progress, should_cancel, checked, preview, started)
    report = progress or (lambda stage, frac, msg: None)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    out = Path(request.output)

    t0 = time.perf_counter()
    report("load", 0.0, "loading the engine and the model")
    import_s = import_runtime()
    pipe, bundle = build_pipeline(request.bundle)
    from .backends import load_backend

    backend = load_backend(request.backend, bundle)  # "auto": the fastest measured here; info says why
    backend.attach(pipe)
    # the runtime's import is its own entry, so that the stages account for a fresh process's whole start
    timings["import"] = import_s
    timings["load"] = time.perf_counter() - t0 - import_s

    t0 = time.perf_counter()
    want = pipe.film_head.config.feature_layout if pipe.film_head is not None else None
    # the face branch costs ~2 s CPU per minute of picture: run it only for a bundle that reads its block
    film = picture_of_request(request, report, faces=bool(want) and layout_has_faces(want))
    timings["picture"] = time.perf_counter() - t0
    if film is not None and want and film.layout != want:
        try:  # the same encoding with or without the face block is the same features seen differently
            film = film.as_layout(want)
        except FilmscoreError:
            raise RequestError(f"bundle {bundle.name}: its film head was trained on feature layout {want!r}, "
                               f"the film encoder gives {film.layout!r}") from None
    duration = request.duration_s if request.duration_s is not None else film.duration_s
    if request.duration_s is None and film is not None:
        if checked.video is not None:
            from .film.decode import picture_shortfall

            short = picture_shortfall(checked.video, request.start_s, film.duration_s)
            if short is not None:
                logger.info("%s", short)
                warnings.append(short)
        if film.duration_s < MIN_CUE_S:  # the rule for a given --duration holds for the picture's length too
            raise RequestError(f"{request.video or 'picture'}: {film.duration_s:.2f} s of picture decode; a cue is at "
                               f"least {MIN_CUE_S:g} s")
    if film is not None and request.duration_s is not None and request.duration_s > film.duration_s + 0.05:
        raise RequestError(f"{request.video}: range {request.start_s:.2f}+{request.duration_s:.2f} s runs past the "
                           f"end of the video ({request.start_s + film.duration_s:.2f} s)")
    n_model = cue_n_samples(duration, MODEL_SAMPLE_RATE)
    n_out = cue_n_samples(duration, request.sample_rate)
    n_frames = math.ceil(n_model / pipe.mel_config.hop_length)

    t0 = time.perf_counter()
    from dataclasses import replace

    # one request per take: its seed (which may draw the theme) and its file; take 1 of one is the request itself
    takes = [request] if variations == 1 else [
        replace(request, seed=request.seed + k, output=take_path(out, k + 1)) for k in range(variations)]
    fitted_controls = [controls_of_request(r, n_frames, film) for r in takes]
    controls, fitted = fitted_controls[0]
    timings["controls"] = time.perf_counter() - t0
    report("controls", 1.0, "controls ready")

    run = dict(n_samples=n_model, film=film, controls=controls, seed=request.seed, scheduler=request.scheduler,
               picture_guidance=request.picture_guidance, control_guidance=request.control_guidance,
               control_strength=request.control_strength, vocoder=request.vocoder)
    draft = None
    if preview is not None:
        t0 = time.perf_counter()
        draft = _deliver_preview(preview, pipe, run, request, n_out, started, report, should_cancel)
        timings["preview"] = time.perf_counter() - t0
    if variations > 1:
        run.update(controls=[c for c, _ in fitted_controls], seeds=tuple(r.seed for r in takes))
    result = pipe(**run, steps=request.steps, progress=report, should_cancel=should_cancel)
    timings.update(result.timings_s)
    if variations == 1:
        return _deliver(request, result, controls, fitted, dict(
            timings=timings, film=film, duration=duration, n_out=n_out, bundle=bundle, backend=backend,
            warnings=warnings, draft=draft, variations=None), report)
    listing = {"of": variations, "seeds": [r.seed for r in takes], "takes": [str(r.output) for r in takes]}
    results = [_deliver(r, res, c, f, dict(timings=dict(timings), film=film, duration=duration, n_out=n_out,
                                           bundle=bundle, backend=backend, warnings=warnings, draft=None,
                                           variations={"take": k + 1, **listing}), report)
               for k, (r, res, (c, f)) in enumerate(zip(takes, result.takes, fitted_controls, strict=True))]
    return results[0]


def _deliver(request: RenderRequest, result, controls: Controls, fitted, ctx: dict, report: ProgressFn) -> RenderResult:
    """Master one take and write it with its sidecars; its RenderResult."""
    timings, film, duration, n_out = ctx["timings"], ctx["film"], ctx["duration"], ctx["n_out"]
    bundle, backend, warnings, draft = ctx["bundle"], ctx["backend"], ctx["warnings"], ctx["draft"]
    out = Path(request.output)
    t0 = time.perf_counter()
    from .threads import model_threads, reproducibility

    paths = sidecar_paths(out)
    # mastered and written once, in the request's delivery format (plain WAV or BWF): engine/audio/delivery.py
    with model_threads() as pool:
        loudness = deliver(result.wave, MODEL_SAMPLE_RATE, out, n_out, request.sample_rate, request.target_lufs,
                           request.delivery, pool.map)

    def write_controls(p: Path) -> None:
        with open(p, "wb") as f:  # closed here, so a full disk fails here and not at garbage collection
            controls.save_npz(f)

    write_atomically(paths["controls"], write_controls)
    theme_path = None
    if fitted is not None:
        write_atomically(paths["theme"], lambda p: fitted.write_midi(p))
        theme_path = str(paths["theme"])
    else:  # a replaced cue keeps no fitted theme of an earlier render beside it
        paths["theme"].unlink(missing_ok=True)
    metadata = {
        sidecar.KEY: sidecar.CUE.tag, "request": request.to_json(), "duration_s": duration, "n_samples": n_out,
        "sample_rate": request.sample_rate, "seed": request.seed,
        "bundle": {"name": bundle.name, "version": bundle.manifest.get("version"), "hash": bundle.hash,
                   "path": str(bundle.path)},
        "controls": {"file": str(paths["controls"]), "melody": controls.melody_present,
                     "dynamics": controls.dynamics_present, "theme_midi": theme_path},
        "theme": theme_summary(request, fitted), "warnings": warnings,
        "picture": None if film is None else {"layout": film.layout, "cuts_s": list(film.cuts_s),
                                              "duration_s": film.duration_s},
        "pipeline": result.info, "backend": backend.summary(), "loudness": loudness,
        "reproducibility": reproducibility(backend.summary()),  # not the thread count: engine/threads.py
        "preview": draft,
    }
    if ctx["variations"] is not None:
        metadata["variations"] = ctx["variations"]
    if getattr(result, "latents", None) is not None:  # kept so a range can be regenerated without a re-run
        from .latent import save_latent

        metadata["latent"] = save_latent(result.latents, paths["latent"], out)
    else:
        paths["latent"].unlink(missing_ok=True)
    timings["deliver"] = time.perf_counter() - t0
    metadata["timings_s"] = timings
    write_atomically(paths["metadata"], lambda p: p.write_text(json.dumps(metadata, indent=2, default=str) + "\n"))
    report("deliver", 1.0, f"wrote {out}")
    return RenderResult(out, duration, n_out, request.sample_rate, request.seed, paths["controls"], metadata, timings)

