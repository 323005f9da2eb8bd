"""Regenerate a range of a rendered cue: the same request, a new take between two times, the rest untouched.

The cue's JSON sidecar holds the request it was rendered from (plan, controls, picture, seed, bundle); that is what
makes this possible. Steps:

1. The original final latent. A cue written by `regenerate_cue` stores it beside itself (OUT.latent.npy, with the
   sha256 of the WAV it belongs to). Otherwise the original request is re-run (the pipeline is deterministic: the
   same request and seed give the same latent, engine/threads.py) and the re-run is *verified*: its delivered
   samples must equal the source WAV's exactly, or the regeneration is refused (another bundle, backend, CPU or
   library version made another cue; the JSON's `reproducibility` says which).
2. Inpainting in latent space (RePaint-style, `pipeline.Inpaint`): the cue is denoised with the new seed; at every
   step the latent outside the range is replaced by the original latent noised to that step, with a linear ramp of
   `LATENT_MARGIN_S` inside each end of the range where the two are blended. Windows wholly outside the range are
   not run (their frames are replaced anyway).
3. Splice at the delivery rate: the source WAV's samples outside the range (copied as integers: sample-identical),
   the new audio inside, joined by an equal-power crossfade of `CROSSFADE_S` that lies inside the range, where the
   new latent is still almost the original one. Mastering is not re-run: the new audio gets the original
   mastering's gain (least squares of the delivered cue on the re-run's resampled wave), and if its peak would
   pass the true-peak ceiling only the range is turned down (recorded as `range_gain_db`).

Times are seconds of the cue (0 = its first sample), not of the video.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import sidecar
from .bundle_manifest import sha256_file as _sha256
from .constants import LATENT_FRAME_RATE, MODEL_SAMPLE_RATE
from .errors import FilmscoreError, RequestError
from .preflight import sidecar_paths
from .latent import latent_path, pcm_sha256, save_latent, wav_pcm_sha256  # noqa: F401 (the latent sidecar's owner)
from .request import CancelFn, ProgressFn, RenderRequest, RenderResult, cue_n_samples

logger = logging.getLogger(__name__)

LATENT_MARGIN_S = 0.32  # the latent ramp at each join (8 latent frames at 25/s)
CROSSFADE_S = 0.05  # the equal-power audio crossfade at each join, inside the range
MIN_RANGE_S = 1.0  # two margins and something between them
PCM24 = 1 << 23
TRUE_PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBTP, as mastering (sample peak: a safe lower bound on true peak)


_PATH_FIELDS = ("output", "video", "midi", "reference_audio", "bundle", "plan")


def request_from_json(d: dict, source: Path, film_features=None) -> RenderRequest:
    """The `RenderRequest` a cue's JSON records (`RenderRequest.to_json`). A cue rendered from precomputed film
    features (a timeline region) has only their summary in its JSON: its picture must be given as `film_features`
    (the front end encodes the region again: bridge/timelines/region_picture.py), and must match that summary
    (layout, frames, duration); refused otherwise, naming `source`."""
    summary = d.get("film_features")
    if summary is not None and film_features is None:
        raise RequestError(f"{source}: rendered from a timeline region's picture (film features are not in the JSON); "
                           "regenerate it with `filmscore render --from` or the bridge, which encode the region its "
                           "JSON's `cue` records again")
    if summary is not None:
        got = {"layout": film_features.layout, "n_frames": film_features.n_frames,
               "duration_s": film_features.duration_s}
        if got["layout"] != summary.get("layout") or got["n_frames"] != summary.get("n_frames") or \
                abs(float(got["duration_s"]) - float(summary.get("duration_s", -1))) > 1e-6:
            raise RequestError(f"{source}: its timeline region's picture encoded again ({got}) is not the picture it "
                               f"was rendered from ({summary}): the media or the encoder changed")
    from dataclasses import fields

    names = {f.name for f in fields(RenderRequest)}
    kw = {k: v for k, v in d.items() if k in names and k != "film_features"}
    if summary is not None:
        kw["film_features"] = film_features
    for k in _PATH_FIELDS:
        if kw.get(k) is not None:
            kw[k] = Path(kw[k])
    kw["hits_s"] = tuple(kw.get("hits_s") or ())
    req = RenderRequest(**kw)
    req.validate()
    return req


@dataclass(frozen=True)
class Regeneration:
    """Regenerate `start_s`..`end_s` (cue seconds) of the cue at `source` into `output` with `seed` (None: the
    source's seed + 1, so that the range changes). `film`: for a cue rendered from a timeline region's picture
    (`filmscore score`), that picture's `FilmFeatures` encoded again by the front end; None otherwise."""

    source: Path
    output: Path
    start_s: float
    end_s: float
    seed: int | None = None
    film: object | None = None


def parse_range(text: str) -> tuple[float, float]:
    """"42.0:50.0" -> (42.0, 50.0); a RequestError naming the text otherwise."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise RequestError(f"--regenerate {text!r}: give START:END in seconds of the cue, e.g. 42.0:50.0") from None
    return a, b


def _read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """The WAV's samples as int32 (24-bit values, one column per channel) and its rate: what we copy unchanged."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.subtype != "PCM_24":
            raise RequestError(f"{path}: a {info.subtype} WAV; a filmscore cue is PCM_24")
        data, rate = sf.read(str(path), dtype="int32", always_2d=True)
    except (RuntimeError, OSError) as e:
        raise RequestError(f"{path}: cannot read ({e})") from None
    return data >> 8, rate  # int32 holds 24-bit samples shifted left by 8


def _to_pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) * PCM24), -PCM24, PCM24 - 1).astype(np.int32)


def _as_delivered(x: np.ndarray, rate: int) -> np.ndarray:
    """Float audio as `audio.delivery.write_wav` stores it: libsndfile's own float -> 24-bit conversion (through
    memory), read back like `_read_pcm`, so a re-run compares with the file bit for bit."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype="PCM_24", format="WAV")
    buf.seek(0)
    return sf.read(buf, dtype="int32", always_2d=True)[0] >> 8


def _write_pcm(path: Path, pcm: np.ndarray, rate: int, delivery, loudness: dict | None) -> None:
    """The spliced 24-bit samples, bit for bit, delivered as the source cue was (plain WAV or BWF: its request's
    `delivery`, the same writer as every render)."""
    from .audio.delivery import write_pcm24

    write_pcm24(path, pcm.astype(np.int32), rate, delivery, loudness)


def keep_mask(n_latent: int, start_s: float, end_s: float, margin_s: float = LATENT_MARGIN_S) -> torch.Tensor:
    """`(n_latent,)`: 1 outside [start, end), 0 inside but for a linear ramp of `margin_s` inside each end."""
    a = round(start_s * LATENT_FRAME_RATE)
    b = min(round(end_s * LATENT_FRAME_RATE), n_latent)
    m = max(1, round(margin_s * LATENT_FRAME_RATE))
    keep = torch.ones(n_latent)
    keep[a:b] = 0.0
    ramp = torch.linspace(1.0, 0.0, m + 2)[1:-1]
    if a > 0:
        keep[a:a + m] = torch.maximum(keep[a:a + m], ramp[:max(0, min(m, b - a))])
    if b < n_latent:
        keep[b - m:b] = torch.maximum(keep[b - m:b], ramp.flip(0)[m - min(m, b - a):])
    return keep


def splice(original: np.ndarray, new: np.ndarray, a: int, b: int, fade: int) -> np.ndarray:
    """`original` int PCM `(n, ch)` outside [a, b) unchanged, `new` float `(n,)` inside, joined by equal-power
    crossfades of `fade` samples lying inside [a, b) (none at a cue end)."""
    out = original.copy()
    n = original.shape[0]
    orig_f = original[a:b].astype(np.float64) / PCM24
    new_f = np.repeat(np.asarray(new[a:b], np.float64)[:, None], original.shape[1], axis=1)
    w = np.ones(b - a)  # the new audio's share
    phase = (np.arange(fade) + 0.5) / fade * (np.pi / 2)
    if a > 0:
        w[:fade] = np.sin(phase)
    if b < n:
        w[b - a - fade:] = np.minimum(w[b - a - fade:], np.cos(phase))
    g_new, g_old = w[:, None], np.sqrt(np.clip(1 - w ** 2, 0, 1))[:, None]
    out[a:b] = _to_pcm(g_new * new_f + g_old * orig_f)
    return out


def _prepared(req: RenderRequest, meta: dict, source: Path, duration_s: float, report: ProgressFn,
              should_cancel: CancelFn | None):
    """The pipeline (the bundle the cue's JSON names, checked by hash), its backend, and the keyword arguments that
    render `req` (picture in the pipeline's layout, controls) for `duration_s`."""
    from .backends import load_backend
    from .render import build_pipeline

    pipe, bundle = build_pipeline(req.bundle)
    if meta.get("bundle", {}).get("hash") not in (None, bundle.hash):
        raise RequestError(f"{source}: rendered with bundle {meta['bundle'].get('name')} ({meta['bundle']['hash'][:12]}), "
                           f"{bundle.path} is another ({bundle.hash[:12]})")
    backend = load_backend(req.backend, bundle)
    backend.attach(pipe)
    return pipe, backend, run_args(pipe, req, duration_s, report, should_cancel)


def run_args(pipe, req: RenderRequest, duration_s: float, report: ProgressFn, should_cancel: CancelFn | None) -> dict:
    """The pipeline's keyword arguments for `req` over `duration_s`: its picture in the pipeline's layout, its
    controls, its sampler settings (as `render_cue` calls the pipeline)."""
    from .film.features import layout_has_faces
    from .render import controls_of_request, picture_of_request

    want = pipe.film_head.config.feature_layout if pipe.film_head is not None else None
    film = picture_of_request(req, report, faces=bool(want) and layout_has_faces(want))
    if film is not None and want and film.layout != want:
        film = film.as_layout(want)
    n_model = cue_n_samples(duration_s, MODEL_SAMPLE_RATE)
    n_frames = math.ceil(n_model / pipe.mel_config.hop_length)
    controls, _ = controls_of_request(req, n_frames, film)
    run = dict(n_samples=n_model, film=film, controls=controls, scheduler=req.scheduler,
               picture_guidance=req.picture_guidance, control_guidance=req.control_guidance,
               control_strength=req.control_strength, vocoder=req.vocoder, steps=req.steps,
               should_cancel=should_cancel)
    return run


def original_latent(pipe, run: dict, meta: dict, source: Path, pcm: np.ndarray, rate: int, req: RenderRequest,
                    report: ProgressFn) -> tuple[torch.Tensor, str]:
    """The final latent of the cue at `source` (samples `pcm` at `rate`, JSON `meta`, request `req`, rendered by
    `pipe` with `run`): the stored one (OUT.latent.npy of a regenerated cue, for this very WAV), or its request run
    again and verified to give its samples bit for bit (`FilmscoreError` otherwise). Returns it and how it was
    obtained."""
    lat_file = latent_path(source)
    stored = meta.get("regenerated", {}).get("latent") if meta.get("regenerated") else None
    if stored is not None and lat_file.is_file() and stored.get("wav_sha256") == _sha256(source):
        return torch.from_numpy(np.load(lat_file)), "stored latent"
    stored = meta.get("latent")  # a rendered cue's, checked against the samples (its file's other chunks may change)
    if isinstance(stored, dict) and lat_file.is_file() and stored.get("pcm_sha256") == pcm_sha256(pcm):
        return torch.from_numpy(np.load(lat_file)), "stored latent"
    orig = pipe(**run, seed=int(meta["seed"]),
                progress=lambda s, f, m: report("original", 0.5 * f if s == "denoise" else 0.5, m))
    from .audio.mastering import master

    again, _ = master(orig.wave, MODEL_SAMPLE_RATE, rate, pcm.shape[0], req.target_lufs)
    again_pcm = _as_delivered(again, rate)
    if not np.array_equal(np.broadcast_to(again_pcm, pcm.shape), pcm):
        worst = int(np.abs(np.broadcast_to(again_pcm, pcm.shape).astype(np.int64) - pcm).max())
        raise FilmscoreError(f"{source}: re-running its request does not reproduce it (max difference {worst} "
                             f"LSB); the bundle, backend, CPU or library versions differ from its JSON's "
                             f"'reproducibility'")
    return orig.latents, "re-run, verified sample-identical"


def regenerate_cue(regen: Regeneration, progress: ProgressFn | None = None,
                   should_cancel: CancelFn | None = None) -> RenderResult:
    """Regenerate a range of a cue (module docstring). Writes `regen.output` (the WAV, PCM 24-bit, the source's
    length and rate), its JSON (the source's, with `regenerated` added), its controls and theme (copied) and
    OUT.latent.npy. Raises FilmscoreError subclasses naming what is at fault."""
    from .audio.io import resample
    from .pipeline import Inpaint
    from .render import write_atomically
    from .threads import reproducibility

    report = progress or (lambda stage, frac, msg: None)
    source, out = Path(regen.source), Path(regen.output)
    src_paths = sidecar_paths(source)
    if not source.is_file():
        raise RequestError(f"{source}: no such cue")
    if not src_paths["metadata"].is_file():
        raise RequestError(f"{src_paths['metadata']}: no such file (the cue's JSON holds the request to regenerate)")
    if out.resolve() == source.resolve():
        raise RequestError(f"{out}: give an output other than the source cue")
    meta = sidecar.load(sidecar.CUE, src_paths["metadata"])
    req = request_from_json(meta["request"], src_paths["metadata"], regen.film)
    duration = float(meta["duration_s"])
    if not (math.isfinite(regen.start_s) and math.isfinite(regen.end_s)) or \
            not 0 <= regen.start_s < regen.end_s <= duration + 1e-9:
        raise RequestError(f"range {regen.start_s}:{regen.end_s}: must lie within the cue (0..{duration:g} s)")
    if regen.end_s - regen.start_s < MIN_RANGE_S:
        raise RequestError(f"range {regen.start_s}:{regen.end_s}: at least {MIN_RANGE_S:g} s")
    seed = int(meta["seed"]) + 1 if regen.seed is None else int(regen.seed)
    if not 0 <= seed < 2 ** 63:
        raise RequestError(f"seed must be 0..2**63-1, got {seed}")
    pcm, rate = _read_pcm(source)
    if pcm.shape[0] != int(meta["n_samples"]) or rate != int(meta["sample_rate"]):
        raise RequestError(f"{source}: {pcm.shape[0]} samples at {rate} Hz, its JSON says {meta['n_samples']} at "
                           f"{meta['sample_rate']} Hz (the WAV was changed after rendering)")
    timings: dict[str, float] = {}
    import time

    t0 = time.perf_counter()
    pipe, backend, run = _prepared(req, meta, source, duration, report, should_cancel)
    timings["load"] = time.perf_counter() - t0

    # 1. the original latent, and the gain its mastering applied
    t0 = time.perf_counter()
    known, how = original_latent(pipe, run, meta, source, pcm, rate, req, report)
    timings["original"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_lat = known.shape[-1]
    keep = keep_mask(n_lat, regen.start_s, regen.end_s)
    new = pipe(**run, seed=seed, inpaint=Inpaint(known, keep),
               progress=lambda s, f, m: report("regenerate", f if s == "denoise" else 1.0, m))
    timings["regenerate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    delivered = pcm.astype(np.float64).mean(axis=1) / PCM24
    a, b = cue_n_samples(regen.start_s, rate), min(cue_n_samples(regen.end_s, rate), pcm.shape[0])
    new_out = resample(new.wave, MODEL_SAMPLE_RATE, rate)[:pcm.shape[0]]
    new_out = np.pad(new_out, (0, pcm.shape[0] - new_out.shape[0])).astype(np.float64)
    # the original mastering's gain: least squares of the delivered samples on the new resampled model wave outside
    # the range, where the new latent is the original one. A limited cue is not a pure gain; this is the gain that
    # best explains it, and the range is turned down if its peak would pass the ceiling.
    ctx = np.ones(pcm.shape[0], bool)
    ctx[a:b] = False
    den = float(np.dot(new_out[ctx], new_out[ctx]))
    gain = float(np.dot(delivered[ctx], new_out[ctx]) / den) if den > 0 else 1.0
    if not ctx.any() or den <= 0:  # the whole cue regenerated: the original's gain from its own re-run is unknown
        gain = float(np.sqrt(np.mean(delivered ** 2) / max(np.mean(new_out ** 2), 1e-20)))
    inside = new_out[a:b] * gain
    peak = float(np.abs(inside).max()) if inside.size else 0.0
    range_gain = min(1.0, TRUE_PEAK_CEILING / peak) if peak > 0 else 1.0
    new_out *= gain * range_gain
    fade = min(cue_n_samples(CROSSFADE_S, rate), (b - a) // 2)
    spliced = splice(pcm, new_out, a, b, fade)
    timings["splice"] = time.perf_counter() - t0

    paths = sidecar_paths(out)
    _write_pcm(out, spliced, rate, req.delivery, meta.get("loudness"))
    lat_out = latent_path(out)
    def write_latent(p: Path) -> None:
        with open(p, "wb") as f:  # closed here: a full disk fails here
            np.save(f, new.latents.numpy().astype(np.float32))

    write_atomically(lat_out, write_latent)
    for kind in ("controls", "theme"):
        if src_paths[kind].is_file():
            write_atomically(paths[kind], lambda p, s=src_paths[kind]: shutil.copyfile(s, p))
        else:
            paths[kind].unlink(missing_ok=True)
    outside_identical = bool(np.array_equal(spliced[:a], pcm[:a]) and np.array_equal(spliced[b:], pcm[b:]))
    metadata = dict(meta)
    metadata.pop("variations", None)  # a regenerated take is a cue of its own, not one of a set of takes
    metadata.update({
        sidecar.KEY: sidecar.CUE.tag, "backend": backend.summary(),
        "reproducibility": reproducibility(backend.summary()), "pipeline": new.info, "preview": None,
        "controls": {**meta.get("controls", {}), "file": str(paths["controls"]),
                     "theme_midi": str(paths["theme"]) if paths["theme"].is_file() else None},
        "regenerated": {
            "from": str(source), "from_seed": int(meta["seed"]), "seed": seed,
            "range_s": [regen.start_s, regen.end_s], "range_samples": [a, b],
            "latent_margin_s": LATENT_MARGIN_S, "crossfade_s": fade / rate, "original_latent": how,
            "guarantee": "sample-identical outside the range",
            "outside_identical": outside_identical, "mastering_gain": gain,
            "range_gain_db": 20 * math.log10(range_gain),
            "latent": {"file": str(lat_out), "wav_sha256": None},
        },
    })
    metadata["regenerated"]["latent"]["wav_sha256"] = _sha256(out)
    metadata["latent"] = {"file": str(lat_out), "pcm_sha256": pcm_sha256(spliced)}
    metadata["timings_s"] = timings
    write_atomically(paths["metadata"], lambda p: p.write_text(json.dumps(metadata, indent=2, default=str) + "\n"))
    report("deliver", 1.0, f"wrote {out}")
    return RenderResult(out, duration, pcm.shape[0], rate, seed, paths["controls"], metadata, timings)


# -- A cue following a new cut (conform, issue 20) ---------------------------------------------------------------


@dataclass(frozen=True)
class NewCut:
    """A cue conformed to a new edit (bridge/timelines/conform.py). `source`: the old cue (its JSON beside it);
    `film`: the old cue's region picture encoded again when it was scored from a timeline (else None); `request`: the
    request that renders the new cue as `filmscore score` would (its picture, hits, seed, exact length); `pieces`:
    (start, end, old_start) seconds of the new cue showing what the old cue showed from old_start; `ranges`: the
    seconds of the new cue that need new music."""

    source: Path
    film: object | None
    request: RenderRequest
    n_samples: int
    pieces: tuple[tuple[float, float, float], ...]
    ranges: tuple[tuple[float, float], ...]


def inpaint_new_cut(cut: NewCut, progress: ProgressFn | None = None,
                    should_cancel: CancelFn | None = None) -> tuple[np.ndarray, dict, torch.Tensor]:
    """The new cue's audio, inpainted: the old cue's final latent (stored, or its request re-run and verified as
    `regenerate_cue` does) laid out along the new cut (each piece's frames moved by its offset) is held fixed outside
    `ranges`, and the new cue's request (its new picture and controls) is denoised with its seed in the ranges, with
    the ramp of `LATENT_MARGIN_S` at each end (`pipeline.Inpaint`; windows wholly outside the ranges are not run).
    Returns `(n_samples,)` float audio at the old cue's delivery rate with the old cue's mastering gain (least
    squares on the kept samples; the ranges turned down if they would pass -1 dBFS), a record of what was done, and
    the final latent along the new cut (the old one held outside the ranges): what the spliced cue keeps as its
    latent, so that the next change of the cut inpaints it again, as `regenerate_cue` keeps its own.
    The caller keeps the old samples outside the ranges (bridge/timelines/conform.py `splice`)."""
    import time

    from .audio.io import resample
    from .pipeline import Inpaint
    from .windowed import cue_frames

    report = progress or (lambda stage, frac, msg: None)
    source = Path(cut.source)
    meta_path = sidecar_paths(source)["metadata"]
    meta = sidecar.load(sidecar.CUE, meta_path)
    old_req = request_from_json(meta["request"], meta_path, cut.film)
    pcm, rate = _read_pcm(source)
    if pcm.shape[0] != int(meta["n_samples"]) or rate != int(meta["sample_rate"]):
        raise RequestError(f"{source}: {pcm.shape[0]} samples at {rate} Hz, its JSON says {meta['n_samples']} at "
                           f"{meta['sample_rate']} Hz (the WAV was changed after rendering)")
    if cut.request.sample_rate != rate:
        raise RequestError(f"the new cue is asked at {cut.request.sample_rate} Hz, {source} is {rate} Hz")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pipe, backend, old_run = _prepared(old_req, meta, source, float(meta["duration_s"]), report, should_cancel)
    known_old, how = original_latent(pipe, old_run, meta, source, pcm, rate, old_req, report)
    timings["original"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = int(cut.n_samples)
    run = run_args(pipe, cut.request, n / rate, report, should_cancel)
    n_lat = cue_frames(run["n_samples"], pipe.mel_config.hop_length, pipe.window,
                       pipe.unet.downsample_factor).n_latent
    t = torch.arange(n_lat, dtype=torch.float64) / LATENT_FRAME_RATE
    known = torch.zeros(*known_old.shape[:-1], n_lat, dtype=known_old.dtype)
    keep = torch.zeros(n_lat)
    for a, b, old_start in cut.pieces:
        m = (t >= a - 1e-9) & (t < b - 1e-9)
        i = torch.clamp(torch.round((t[m] - a + old_start) * LATENT_FRAME_RATE).long(), 0, known_old.shape[-1] - 1)
        known[..., m] = known_old[..., i]
        keep[m] = 1.0
    for a, b in cut.ranges:
        keep = torch.minimum(keep, keep_mask(n_lat, a, b))
    new = pipe(**run, seed=cut.request.seed, inpaint=Inpaint(known, keep),
               progress=lambda s, f, m: report("regenerate", f if s == "denoise" else 1.0, m))
    timings["inpaint"] = time.perf_counter() - t0

    # the old mastering's gain, from the samples kept (old samples moved along the pieces, outside the ranges)
    new_out = resample(new.wave, MODEL_SAMPLE_RATE, rate)[:n]
    new_out = np.pad(new_out, (0, n - new_out.shape[0])).astype(np.float64)
    delivered = pcm.astype(np.float64).mean(axis=1) / PCM24
    old_at = np.zeros(n)
    ctx = np.zeros(n, bool)
    for a, b, old_start in cut.pieces:
        lo, hi = cue_n_samples(a, rate), min(cue_n_samples(b, rate), n)
        src = np.arange(lo, hi) - lo + cue_n_samples(old_start, rate)
        ok = (src >= 0) & (src < delivered.shape[0])
        old_at[lo:hi][ok] = delivered[src[ok]]
        ctx[lo:hi][ok] = True
    inside = np.zeros(n, bool)
    for a, b in cut.ranges:
        inside[cue_n_samples(a, rate):min(cue_n_samples(b, rate), n)] = True
    ctx &= ~inside
    den = float(np.dot(new_out[ctx], new_out[ctx]))
    gain = float(np.dot(old_at[ctx], new_out[ctx]) / den) if den > 0 else 1.0
    if not ctx.any() or den <= 0:
        gain = float(np.sqrt(np.mean(delivered ** 2) / max(np.mean(new_out ** 2), 1e-20)))
    peak = float(np.abs(new_out[inside] * gain).max()) if inside.any() else 0.0
    range_gain = min(1.0, TRUE_PEAK_CEILING / peak) if peak > 0 else 1.0
    record = {"method": "inpainted", "from": str(source), "seed": int(cut.request.seed), "original_latent": how,
              "latent_margin_s": LATENT_MARGIN_S, "n_windows": new.info.get("n_windows"),
              "n_windows_denoised": new.info.get("n_windows_denoised"), "mastering_gain": gain,
              "range_gain_db": 20 * math.log10(range_gain), "timings_s": timings, "backend": backend.summary()}
    return new_out * gain * range_gain, record, new.latents
