"""`render_cue`: one request -> one delivered cue (WAV + controls + metadata). Every front end calls this.

Steps: bundle -> picture (film encoder) -> local controls (MIDI / reference / maestro, fitted to the cue and its hit
points; dynamics from the picture when none is given) -> pipeline -> mastering -> atomic files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from .bundle import load_bundle_cached
from .constants import MODEL_SAMPLE_RATE
from .controls.types import Controls
from .cue_controls import with_picture_dynamics
from .errors import FilmscoreError, RequestError
from .film.features import FilmFeatures, layout_has_faces
from .pipeline import FilmScorePipeline
from .request import CancelFn, ProgressFn, RenderRequest, RenderResult, cue_n_samples
from .threads import reproducibility

logger = logging.getLogger(__name__)


def sidecar_paths(output: Path) -> dict[str, Path]:
    """Files written beside OUT.wav: OUT.controls.npz, OUT.json (metadata), OUT.theme.mid (fitted theme)."""
    stem = output.with_suffix("")
    return {"controls": Path(f"{stem}.controls.npz"), "metadata": Path(f"{stem}.json"),
            "theme": Path(f"{stem}.theme.mid")}


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same directory, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise FilmscoreError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        tmp.unlink(missing_ok=True)


def build_pipeline(bundle_path: Path | None) -> tuple[FilmScorePipeline, object]:
    bundle = load_bundle_cached(bundle_path)
    m = bundle.models
    pipe = FilmScorePipeline(m["vae"], m["unet"], m.get("controlnet"), m.get("film_head"), m.get("vocoder"),
                             bundle.mel_config, bundle.noise_schedule)
    return pipe, bundle


def _picture(request: RenderRequest, report: ProgressFn, faces: bool) -> FilmFeatures | None:
    if request.film_features is not None:  # an edited region, encoded clip by clip by the caller
        return request.film_features
    if request.video is None:
        return None
    from .film import encode_video

    return encode_video(request.video, request.start_s, request.duration_s, faces=faces,
                        progress=lambda frac, msg="": report("picture", frac, msg))


def _controls(request: RenderRequest, n_frames: int, film: FilmFeatures | None) -> tuple[Controls, object | None]:
    from .controls.request import controls_for_request

    hits = request.hits_s or (tuple(film.cuts_s) if film is not None else ())
    controls, fitted = controls_for_request(n_frames=n_frames, midi=request.midi,
                                            reference_audio=request.reference_audio, maestro=request.maestro,
                                            theme=request.theme, track=request.midi_track,
                                            channel=request.midi_channel, hits_s=hits, seed=request.seed)
    return with_picture_dynamics(controls, film, request.picture_dynamics), fitted


def render_cue(request: RenderRequest, progress: ProgressFn | None = None,
               should_cancel: CancelFn | None = None) -> RenderResult:
    """Render `request` to `request.output` (WAV, PCM 24-bit, `request.sample_rate`, exactly
    round(duration * rate) samples) and its sidecars. Raises FilmscoreError subclasses for bad input and
    `RenderCancelled` when `should_cancel()` turns true."""
    request.validate()
    request.check_files()
    report = progress or (lambda stage, frac, msg: None)
    timings: dict[str, float] = {}
    out = Path(request.output)
    if out.suffix.lower() != ".wav":
        raise RequestError(f"output {out}: must end in .wav")
    if not out.parent.is_dir():
        raise RequestError(f"output folder {out.parent} does not exist")

    t0 = time.perf_counter()
    pipe, bundle = build_pipeline(request.bundle)
    from .backends import load_backend

    backend = load_backend(request.backend, bundle)  # "auto": the fastest measured here; info says why
    backend.attach(pipe)
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    want = pipe.film_head.config.feature_layout if pipe.film_head is not None else None
    # the face branch costs ~2 s CPU per minute of picture: run it only for a bundle that reads its block
    film = _picture(request, report, faces=bool(want) and layout_has_faces(want))
    timings["picture"] = time.perf_counter() - t0
    if film is not None and want and film.layout != want:
        try:  # the same encoding with or without the face block is the same features seen differently
            film = film.as_layout(want)
        except FilmscoreError:
            raise RequestError(f"bundle {bundle.name}: its film head was trained on feature layout {want!r}, "
                               f"the film encoder gives {film.layout!r}") from None
    duration = request.duration_s if request.duration_s is not None else film.duration_s
    if film is not None and request.duration_s is not None and request.duration_s > film.duration_s + 0.05:
        raise RequestError(f"{request.video}: range {request.start_s:.2f}+{request.duration_s:.2f} s runs past the "
                           f"end of the video ({request.start_s + film.duration_s:.2f} s)")
    n_model = cue_n_samples(duration, MODEL_SAMPLE_RATE)
    n_out = cue_n_samples(duration, request.sample_rate)
    n_frames = math.ceil(n_model / pipe.mel_config.hop_length)

    t0 = time.perf_counter()
    controls, fitted = _controls(request, n_frames, film)
    timings["controls"] = time.perf_counter() - t0
    report("controls", 1.0, "controls ready")

    result = pipe(n_samples=n_model, film=film, controls=controls, seed=request.seed, steps=request.steps,
                  scheduler=request.scheduler, picture_guidance=request.picture_guidance,
                  control_guidance=request.control_guidance, control_strength=request.control_strength,
                  vocoder=request.vocoder, progress=report, should_cancel=should_cancel)
    timings.update(result.timings_s)

    t0 = time.perf_counter()
    from .audio.mastering import master

    audio, loudness = master(result.wave, MODEL_SAMPLE_RATE, request.sample_rate, n_out, request.target_lufs)
    paths = sidecar_paths(out)
    import soundfile as sf

    _atomic_write(out, lambda p: sf.write(str(p), audio, request.sample_rate, subtype="PCM_24", format="WAV"))
    _atomic_write(paths["controls"], lambda p: controls.save_npz(open(p, "wb")))
    theme_path = None
    if fitted is not None:
        _atomic_write(paths["theme"], lambda p: fitted.write_midi(p))
        theme_path = str(paths["theme"])
    metadata = {
        "filmscore": "cue/1", "request": request.to_json(), "duration_s": duration, "n_samples": n_out,
        "sample_rate": request.sample_rate, "seed": request.seed,
        "bundle": {"name": bundle.name, "version": bundle.manifest.get("version"), "hash": bundle.hash,
                   "path": str(bundle.path)},
        "controls": {"file": str(paths["controls"]), "melody": controls.melody_present,
                     "dynamics": controls.dynamics_present, "theme_midi": theme_path},
        "picture": None if film is None else {"layout": film.layout, "cuts_s": list(film.cuts_s),
                                              "duration_s": film.duration_s},
        "pipeline": result.info, "backend": backend.summary(), "loudness": loudness,
        "reproducibility": reproducibility(backend.summary()),  # not the thread count: engine/threads.py
    }
    timings["deliver"] = time.perf_counter() - t0
    metadata["timings_s"] = timings
    _atomic_write(paths["metadata"], lambda p: p.write_text(json.dumps(metadata, indent=2, default=str) + "\n"))
    report("deliver", 1.0, f"wrote {out}")
    return RenderResult(out, duration, n_out, request.sample_rate, request.seed, paths["controls"], metadata, timings)

