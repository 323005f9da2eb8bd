"""Matching two versions of an edit, cue by cue: the analysis step of conform (issue 20).

This module decides what a changed cut does to each cue. Cue regions are matched by name. Inside a cue, the picture
of the new version is matched to the old one by clip media and source range: a new segment showing the same media
file at the same speed as an old segment, over source times they share, is the same picture. That stretch of the
new cue maps to a stretch of the old cue at a fixed offset, and its audio can be kept, shifted by that offset.
Every cut present in both versions (the same two shots meeting) is listed with its old and new position in the cue.

`CueConform` lists, per cue in the new cue's seconds:
- `kept`: the stretches whose old audio can be moved over unchanged (`Stretch`: new start/end, old start);
- `regenerate`: what needs new audio: each join between kept stretches at different offsets (a moved cut), each
  stretch with no matching picture (an inserted shot, an extended end), widened by `JOIN_MARGIN_S`;
- `cut_moves`: old cut -> new cut.
and a status: "unchanged", "changed", "deleted" (in the old edit only), "new" (in the new edit only) or
"unrepairable" (less than `MIN_KEPT_SHARE` of the new cue keeps its old picture: a new render is needed).

`conform_scored` renders from this analysis (`filmscore conform OLD NEW --scored DIR -o DIR2`): see the section
before it, and docs/editor_loop.md for its figures and what it does not do yet. `conform_plan` moves a changed
cue's plan to the new cut (engine/plan/retime.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from filmscore.engine.audio.delivery import BEXT_UNSET, read_wav_chunks, riff_chunk
from filmscore.engine.audio.loudness import LoudnessReport
from filmscore.engine.errors import FilmscoreError, RenderCancelled
from filmscore.engine.request import CancelFn, ProgressFn

from ..deliverables import atomic_write_bytes, write_json
from ..executors.base import Executor
from .batch import (MANIFEST_NAME, CueEvent, Manifest, RenderFn, ScoreOptions, cue_key, cue_plan_entry,
                    score_timeline)
from .cues import CueList, CueRegion
from .film_of_region import EncodeFn
from .picture import PictureSegment
from .scored import Placement, write_scored_timeline
from .timing import range_samples, to_samples

JOIN_MARGIN_S = 1.0  # audio regenerated on each side of a moved cut, so the music can turn with it
MIN_KEPT_SHARE = 0.5
_EPS = 1e-6

Status = Literal["unchanged", "changed", "deleted", "new", "unrepairable"]


@dataclass(frozen=True)
class Stretch:
    """New cue seconds [start, end) show the picture that old cue seconds [old_start, old_start + end - start)
    showed: the old audio there can be moved by `offset` = start - old_start."""

    start: float
    end: float
    old_start: float

    @property
    def offset(self) -> float:
        return self.start - self.old_start


@dataclass(frozen=True)
class CueConform:
    name: str
    status: Status
    old: CueRegion | None
    new: CueRegion | None
    kept: tuple[Stretch, ...] = ()
    regenerate: tuple[tuple[float, float], ...] = ()
    cut_moves: tuple[tuple[float, float], ...] = ()
    reason: str = ""

    def to_json(self) -> dict:
        return {"cue": self.name, "status": self.status, "reason": self.reason,
                "kept": [{"start_s": s.start, "end_s": s.end, "old_start_s": s.old_start} for s in self.kept],
                "regenerate_s": [list(r) for r in self.regenerate],
                "cut_moves_s": [{"old": a, "new": b} for a, b in self.cut_moves]}


def _cue_s(seg: PictureSegment, cue: CueRegion) -> tuple[float, float]:
    a = (seg.record_start - cue.record_start).to_seconds()
    return a, a + seg.record_range.duration.to_seconds()


def _source_s(seg: PictureSegment) -> float:
    return seg.source_start.to_seconds()


def match_picture(old: CueRegion, new: CueRegion) -> list[Stretch]:
    """Stretches of `new` showing what `old` showed (same media file, same speed, shared source time), in new-cue
    order, merged where consecutive stretches keep one offset."""
    out: list[Stretch] = []
    olds = [s for s in old.picture if s.kind == "media" and s.time_scalar > 0]
    for ns in new.picture:
        if ns.kind != "media" or ns.time_scalar <= 0:
            continue
        na, nb = _cue_s(ns, new)
        for os_ in olds:
            if os_.media_path != ns.media_path or abs(os_.time_scalar - ns.time_scalar) > _EPS:
                continue
            oa, ob = _cue_s(os_, old)
            k = ns.time_scalar
            # source time s is at new cue time na + (s - src_n) / k and old cue time oa + (s - src_o) / k
            lo = max(_source_s(ns), _source_s(os_))
            hi = min(_source_s(ns) + (nb - na) * k, _source_s(os_) + (ob - oa) * k)
            if hi - lo <= _EPS:
                continue
            start = na + (lo - _source_s(ns)) / k
            out.append(Stretch(start, start + (hi - lo) / k, oa + (lo - _source_s(os_)) / k))
    out.sort(key=lambda s: s.start)
    merged: list[Stretch] = []
    for s in out:
        if merged and abs(merged[-1].end - s.start) < _EPS and abs(merged[-1].offset - s.offset) < _EPS:
            merged[-1] = Stretch(merged[-1].start, s.end, merged[-1].old_start)
        else:
            merged.append(s)
    return merged


def _cuts(cue: CueRegion) -> list[tuple[float, PictureSegment, PictureSegment]]:
    return [(_cue_s(b, cue)[0], a, b) for a, b in zip(cue.picture, cue.picture[1:]) if not a.same_shot_as(b)]


def _same_join(a: tuple[PictureSegment, PictureSegment], b: tuple[PictureSegment, PictureSegment]) -> bool:
    return all(x.kind == y.kind and x.media_path == y.media_path and x.clip_name == y.clip_name
               for x, y in zip(a, b, strict=True))


def conform_cue(old: CueRegion, new: CueRegion) -> CueConform:
    """What the new edit does to one cue (module docstring)."""
    duration = new.duration.to_seconds()
    kept = match_picture(old, new)
    old_duration = old.duration.to_seconds()
    kept = [s for s in (Stretch(s.start, min(s.end, duration, s.start + old_duration - s.old_start), s.old_start)
                        for s in kept) if s.end - s.start > _EPS]
    covered = sum(s.end - s.start for s in kept)
    moves = []
    old_cuts = _cuts(old)
    for t_new, a, b in _cuts(new):
        for t_old, oa, ob in old_cuts:
            if _same_join((a, b), (oa, ob)):
                moves.append((t_old, t_new))
                break
    if duration > 0 and covered / duration < MIN_KEPT_SHARE:
        return CueConform(new.name, "unrepairable", old, new, tuple(kept), ((0.0, duration),), tuple(moves),
                          f"{covered:.2f} of {duration:.2f} s keep their old picture (under "
                          f"{MIN_KEPT_SHARE:.0%}): render it again")
    if (len(kept) == 1 and abs(kept[0].offset) < _EPS and kept[0].start < _EPS
            and abs(kept[0].end - duration) < _EPS and abs(old_duration - duration) < _EPS):
        return CueConform(new.name, "unchanged", old, new, tuple(kept), (), tuple(moves), "the same picture")
    # what needs new audio: holes between kept stretches and the joins where the offset changes
    need: list[tuple[float, float]] = []
    cursor = 0.0
    for i, s in enumerate(kept):
        if s.start - cursor > _EPS:
            need.append((max(0.0, cursor - JOIN_MARGIN_S) if cursor > 0 else 0.0,
                         min(duration, s.start + JOIN_MARGIN_S)))
        elif i > 0 and abs(kept[i - 1].offset - s.offset) > _EPS:
            need.append((max(0.0, s.start - JOIN_MARGIN_S), min(duration, s.start + JOIN_MARGIN_S)))
        cursor = max(cursor, s.end)
    if duration - cursor > _EPS:
        need.append((max(0.0, cursor - JOIN_MARGIN_S) if kept else 0.0, duration))
    merged: list[tuple[float, float]] = []
    for a, b in sorted(need):
        if merged and a <= merged[-1][1] + _EPS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    why = [f"{sum(1 for a, b in moves if abs(a - b) > _EPS)} cut(s) moved"] if moves else []
    if abs(old_duration - duration) > _EPS:
        why.append(f"length {old_duration:.3f} -> {duration:.3f} s")
    return CueConform(new.name, "changed", old, new, tuple(kept), tuple(merged), tuple(moves), "; ".join(why))


@dataclass
class EditConform:
    """Every cue of either edit: matched by name, or reported as deleted / new."""

    cues: list[CueConform] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"cues": [c.to_json() for c in self.cues]}


def conform_edit(old_cues: list[CueRegion], new_cues: list[CueRegion]) -> EditConform:
    """Match the cue regions of two edits by name and analyse each pair; a cue of the old edit missing from the new
    one is reported as deleted, never dropped."""
    new_by_name = {c.name: c for c in new_cues}
    old_names = {c.name for c in old_cues}
    out = EditConform()
    for oc in old_cues:
        nc = new_by_name.get(oc.name)
        if nc is None:
            out.cues.append(CueConform(oc.name, "deleted", oc, None, reason="its region is not in the new edit"))
        else:
            out.cues.append(conform_cue(oc, nc))
    out.cues += [CueConform(nc.name, "new", None, nc, regenerate=((0.0, nc.duration.to_seconds()),),
                            reason="a cue region only the new edit has: render it")
                 for nc in new_cues if nc.name not in old_names]
    return out


# -- Rendering a conform: `filmscore conform OLD NEW --scored DIR -o DIR2` -----------------------------------------
#
# What each cue of the new edit gets, from the analysis above and the cues `filmscore score` delivered in DIR:
# - unchanged: its delivered files copied; the WAV's audio bytes as they were, its BWF time reference (bext and
#   iXML) set to the new record position;
# - changed, nothing to regenerate (a trimmed region): the kept stretches' samples, shifted, nothing rendered;
# - changed: the kept stretches' samples, shifted, and in the `regenerate` ranges new audio, joined by 50 ms
#   equal-power crossfades that lie inside the ranges. The new audio is inpainted (`_inpaint`,
#   `engine.regenerate.inpaint_new_cut`): the old cue's final latent (its request re-run with its region's picture
#   encoded again, verified sample-identical) is laid along the new cut and held outside the ranges while the new
#   cue's request (new picture, hits, the batch's options and seed) is denoised in them. Where the old cue cannot
#   be reproduced here, or with `inpaint=False`, the ranges take a fresh render of the whole new cue instead
#   (`score_timeline` into a work folder);
# - new, unrepairable, or not done in DIR: rendered as `filmscore score` renders it;
# - deleted: reported in the summary and the new manifest, nothing written.
# The samples are spliced as 24-bit integers, never through floats, so a kept sample is the old sample exactly.

CONFORM_WORK_DIR = ".filmscore-conform-work"
CROSSFADE_S = 0.05
_CUE_FILES = (".wav", ".json", ".controls.npz", ".theme.mid", ".plan.json", ".plan.mid", ".latent.npy")

Action = Literal["copied", "spliced", "trimmed", "rendered", "reported", "failed"]


@dataclass
class ConformOutcome:
    """What conform did to one cue. `kept_samples`: samples of the new WAV that are the old WAV's samples exactly
    (shifted); `rendered_samples`: samples from the fresh render (crossfades included)."""

    name: str
    file_stem: str | None
    status: Status
    action: Action
    reason: str = ""
    wav: str | None = None
    n_samples: int | None = None
    time_reference: int | None = None
    kept_samples: int = 0
    rendered_samples: int = 0
    loudness: dict | None = None
    message: str = ""
    new_audio: str | None = None  # for a spliced cue: "inpainted" or "fresh render"

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ConformResult:
    outdir: Path
    analysis: EditConform
    outcomes: list[ConformOutcome]
    timelines: list[Path]
    timeline_notes: list[str]
    render_seconds: float = 0.0
    inpaint_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.action != "failed" for o in self.outcomes)

    def to_json(self) -> dict:
        return {"outdir": str(self.outdir), "ok": self.ok, "cues": [o.to_json() for o in self.outcomes],
                "analysis": self.analysis.to_json(), "scored_timelines": [str(p) for p in self.timelines],
                "notes": self.timeline_notes, "render_seconds": self.render_seconds,
                "inpaint_seconds": self.inpaint_seconds}


def scored_options(scored: Path) -> tuple[ScoreOptions, dict]:
    """The options the batch in `scored` rendered with (from a done cue's sidecar) and its manifest's cues."""
    from filmscore.engine import sidecar

    manifest = scored / MANIFEST_NAME
    if not manifest.is_file():
        raise ConformError(f"{scored}: no {MANIFEST_NAME}; --scored must be a folder `filmscore score` wrote")
    cues = sidecar.load(sidecar.BATCH, manifest).get("cues") or {}
    for stem, e in cues.items():
        if e.get("status") == "done" and (scored / f"{stem}.json").is_file():
            opts = json.loads((scored / f"{stem}.json").read_text()).get("batch_options")
            if isinstance(opts, dict):
                return ScoreOptions.from_json(opts), cues
    raise ConformError(f"{scored}: no done cue with its sidecar JSON; nothing to conform from")


def _decode24(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.int32)


def _encode24(q: np.ndarray) -> bytes:
    return np.asarray(q, "<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def _mono24(chunks: dict[str, bytes], path: Path) -> None:
    channels, _, _, _, bits = struct.unpack("<HIIHH", chunks["fmt "][2:16])
    if channels != 1 or bits != 24:
        raise ConformError(f"{path}: {channels} channel(s) of {bits} bits; conform splices the mono 24-bit WAVs "
                           "`filmscore score` delivers")


def rewrite_bwf(src: Path, dst: Path, time_reference: int, data: bytes | None = None,
                loudness: LoudnessReport | None = None) -> Path:
    """`src`'s chunks into `dst` with its time reference (bext and iXML) set, and optionally its `data` and bext
    loudness fields replaced; every other byte as it was."""
    chunks = read_wav_chunks(src)
    out = b""
    for tag, body in chunks.items():
        if tag == "bext":
            body = body[:338] + struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32) + body[346:]
            if loudness is not None:
                cents = [int(round(v * 100)) if v is not None and np.isfinite(v) else BEXT_UNSET
                         for v in (loudness.integrated_lufs, loudness.loudness_range_lu, loudness.true_peak_dbtp)]
                body = body[:412] + struct.pack("<hhh", *cents) + body[418:]
        elif tag == "iXML":
            text = body.rstrip(b"\0").decode("utf-8")
            for field_, v in (("HI", time_reference >> 32), ("LO", time_reference & 0xFFFFFFFF)):
                text = re.sub(rf"(<TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_{field_}>)\d+(<)", rf"\g<1>{v}\g<2>", text)
            body = text.encode("utf-8")
        elif tag == "data" and data is not None:
            body = data
        out += riff_chunk(tag.encode("latin-1"), body)
    return atomic_write_bytes(dst, b"RIFF" + struct.pack("<I", 4 + len(out)) + b"WAVE" + out)


def splice(old: np.ndarray, new: np.ndarray | None, n: int, kept: Sequence[Stretch],
           regenerate: Sequence[tuple[float, float]], sr: int) -> tuple[np.ndarray, int, int]:
    """The new cue's `n` 24-bit samples: the old samples along the kept stretches (shifted by their offsets) outside
    the `regenerate` ranges, `new`'s inside them, an equal-power crossfade of `CROSSFADE_S` inside each range end
    that meets kept audio. Returns (samples, how many are old samples exactly, how many came from `new`)."""
    src = np.full(n, -1, np.int64)
    for s in kept:
        a, b = round(s.start * sr), min(n, round(s.end * sr))
        idx = np.arange(a, b) - round(s.offset * sr)
        src[a:b] = np.where((idx >= 0) & (idx < old.shape[0]), idx, -1)
    w = np.zeros(n)  # the new take's share: 0 old, 1 new
    fade = max(1, round(CROSSFADE_S * sr))
    for ra, rb in regenerate:
        a, b = round(ra * sr), min(n, round(rb * sr))
        w[a:b] = 1.0
        if a > 0 and src[a - 1] >= 0:  # kept audio before: fade in over the range's first samples
            k = min(fade, (b - a) // 2)
            w[a:a + k] = np.minimum(w[a:a + k], (np.arange(k) + 0.5) / k)
        if b < n and src[b] >= 0:
            k = min(fade, (b - a) // 2)
            w[b - k:b] = np.minimum(w[b - k:b], (np.arange(k)[::-1] + 0.5) / k)
    w[src < 0] = 1.0  # no old audio shows this picture: the analysis put it in a range
    if new is None:
        if (w > 0).any():
            raise ConformError("internal: samples without old audio and no new render")
        new = np.zeros(n, np.int32)
    if new.shape[0] != n:
        raise ConformError(f"the fresh render has {new.shape[0]} samples, the new cue {n}")
    old_at = old[np.clip(src, 0, None)].astype(np.float64)
    mixed = np.cos(w * np.pi / 2) * old_at + np.sin(w * np.pi / 2) * new.astype(np.float64)
    out = np.clip(np.round(mixed), -(1 << 23), (1 << 23) - 1).astype(np.int32)
    out[w == 0] = old[src[w == 0]]
    out[w == 1] = new[w == 1]
    return out, int((w == 0).sum()), int((w > 0).sum())


class ConformError(FilmscoreError):
    """A conform that cannot run: the scored folder is not a batch's, a WAV is not what score delivers."""


def conform_scored(old_list: CueList, new_list: CueList, scored: str | Path, outdir: str | Path, *,
                   render: RenderFn | None = None, encode: EncodeFn | None = None,
                   executor: Executor | None = None, on_cue: CueEvent | None = None,
                   progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                   inpaint: bool = True) -> ConformResult:
    """Conform the cues `filmscore score` delivered for `old_list` into `outdir` for `new_list` (module section
    above); write the new manifest (each entry with its `conform` record, deleted cues included) and the scored
    timeline of the new edit."""
    scored, outdir = Path(scored), Path(outdir)
    if scored.resolve() == outdir.resolve():
        raise ConformError(f"-o {outdir} is the scored folder; conform writes a new one")
    options, old_entries = scored_options(scored)
    sr = options.sample_rate
    analysis = conform_edit(old_list.cues, new_list.cues)
    old_by_name = {c.name: c for c in old_list.cues}
    new_by_name = {c.name: c for c in new_list.cues}
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(outdir, str(new_list.timeline.path), order=[c.file_stem for c in new_list.cues])
    manifest.data["conform"] = {"old_timeline": str(old_list.timeline.path), "scored": str(scored)}

    def old_done(cue: CueRegion) -> Path | None:
        e = old_entries.get(cue.file_stem)
        wav = scored / f"{cue.file_stem}.wav"
        key = cue_key(cue, options)
        ok = e is not None and e.get("status") == "done" and key in (e.get("key"), e.get("region_key")) and \
            wav.is_file()
        return wav if ok else None

    plans: dict[str, CueConform] = {}
    to_render: list[CueRegion] = []  # rendered whole, as score renders them, into the work folder
    to_inpaint: list[CueRegion] = []  # changed: new music inpainted in the ranges, the old latent held elsewhere
    outcomes: dict[str, ConformOutcome] = {}
    for c in analysis.cues:
        if c.status == "deleted":
            outcomes[c.name] = ConformOutcome(c.name, c.old.file_stem, "deleted", "reported", c.reason, wav=None)
            continue
        plans[c.name] = c
        old_cue = old_by_name.get(c.name)
        if c.status in ("new", "unrepairable") or old_cue is None or old_done(old_cue) is None:
            to_render.append(new_by_name[c.name])
        elif c.status == "changed" and c.regenerate:
            (to_inpaint if inpaint else to_render).append(new_by_name[c.name])

    work = outdir / CONFORM_WORK_DIR
    inpainted: dict[str, tuple[np.ndarray, dict, Any]] = {}
    fallbacks: dict[str, str] = {}
    t0 = time.perf_counter()
    for new_cue in to_inpaint:  # this process, whatever the executor: the old cue's latent is needed here
        try:
            inpainted[new_cue.name] = _inpaint(plans[new_cue.name], new_cue, old_done(old_by_name[new_cue.name]),
                                               new_list, options, work, encode, progress, should_cancel)
        except RenderCancelled:
            raise
        except FilmscoreError as e:  # not reproducible here (another bundle, CPU, media): a fresh render instead
            fallbacks[new_cue.name] = str(e).splitlines()[0]
            to_render.append(new_cue)
    inpaint_s = time.perf_counter() - t0

    render_names = {c.name for c in to_render}
    rendered: dict[str, Any] = {}
    render_s = 0.0
    if to_render:
        t0 = time.perf_counter()
        batch = score_timeline(new_list, to_render, work, options, render=render, encode=encode, executor=executor,
                               on_cue=on_cue, progress=progress, should_cancel=should_cancel)
        render_s = time.perf_counter() - t0
        rendered = {o.name: o for o in batch.outcomes}

    for new_cue in new_list.cues:
        c = plans[new_cue.name]
        stem = new_cue.file_stem
        _, n = range_samples(new_cue.record_range, sr)
        time_ref = to_samples(new_cue.record_timecode_start, sr)
        o = outcomes[new_cue.name] = ConformOutcome(new_cue.name, stem, c.status, "failed", c.reason, f"{stem}.wav",
                                                    n, time_ref)
        old_cue = old_by_name.get(new_cue.name)
        old_wav = old_done(old_cue) if old_cue is not None else None
        fresh = rendered.get(new_cue.name)
        try:
            if fresh is not None and fresh.status != "done":
                raise ConformError(fresh.message or f"cue {new_cue.name!r}: the render did not finish")
            if new_cue.name in render_names and (c.status != "changed" or old_wav is None):
                o.action, o.rendered_samples = "rendered", n
                if c.status == "changed":
                    o.reason = f"{c.reason}; not done in {scored}: rendered as score renders it".lstrip("; ")
                for suffix in _CUE_FILES:
                    if (work / f"{stem}{suffix}").is_file():
                        os.replace(work / f"{stem}{suffix}", outdir / f"{stem}{suffix}")
                o.loudness = fresh.loudness
            elif c.status == "unchanged":
                ostem = old_wav.stem
                rewrite_bwf(old_wav, outdir / o.wav, time_ref)
                for suffix in _CUE_FILES[2:]:
                    if (scored / f"{ostem}{suffix}").is_file():
                        shutil.copyfile(scored / f"{ostem}{suffix}", outdir / f"{stem}{suffix}")
                o.action, o.kept_samples = "copied", n
                meta = json.loads((scored / f"{ostem}.json").read_text())
                o.loudness = meta.get("loudness")
                meta.update(cue=new_cue.to_json(), time_reference=time_ref)
                meta["conform"] = {"action": "copied", "from": str(old_wav)}
                write_json(outdir / f"{stem}.json", meta)
            else:
                _splice_cue(c, new_cue, old_wav, work if fresh is not None else None, outdir, n, time_ref, sr, o,
                            inpainted.get(new_cue.name))
                if new_cue.name in fallbacks:
                    o.reason = f"{o.reason}; not inpainted ({fallbacks[new_cue.name]}): spliced from a fresh render"
        except FilmscoreError as e:
            o.action, o.message = "failed", str(e)
    shutil.rmtree(work, ignore_errors=True)

    for o in outcomes.values():
        cue = new_by_name.get(o.name)
        record = {"status": o.status, "action": o.action, "reason": o.reason, "kept_samples": o.kept_samples,
                  "rendered_samples": o.rendered_samples, "analysis": next(
                      (c.to_json() for c in analysis.cues if c.name == o.name), None)}
        if o.action == "reported":
            manifest.record(o.file_stem, {"status": "deleted", "name": o.name, "conform": record})
        elif o.action == "failed":
            manifest.record(o.file_stem, {"status": "failed", "name": o.name, "error": o.message, "conform": record})
        else:
            # a copied or rendered cue is what `filmscore score` NEW would deliver: its key lets a score rerun keep
            # it; a spliced one is not, so a score rerun renders it afresh. Every one is the cue of its region under
            # these options (`region_key`): the next conform, when the cut changes again, starts from it
            key = cue_key(cue, options) if o.action in ("copied", "rendered") else f"conform:{o.action}"
            manifest.record(o.file_stem, {"status": "done", "key": key, "region_key": cue_key(cue, options),
                                          "name": o.name, "wav": o.wav,
                                          "n_samples": o.n_samples, "loudness": o.loudness,
                                          "plan": cue_plan_entry(outdir, o.file_stem), "conform": record})
    placements = [Placement(new_by_name[o.name], outdir / o.wav, o.n_samples, sr)
                  for o in outcomes.values() if o.action not in ("reported", "failed")]
    timelines, notes = write_scored_timeline(new_list.timeline, placements, outdir) if placements else ([], [])
    order = {c.name: i for i, c in enumerate(new_list.cues)}
    ordered = sorted(outcomes.values(), key=lambda o: (order.get(o.name, len(order)), o.name))
    return ConformResult(outdir, analysis, ordered, timelines, notes, render_s, inpaint_s)


def _inpaint(c: CueConform, new_cue: CueRegion, old_wav: Path, new_list: CueList, options: ScoreOptions,
             work: Path, encode: EncodeFn | None, progress: ProgressFn | None,
             should_cancel: CancelFn | None) -> tuple[np.ndarray, dict, Any]:
    """The new cue's audio inpainted in its `regenerate` ranges (`engine.regenerate.inpaint_new_cut`): the old cue's
    latent held along the kept stretches, the new cue's request (as `filmscore score` renders it: its new picture,
    hits, the batch's options and seed) sampled in the ranges. Returns its 24-bit samples, the record and the
    final latent along the new cut (kept beside the spliced cue)."""
    from filmscore.engine import sidecar
    from filmscore.engine.regenerate import NewCut, inpaint_new_cut

    from .batch import cue_task
    from .region_picture import picture_of_cue_json
    from .render_cue import timeline_hits_s, timeline_name, with_region_picture

    meta_path = old_wav.with_suffix(".json")
    old_film = picture_of_cue_json(sidecar.load(sidecar.CUE, meta_path), meta_path, encode)
    request = cue_task(new_cue, options, work, timeline_name(new_list.timeline)).request
    request, _ = with_region_picture(request, new_cue.picture, timeline_hits_s(new_cue), encode)
    _, n = range_samples(new_cue.record_range, options.sample_rate)
    cut = NewCut(old_wav, old_film, request, n, tuple((s.start, s.end, s.old_start) for s in c.kept),
                 tuple(c.regenerate))
    wave, record, latents = inpaint_new_cut(cut, progress, should_cancel)
    q = np.clip(np.round(wave * float(1 << 23)), -(1 << 23), (1 << 23) - 1).astype(np.int32)
    return q, {**record, "request": request.to_json()}, latents


def _splice_cue(c: CueConform, new_cue: CueRegion, old_wav: Path, work: Path | None, outdir: Path, n: int,
                time_ref: int, sr: int, o: ConformOutcome, inpainted: tuple[np.ndarray, dict, Any] | None = None
                ) -> None:
    """A changed cue: old samples along the kept stretches, in the ranges the inpainted audio (`inpainted`) or the
    fresh render's in `work` (module section)."""
    from filmscore.engine.audio.loudness import measure

    stem = new_cue.file_stem
    old_chunks = read_wav_chunks(old_wav)
    _mono24(old_chunks, old_wav)
    old = _decode24(old_chunks["data"])
    new = None
    base = old_wav
    if inpainted is not None:
        new = inpainted[0]
    elif work is not None:
        base = work / f"{stem}.wav"
        new_chunks = read_wav_chunks(base)
        _mono24(new_chunks, base)
        new = _decode24(new_chunks["data"])
    samples, o.kept_samples, o.rendered_samples = splice(old, new, n, c.kept, c.regenerate if new is not None
                                                         else (), sr)
    x = samples.astype(np.float64) / float(1 << 23)
    m = measure(x, sr)
    lufs = m.integrated_lufs()
    peak = 20 * np.log10(m.peak) if m.peak > 0 else float("-inf")
    loud = LoudnessReport(target_lufs=float("nan"), integrated_lufs=lufs, true_peak_dbtp=peak,
                          loudness_range_lu=None, gain_db=0.0, limited=False, input_lufs=lufs)
    o.loudness = {"integrated_lufs": lufs, "true_peak_dbtp": peak}
    rewrite_bwf(base, outdir / f"{stem}.wav", time_ref, data=_encode24(samples), loudness=loud)
    o.action = "spliced" if new is not None else "trimmed"
    o.new_audio = "inpainted" if inpainted is not None else ("fresh render" if new is not None else None)
    # Sidecars: the fresh render's request, seed and controls where there is one, else the old cue's; the plan is
    # the old cue's moved to the new cut (`conform_plan`: its hits and tempo map follow the new cuts), or none when
    # the old cue had none
    src_dir, src_stem = (work, stem) if work is not None else (old_wav.parent, old_wav.stem)
    meta = json.loads((src_dir / f"{src_stem}.json").read_text())
    for suffix in _CUE_FILES[2:]:
        if suffix.startswith(".plan") or suffix == ".latent.npy":
            # the plan is the old one moved (below); the latent is the inpainting's (below) or none: a fresh
            # render's latent does not hold the old samples kept around its ranges
            (outdir / f"{stem}{suffix}").unlink(missing_ok=True)
            continue
        if (src_dir / f"{src_stem}{suffix}").is_file():
            shutil.copyfile(src_dir / f"{src_stem}{suffix}", outdir / f"{stem}{suffix}")
    retimed = conform_plan(c, new_cue, old_wav.parent / f"{old_wav.stem}.plan.json", outdir / f"{stem}.plan.json")
    meta.update(cue=new_cue.to_json(), time_reference=time_ref, n_samples=n, wav=f"{stem}.wav",
                loudness=o.loudness, plan=cue_plan_entry(outdir, stem))
    meta.pop("latent", None)
    how = None
    if inpainted is not None:  # the request that would render the new cue; the record of the inpainting
        how = {k: v for k, v in inpainted[1].items() if k != "request"}
        meta["request"] = inpainted[1]["request"]
        # the inpainting's final latent, tied to these samples: the next conform of this cue (the cut changes
        # again) holds it outside its ranges, as it held the old cue's (engine/regenerate.py `original_latent`)
        from filmscore.engine.latent import save_latent

        meta["latent"] = dict(save_latent(inpainted[2], outdir / f"{stem}.latent.npy", outdir / f"{stem}.wav"),
                              file=f"{stem}.latent.npy")
    elif work is not None:
        how = "a fresh render of the new cue, same request and seed"
    meta["conform"] = {"action": o.action, "from": str(old_wav), "kept_samples": o.kept_samples,
                       "rendered_samples": o.rendered_samples, "crossfade_s": CROSSFADE_S,
                       "kept": c.to_json()["kept"], "regenerate_s": c.to_json()["regenerate_s"],
                       "new_audio": how,
                       "plan": retimed.to_json() if retimed is not None else None}
    write_json(outdir / f"{stem}.json", meta)


def cue_anchors(cue: CueRegion) -> list:
    """The new cue's sync points for its plan: every edit and point marker of the timeline inside it (`cue.hits`),
    cue seconds; the cue's own start is not one."""
    from filmscore.engine.plan.tempo_map import Anchor

    d = cue.duration.to_seconds()
    return [Anchor(t, False, "cut" if h.kind == "cut" else "hit") for h in cue.hits
            if 0.0 < (t := h.time.to_seconds()) < d]


def conform_plan(c: CueConform, new_cue: CueRegion, old_plan: Path, out: Path):
    """Move the old cue's plan (`old_plan`, STEM.plan.json) to the new cut (`engine.plan.retime.retime_plan`: the
    kept stretches' music moved, the click fitted again in the regenerate ranges with the new cuts on beats) and
    write it to `out` and its MIDI beside it. Returns the `RetimeReport`, or None (and removes `out`) when the old
    cue has no plan."""
    from filmscore.engine.plan.plan import CuePlan
    from filmscore.engine.plan.retime import Piece, retime_plan

    if not old_plan.is_file():
        out.unlink(missing_ok=True)
        out.with_suffix(".mid").unlink(missing_ok=True)
        return None
    plan = CuePlan.load(old_plan)
    new_plan, report = retime_plan(plan, new_cue.duration.to_seconds(),
                                   [Piece(s.start, s.end, s.old_start) for s in c.kept], c.regenerate,
                                   cue_anchors(new_cue))
    new_plan.save(out)
    new_plan.save(out.with_suffix(".mid"))
    return report
