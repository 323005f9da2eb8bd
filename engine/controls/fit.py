"""Fitting a theme to picture: tempo and start so that strong beats land on hit points, repeats and ending on bars.

The fitted timing is a piecewise-linear map from the theme's own time (looped) to cue time, with knots at the
theme start and at every hit point it catches. Each segment's tempo stays within `FitSettings.max_change` of the
cue's base tempo (and within the absolute `min_stretch`..`max_stretch`), so a theme bends its tempo the way a
composer conducting to a click track would, and never races or drags. Choosing which strong beat catches which
hit is a dynamic programme over (hit, beat) pairs that maximises the hits caught (phrase starts, then downbeats,
then mid-bar strong beats preferred) less the tempo deviation.

- base tempo: the stretch closest to the theme's own tempo for which the cue holds a whole number of bars;
- start: at 0, or up to one bar later when that puts a strong beat of the theme's first bar on the first hit;
- end: the last segment ends the theme on a bar line at the cue end when a tempo within bounds allows, else on
  the last bar line before it (or in the bar when more than half of it fits); a note still sounding at the cue
  end is cut there and the dynamics fade out over `fade_s` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..constants import CONTROL_FRAME_RATE
from ..errors import FilmscoreError
from .midi import DYNAMICS_FLOOR_DB, Note, dynamics_from_notes, melody_from_notes
from .theme import BEAT_KINDS, BEAT_PHRASE, Theme
from .types import Controls

MAX_HITS = 500
MAX_CANDIDATES = 96
"""Strong beats considered per hit (nearest the base-tempo position): keeps an hour-long cue's fit to seconds."""
LATE_ENTRANCE_COST = 0.3
"""Score cost of entering after the cue start (in hits: a third of a caught hit)."""


class FitError(FilmscoreError):
    """Fitting asked for something impossible: a non-positive duration, hits that are not numbers, too many hits."""


@dataclass(frozen=True)
class FitSettings:
    """Stretch = fitted seconds per own second (> 1: slower than written)."""

    tolerance_s: float = 0.070
    min_stretch: float = 0.75
    max_stretch: float = 1.33
    max_change: float = 0.15
    """A segment's stretch stays within base * (1 +- max_change)."""
    max_lead_bars: float = 1.0
    fade_s: float = 1.0
    catch_reward: float = 1.0
    kind_bonus: tuple[float, float, float] = (0.3, 0.15, 0.0)
    deviation_cost: float = 2.0
    """Cost per unit |ln(stretch / base)| of a segment."""


@dataclass(frozen=True)
class HitMatch:
    """One hit point against the nearest fitted strong beat (cue seconds); caught when within the tolerance."""

    hit_s: float
    beat_s: float
    kind: str
    error_s: float
    caught: bool


@dataclass
class FittedTheme:
    """A theme placed in a cue: `notes` in cue seconds (cut at the cue end), `cc` as (s, channel, ctl, value),
    the time map `knots_own_s` → `knots_cue_s`. Own time runs through the repeats: repeat r >= 1 plays the theme
    from its first downbeat, shifted by r * theme.period_s (see `Theme.looped_s_to_beats`)."""

    theme: Theme
    duration_s: float
    notes: list[Note]
    cc: list[tuple[float, int, int, int]]
    knots_own_s: np.ndarray
    knots_cue_s: np.ndarray
    tail_stretch: float
    hits: list[HitMatch]
    ends_on_bar: bool
    fade_out_s: float
    base_stretch: float
    loops: int = 1
    settings: FitSettings = field(default_factory=FitSettings)

    # -- time map -------------------------------------------------------------------------------------------
    def own_to_cue(self, own_s) -> np.ndarray:
        x = np.asarray(own_s, np.float64)
        y = np.interp(x, self.knots_own_s, self.knots_cue_s)
        past = x > self.knots_own_s[-1]
        return np.where(past, self.knots_cue_s[-1] + (x - self.knots_own_s[-1]) * self.tail_stretch, y)

    def cue_to_own(self, cue_s) -> np.ndarray:
        y = np.asarray(cue_s, np.float64)
        x = np.interp(y, self.knots_cue_s, self.knots_own_s)
        past = y > self.knots_cue_s[-1]
        return np.where(past, self.knots_own_s[-1] + (y - self.knots_cue_s[-1]) / self.tail_stretch, x)

    # -- outputs ----------------------------------------------------------------------------------------------
    @property
    def hit_share(self) -> float | None:
        return sum(h.caught for h in self.hits) / len(self.hits) if self.hits else None

    def melody_notes(self) -> list[Note]:
        t = self.theme
        return [n for n in self.notes if n.channel != 10 and (t.melody_track is None or n.track == t.melody_track)
                and (t.melody_channel is None or n.channel == t.melody_channel)]

    def controls(self, n_frames: int | None = None, frame_rate: int = CONTROL_FRAME_RATE) -> Controls:
        """Melody + dynamics of the fitted theme, `n_frames` (default: the cue) at 100/s, with the end fade."""
        if n_frames is None:
            n_frames = int(math.ceil(self.duration_s * frame_rate - 1e-9))
        cc: dict[int, list[tuple[float, int, int]]] = {}
        for t, ch, ctl, val in sorted(self.cc):
            cc.setdefault(ch, []).append((t, ctl, val))
        melody_notes = self.melody_notes()
        melody = melody_from_notes(melody_notes, n_frames, frame_rate)
        dynamics = dynamics_from_notes(self.notes, cc, n_frames, frame_rate).astype(np.float64)
        if self.fade_out_s > 0:
            end = min(n_frames, int(round(self.duration_s * frame_rate)))
            n = min(end, int(round(self.fade_out_s * frame_rate)))
            if n > 0:
                gain = np.linspace(1.0, 0.0, n + 1)[1:]  # linear amplitude ramp to silence at the cue end
                with np.errstate(divide="ignore"):
                    dynamics[end - n:end] += 20.0 * np.log10(np.maximum(gain, 1e-6))
        dynamics = np.maximum(dynamics, DYNAMICS_FLOOR_DB).astype(np.float32)
        return Controls(melody, dynamics, melody_present=bool(melody_notes), dynamics_present=True,
                        frame_rate=frame_rate)

    def summary(self) -> dict:
        return {
            "theme": self.theme.name, "duration_s": round(self.duration_s, 3), "loops": self.loops,
            "notes": len(self.notes), "own_bpm": round(self.theme.bpm, 2),
            "base_bpm": round(self.theme.bpm / self.base_stretch, 2),
            "tempo_bpm_range": [round(self.theme.bpm / s, 2) for s in (self._max_stretch(), self._min_stretch())],
            "ends_on_bar": self.ends_on_bar, "fade_out_s": self.fade_out_s,
            "hits": [{"hit_s": round(h.hit_s, 3), "beat_s": round(h.beat_s, 3), "kind": h.kind,
                      "error_ms": round(1000 * h.error_s, 1), "caught": h.caught} for h in self.hits],
            "hit_share": None if self.hit_share is None else round(self.hit_share, 3),
        }

    def _stretches(self) -> np.ndarray:
        d_own, d_cue = np.diff(self.knots_own_s), np.diff(self.knots_cue_s)
        ok = d_own > 1e-9
        return np.concatenate([d_cue[ok] / d_own[ok], [self.tail_stretch]])

    def _max_stretch(self) -> float:
        return float(self._stretches().max())

    def _min_stretch(self) -> float:
        return float(self._stretches().min())

    def to_midi(self, ticks_per_beat: int = 480):
        """The fitted theme as a type-1 `mido.MidiFile` on the theme's own bar grid (see `fitted_midi`)."""
        from .fitted_midi import fitted_to_midi

        return fitted_to_midi(self, ticks_per_beat)

    def write_midi(self, path, ticks_per_beat: int = 480) -> None:
        """Write `to_midi()` to `path` (a path or a binary file object)."""
        mid = self.to_midi(ticks_per_beat)
        if hasattr(path, "write"):
            mid.save(file=path)
        else:
            mid.save(str(path))


def check_hits(duration_s: float, hits_s) -> np.ndarray:
    """The hit points of a cue of `duration_s` as sorted float64 seconds; FitError naming what is wrong (a bad
    duration, a non-number, too many points). Theme fitting and reference fitting check their inputs the same way."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise FitError(f"cue duration must be a positive number of seconds, got {duration_s!r}")
    try:
        hits = np.asarray(sorted(float(h) for h in hits_s), np.float64)
    except (TypeError, ValueError) as e:
        raise FitError(f"hit points must be numbers of seconds ({e})") from e
    if hits.size and not np.all(np.isfinite(hits)):
        raise FitError("hit points must be finite numbers of seconds")
    if hits.size > MAX_HITS:
        raise FitError(f"{hits.size} hit points; at most {MAX_HITS} per cue")
    return hits


def base_stretch(theme: Theme, duration_s: float, s: FitSettings) -> float:
    """The stretch nearest 1 within bounds at which the cue holds a whole number of the theme's bars."""
    bars = theme.beats_to_s(theme.bar_starts_beats())
    bar_s = float(np.mean(np.diff(bars))) if bars.size > 1 else theme.length_s
    n0 = duration_s / bar_s
    ks = [duration_s / (n * bar_s) for n in (math.floor(n0), math.ceil(n0)) if n >= 1]
    ks = [k for k in ks if s.min_stretch <= k <= s.max_stretch]
    return min(ks, key=lambda k: abs(math.log(k))) if ks else 1.0


def _looped_grid(theme: Theme, own_span_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Strong beats of the looped theme over at least `own_span_s` own seconds: times, kinds, loops."""
    g_s, g_k = theme.grid()
    loops = max(1, int(math.ceil(own_span_s / theme.period_s)) + 1)
    later = g_s >= theme.pickup_s - 1e-9  # repeats start at the first downbeat
    times = np.concatenate([g_s] + [g_s[later] + r * theme.period_s for r in range(1, loops)])
    kinds = np.concatenate([g_k] + [g_k[later] for _ in range(1, loops)])
    return times, kinds, loops


def plan_knots(hits: np.ndarray, start_s: float, base: float, s: FitSettings, times: np.ndarray,
               kinds: np.ndarray) -> tuple[float, list[tuple[float, float]]]:
    """Best (score, [(own_s, cue_s) knots of caught hits]) for a start at `start_s`: a dynamic programme over
    (hit, strong beat) pairs. `times` (G,) own seconds of the strong beats, `kinds` (G,) their BEAT_* kinds."""
    lo, hi = max(s.min_stretch, base * (1 - s.max_change)), min(s.max_stretch, base * (1 + s.max_change))
    bonus = np.asarray(s.kind_bonus)[kinds]
    n = hits.size
    cand: list[np.ndarray] = []
    for h in hits:
        span = h - start_s
        if span <= s.tolerance_s * 0.5:
            cand.append(np.zeros(0, np.int64))
            continue
        ok = np.nonzero((times > 1e-9) & (times >= span / hi - 1e-9) & (times <= span / lo + 1e-9))[0]
        if ok.size > MAX_CANDIDATES:  # long cues: the beats nearest the base-tempo position bound the work
            ok = np.sort(ok[np.argsort(np.abs(times[ok] - span / base))[:MAX_CANDIDATES]])
        cand.append(ok)
    value: list[np.ndarray] = []
    back: list[np.ndarray] = []  # (j', index into cand[j']) per candidate; j' = -1: from the start
    for j in range(n):
        c = cand[j]
        if c.size == 0:
            value.append(np.zeros(0))
            back.append(np.zeros((0, 2), np.int64))
            continue
        k = (hits[j] - start_s) / times[c]
        v = s.catch_reward + bonus[c] - s.deviation_cost * np.abs(np.log(k / base))
        best_v, best_b = v.copy(), np.tile([-1, -1], (c.size, 1))
        for jp in range(max(0, j - 8), j):
            cp = cand[jp]
            if cp.size == 0 or hits[j] - hits[jp] <= s.tolerance_s:
                continue
            d_own = times[c][None, :] - times[cp][:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                kk = (hits[j] - hits[jp]) / d_own
            feasible = (d_own > 1e-9) & (kk >= lo - 1e-9) & (kk <= hi + 1e-9)
            if not feasible.any():
                continue
            step = s.catch_reward + bonus[c][None, :] - s.deviation_cost * np.abs(np.log(np.where(feasible, kk, base)
                                                                                          / base))
            total = np.where(feasible, value[jp][:, None] + step, -np.inf)
            arg = total.argmax(axis=0)
            tv = total[arg, np.arange(c.size)]
            better = tv > best_v
            best_v[better] = tv[better]
            best_b[better] = np.stack([np.full(better.sum(), jp), arg[better]], axis=1)
        value.append(best_v)
        back.append(best_b)
    best_score, end = 0.0, None
    for j in range(n):
        if value[j].size and value[j].max() > best_score:
            best_score, end = float(value[j].max()), (j, int(value[j].argmax()))
    knots: list[tuple[float, float]] = []
    while end is not None:
        j, i = end
        knots.append((float(times[cand[j][i]]), float(hits[j])))
        jp, ip = back[j][i]
        end = None if jp < 0 else (int(jp), int(ip))
    return best_score, knots[::-1]


def fit_theme(theme: Theme, duration_s: float, hits_s=(), settings: FitSettings | None = None) -> FittedTheme:
    """Place `theme` in a cue of `duration_s` seconds, catching `hits_s` (cue seconds) on strong beats."""
    s = settings or FitSettings()
    hits_all = check_hits(duration_s, hits_s)
    hits = hits_all[(hits_all > 0) & (hits_all < duration_s)]
    base = base_stretch(theme, duration_s, s)
    times, kinds, _ = _looped_grid(theme, duration_s / s.min_stretch + theme.length_s)
    bar_s = theme.period_s / max(1, len(theme.bar_starts_beats()) - 1)
    starts: list[tuple[float, float]] = [(0.0, 0.0)]  # (start, score for a hit the entrance itself catches)
    if hits.size:  # enter later so that a strong beat of the first bar lands on the first hit
        for t, kind in zip(times, kinds):
            o = hits[0] - base * t
            if t <= bar_s * s.max_lead_bars + 1e-9 and 0 < o <= bar_s * s.max_lead_bars * base:
                own_catch = s.catch_reward + s.kind_bonus[int(kind)] if t < 1e-9 else 0.0
                starts.append((float(o), own_catch))
    candidates = []
    for i, (o, own_catch) in enumerate(starts):
        score, knots = plan_knots(hits, o, base, s, times, kinds)
        if o > 0:
            # the cue opens without theme: worth it only to catch more or bend less
            score += own_catch - LATE_ENTRANCE_COST
        candidates.append((-round(score, 9), i, o, knots))  # best score first; ties: the earlier entrance
    candidates.sort(key=lambda c: c[:2])
    ft = None
    for _, _, start, knots in candidates:
        ft = _fitted(theme, duration_s, hits_all, start, knots, base, s, times, kinds)
        # a late entrance whose first bar does not fit before the cue end would play nothing of the theme (the
        # ending stops on the bar line before): catching a hit is no reason to drop the melody, so the next best
        if ft.notes or not theme.notes:
            break
    return ft


def _fitted(theme: Theme, duration_s: float, hits_all: np.ndarray, start: float, knots, base: float,
            s: FitSettings, times: np.ndarray, kinds: np.ndarray) -> FittedTheme:
    """The theme placed from `start` (cue s) through `knots` (own s, cue s), with its ending and its hits."""
    own = [0.0] + [k[0] for k in knots]
    cue = [start] + [k[1] for k in knots]
    lo, hi = max(s.min_stretch, base * (1 - s.max_change)), min(s.max_stretch, base * (1 + s.max_change))
    last_k = (cue[-1] - cue[-2]) / (own[-1] - own[-2]) if len(own) > 1 else base
    # ending: a bar line exactly at the cue end, if a stretch within bounds reaches one
    bars_own = _looped_bar_lines(theme, (duration_s - cue[-1]) / lo + own[-1] + theme.length_s)
    after = bars_own[bars_own > own[-1] + 1e-9]
    tail_k, end_own, ends_on_bar = last_k, None, False
    if after.size:
        ks = (duration_s - cue[-1]) / (after - own[-1])
        ok = (ks >= lo - 1e-9) & (ks <= hi + 1e-9)
        if ok.any():
            i = np.nonzero(ok)[0][np.argmin(np.abs(np.log(ks[ok] / last_k)))]
            tail_k, end_own, ends_on_bar = float(ks[i]), float(after[i]), True
    if end_own is None:  # no bar line reachable: stop at the last bar line, or in the bar when most of it fits
        own_end = own[-1] + (duration_s - cue[-1]) / tail_k
        before = bars_own[bars_own <= own_end + 1e-9]
        nxt = bars_own[bars_own > own_end + 1e-9]
        end_own = own_end
        if before.size and nxt.size and (own_end - before[-1]) < 0.5 * (nxt[0] - before[-1]):
            end_own = float(before[-1])
    own.append(own[-1] + (duration_s - cue[-1]) / tail_k)
    cue.append(duration_s)
    fitted = place_notes(theme, np.asarray(own), np.asarray(cue), tail_k, end_own, duration_s)
    notes, cc, cut, loops = fitted
    ft = FittedTheme(theme, float(duration_s), notes, cc, np.asarray(own), np.asarray(cue), tail_k, [],
                     ends_on_bar, s.fade_s if cut else 0.0, base, loops, s)
    ft.hits = _match_hits(ft, hits_all, times, kinds, s.tolerance_s)
    return ft


def _looped_bar_lines(theme: Theme, own_span_s: float) -> np.ndarray:
    bars = theme.beats_to_s(theme.bar_starts_beats())
    loops = max(1, int(math.ceil(own_span_s / theme.period_s)) + 1)
    return np.unique(np.concatenate([[0.0], bars] + [bars + r * theme.period_s for r in range(1, loops)]))


def place_notes(theme: Theme, own: np.ndarray, cue: np.ndarray, tail_k: float, end_own: float,
                duration_s: float):
    """Loop the theme's notes and CC through the time map; notes starting at or after `end_own` are dropped,
    notes sounding past the cue end are cut there (`cut` tells the caller to fade)."""
    def to_cue(x):
        x = np.asarray(x, np.float64)
        y = np.interp(x, own, cue)
        return np.where(x > own[-1], cue[-1] + (x - own[-1]) * tail_k, y)

    period, pickup = theme.period_s, theme.pickup_s
    loops = max(1, int(math.ceil((end_own - pickup) / period - 1e-9)))
    notes: list[Note] = []
    cc: list[tuple[float, int, int, int]] = []
    cut = False
    for r in range(loops):
        for n in theme.notes:
            if r > 0 and n.onset_s < pickup - 1e-9:
                continue
            on_own = n.onset_s + r * period
            if on_own >= end_own - 1e-9:
                continue
            on, off = (float(v) for v in to_cue([on_own, n.offset_s + r * period]))
            if on >= duration_s - 0.02:
                continue
            if off > duration_s + 1e-6:
                off, cut = duration_s, True
            notes.append(Note(on, off, n.pitch, n.velocity, n.channel, n.track))
        for t, ch, ctl, val in theme.cc:
            if (r == 0 or t >= pickup - 1e-9) and t + r * period < end_own:
                cc.append((float(to_cue(t + r * period)), ch, ctl, val))
    notes.sort(key=lambda n: (n.onset_s, n.track, n.channel, n.pitch))
    return notes, cc, cut, loops


def _match_hits(ft: FittedTheme, hits: np.ndarray, times: np.ndarray, kinds: np.ndarray,
                tol: float) -> list[HitMatch]:
    return match_hits(ft.own_to_cue(times), kinds, hits, ft.duration_s, tol)


def match_hits(cue_beats: np.ndarray, kinds: np.ndarray, hits: np.ndarray, duration_s: float, tol: float,
               kind_names: tuple[str, ...] = BEAT_KINDS) -> list[HitMatch]:
    """Each hit against the nearest strong beat in cue time: caught when within `tol` seconds."""
    out = []
    for h in hits:
        if cue_beats.size == 0:
            out.append(HitMatch(float(h), float("nan"), "none", float("inf"), False))
            continue
        i = int(np.argmin(np.abs(cue_beats - h)))
        err = float(cue_beats[i] - h)
        out.append(HitMatch(float(h), float(cue_beats[i]), kind_names[int(kinds[i])], err,
                            bool(abs(err) <= tol + 1e-9 and 0 <= h <= duration_s)))
    return out


__all__ = ["BEAT_PHRASE", "FitError", "FitSettings", "FittedTheme", "HitMatch", "fit_theme", "match_hits",
           "plan_knots"]
