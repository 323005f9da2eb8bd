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
from .request import CancelFn, ProgressFn, RenderRequest, RenderResult, cue_n_samples

logger = logging.getLogger(__name__)

LATENT_MARGIN_S = 0.32  # the latent ramp at each join (8 latent frames at 25/s)
CROSSFADE_S = 0.05  # the equal-power audio crossfade at each join, inside the range
MIN_RANGE_S = 1.0  # two margins and something between them
PCM24 = 1 << 23
TRUE_PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBTP, as mastering (sample peak: a safe lower bound on true peak)


def latent_path(output: Path) -> Path:
    """OUT.latent.npy: the final latent of a regenerated cue (float32 `(1, C, L)`)."""
    return Path(f"{Path(output).with_suffix('')}.latent.npy")


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


def regenerate_cue(regen: Regeneration, progress: ProgressFn | None = None,
                   should_cancel: CancelFn | None = None) -> RenderResult:
    """Regenerate a range of a cue (module docstring). Writes `regen.output` (the WAV, PCM 24-bit, the source's
    length and rate), its JSON (the source's, with `regenerated` added), its controls and theme (copied) and
    OUT.latent.npy. Raises FilmscoreError subclasses naming what is at fault."""
    from .audio.io import resample
    from .backends import load_backend
    from .pipeline import Inpaint
    from .render import build_pipeline, controls_of_request, picture_of_request, write_atomically
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
    pipe, bundle = build_pipeline(req.bundle)
    if meta.get("bundle", {}).get("hash") not in (None, bundle.hash):
        raise RequestError(f"{source}: rendered with bundle {meta['bundle'].get('name')} ({meta['bundle']['hash'][:12]}), "
                           f"{bundle.path} is another ({bundle.hash[:12]})")
    backend = load_backend(req.backend, bundle)
    backend.attach(pipe)
    want = pipe.film_head.config.feature_layout if pipe.film_head is not None else None
    from .film.features import layout_has_faces

    film = picture_of_request(req, report, faces=bool(want) and layout_has_faces(want))
    if film is not None and want and film.layout != want:
        film = film.as_layout(want)
    n_model = cue_n_samples(duration, MODEL_SAMPLE_RATE)
    n_frames = math.ceil(n_model / pipe.mel_config.hop_length)
    controls, _ = controls_of_request(req, n_frames, film)
    run = dict(n_samples=n_model, film=film, controls=controls, scheduler=req.scheduler,
               picture_guidance=req.picture_guidance, control_guidance=req.control_guidance,
               control_strength=req.control_strength, vocoder=req.vocoder, steps=req.steps,
               should_cancel=should_cancel)
    timings["load"] = time.perf_counter() - t0

    # 1. the original latent, and the gain its mastering applied
    t0 = time.perf_counter()
    lat_file = latent_path(source)
    stored = meta.get("regenerated", {}).get("latent") if meta.get("regenerated") else None
    if stored is not None and lat_file.is_file() and stored.get("wav_sha256") == _sha256(source):
        known = torch.from_numpy(np.load(lat_file))
        how = "stored latent"
    else:
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
        known = orig.latents
        how = "re-run, verified sample-identical"
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
    metadata["timings_s"] = timings
    write_atomically(paths["metadata"], lambda p: p.write_text(json.dumps(metadata, indent=2, default=str) + "\n"))
    report("deliver", 1.0, f"wrote {out}")
    return RenderResult(out, duration, pcm.shape[0], rate, seed, paths["controls"], metadata, timings)
