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

What is not built (docs/editor_loop.md): the `filmscore conform` command that renders from this analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .cues import CueRegion
from .picture import PictureSegment

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
