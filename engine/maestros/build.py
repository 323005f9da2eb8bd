"""Rebuild the maestro library from the music21 corpus (public-domain scores shipped inside music21).

    python engine/maestros/build.py            # writes engine/maestros/<master>.json (a few minutes, one core)
    python engine/maestros/build.py --check    # rebuilds in memory and fails if the shipped files differ

For each master, THEMES_PER_MASTER excerpts of whole bars from the leading part (first violin, soprano/canto,
the tune) of the works below, in corpus order: each excerpt is `bars_for(meter)` bars long (about 16 quarter
beats), skipping excerpts whose leading part rests for more than half the time. What is stored per theme:
notes (onset and duration in quarter-note beats from the excerpt start, MIDI pitch, velocity), meter, the pickup
(beats before the first full bar), key, tempo and the corpus source. Ties are merged; a chord gives its top note.

Velocities: music21 scores carry dynamics marks (p, f, ...) but no performance, so a note's velocity is the
mark in force (music21's volume scalar x 127; mezzo-forte, 80, before any mark) plus a metrical accent of +6 on
downbeats and +3 on other strong beats: a plain performance rule (Friberg et al., "Director Musices") that keeps the
dynamics control from being flat. Tempo: the score's metronome mark or tempo word (music21's table) when there
is one, else the master's `default_bpm` below in counted beats (a half note in 2/2, a dotted quarter in 6/8), kept
within 40..200 quarter notes per minute (the corpus scores rarely carry a tempo).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
THEMES_PER_MASTER = 24
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Master:
    name: str  # the id users type: `--maestro bach`
    display: str
    era: str
    default_bpm: float  # counted beats per minute when the score has no tempo (see `beat_factor`)
    sources: tuple[str, ...]  # music21 corpus paths (an Opus yields several tunes)


LEADING_PART_NAMES = ("soprano", "canto", "violin i", "violino i", "violin 1", "cantus", "superius")
"""A part with one of these names leads; otherwise the part with the highest mean pitch."""


MASTERS: tuple[Master, ...] = (
    Master("bach", "Johann Sebastian Bach", "Baroque (chorales)", 72.0,
           tuple(f"bach/bwv{n}" for n in ("1.6", "10.7", "101.7", "102.7", "103.6", "104.6", "108.6", "11.6",
                                          "110.7", "111.6", "113.8", "114.7", "115.6", "116.6", "117.4", "119.9",
                                          "12.7", "120.6", "121.6", "122.6", "123.6", "124.6", "125.6", "126.6"))),
    Master("beethoven", "Ludwig van Beethoven", "Classical/Romantic (string quartets)", 108.0,
           ("beethoven/opus18no1/movement1.mxl", "beethoven/opus18no1/movement2.mxl",
            "beethoven/opus18no1/movement3.mxl", "beethoven/opus18no1/movement4.mxl", "beethoven/opus18no3",
            "beethoven/opus18no4", "beethoven/opus18no5", "beethoven/opus59no1/movement1",
            "beethoven/opus59no1/movement2", "beethoven/opus59no1/movement3", "beethoven/opus59no2/movement1",
            "beethoven/opus59no3/movement1", "beethoven/opus74")),
    Master("mozart", "Wolfgang Amadeus Mozart", "Classical (quartets, sonata)", 112.0,
           ("mozart/k155/movement1", "mozart/k155/movement2", "mozart/k155/movement3", "mozart/k156/movement1",
            "mozart/k156/movement2", "mozart/k156/movement3", "mozart/k458/movement1", "mozart/k458/movement2",
            "mozart/k458/movement3", "mozart/k458/movement4", "mozart/k545/movement1_exposition",
            "mozart/k80/movement1", "mozart/k80/movement2", "mozart/k80/movement3", "mozart/k80/movement4")),
    Master("haydn", "Joseph Haydn", "Classical (string quartets)", 108.0,
           ("haydn/opus1no1/movement1", "haydn/opus1no1/movement2", "haydn/opus1no1/movement3",
            "haydn/opus1no1/movement4", "haydn/opus1no1/movement5", "haydn/opus74no1/movement1",
            "haydn/opus74no1/movement2", "haydn/opus74no1/movement3", "haydn/opus74no1/movement4")),
    Master("monteverdi", "Claudio Monteverdi", "Renaissance/Baroque (madrigals, book 3)", 76.0,
           tuple(f"monteverdi/madrigal.3.{n}.mxl" for n in range(1, 21))),
    Master("folk", "German folk songs (Essen collection)", "Folk", 84.0, ("essenFolksong/altdeu10",)),
    Master("celtic", "Irish and Scottish fiddle tunes (Ryan's Mammoth Collection)", "Folk (dance tunes)", 104.0,
           tuple(f"ryansMammoth/{n}" for n in (
               "7thRegimentReel", "BarneyBrallagansJig", "BlueBirdReel", "BunchOfRosesReel", "ChorusJig",
               "CupOfTeaReel", "DublinBoysJig", "FireHimOutReel", "GlobeTrottersHornpipe", "HenriettaHornpipe",
               "IndeedThenYouShantJig", "JoeTanzysReel", "LadyCawdorsJig", "LittleDukesReel", "MarketGirlsJig",
               "MollRoesJig", "NedKendallsHornpipe", "OldTempleHouseReel", "ParnellAndIrelandJig",
               "PrinceAlbertsHornpipe", "RisingSunReel", "ShipsAreSailingReel", "StropTheRazorJig",
               "TopOfCorkRoadJig", "WhiteStarReel"))),
)


def bars_for(bar_beats: float) -> int:
    """Bars per theme, a phrase unit: 4 bars of 3 or more quarter beats (3/4, 4/4, 6/8, 4/2), else 8 (2/4, 3/8)."""
    return 4 if bar_beats >= 3 else 8


def beat_factor(numerator: int, denominator: int) -> float:
    """Quarter notes per counted beat: a half in 2/2 and 4/2, a dotted quarter in 6/8, 9/8, 12/8 and 3/8."""
    if denominator >= 8 and (numerator % 3 == 0):
        return 1.5
    return 4.0 / denominator if denominator <= 4 else 1.0


def _tempo_bpm(score, default: float) -> tuple[float, str]:
    from music21 import tempo

    for mark in score.flatten().getElementsByClass(tempo.TempoIndication):
        mm = mark if isinstance(mark, tempo.MetronomeMark) else None
        if isinstance(mark, tempo.TempoText):
            try:
                mm = mark.getMetronomeMark()
            except Exception:  # music21 knows no number for this word
                mm = None
        if mm is not None and mm.number:
            bpm = float(mm.getQuarterBPM() or mm.number)
            if 30 <= bpm <= 240:
                return bpm, f"score ({mark.text or mm.number})" if getattr(mark, "text", None) else "score"
    return default, "master default"


def _key_name(part, measures) -> str:
    from music21 import key

    for m in measures[:2]:
        for k in m.recurse().getElementsByClass(key.Key):
            return f"{k.tonic.name} {k.mode}"
    try:
        k = part.measures(measures[0].number, measures[-1].number).analyze("key")
        return f"{k.tonic.name} {k.mode}"
    except Exception:  # analysis of an excerpt with too few notes
        return "unknown"


def _leading_notes(measures, start_offset: float) -> list[list[float]]:
    """[onset_beats, duration_beats, pitch, dynamic scalar] of the top voice in the given measures."""
    from music21 import chord, dynamics, note, stream

    excerpt = stream.Part()
    for m in measures:
        excerpt.insert(m.offset - start_offset, m)
    flat = excerpt.stripTies(matchByPitch=True).flatten()
    out: list[list[float]] = []
    level = 80 / 127
    marks = sorted((float(d.offset), d.volumeScalar) for d in flat.getElementsByClass(dynamics.Dynamic)
                   if d.volumeScalar is not None)
    for n in flat.notes:
        if n.duration.isGrace or n.quarterLength <= 0:
            continue
        pitch = max(p.midi for p in n.pitches) if isinstance(n, chord.Chord) else n.pitch.midi
        onset = float(n.offset)
        for at, vol in marks:
            if at <= onset + 1e-6:
                level = vol
        if isinstance(n, (note.Note, chord.Chord)):
            if out and abs(out[-1][0] - onset) < 1e-6:  # two voices on one staff: keep the higher
                if pitch > out[-1][2]:
                    out[-1] = [onset, float(n.quarterLength), pitch, level]
                continue
            out.append([onset, float(n.quarterLength), pitch, level])
    return out


def _leading_part(score):
    parts = list(score.parts)
    for name in LEADING_PART_NAMES:
        for i, p in enumerate(parts):
            if (p.partName or "").strip().lower() == name:
                return i, p

    def mean_pitch(p) -> float:
        ps = [max(x.midi for x in n.pitches) for n in p.flatten().notes]
        return sum(ps) / len(ps) if ps else -1.0

    i = max(range(len(parts)), key=lambda k: mean_pitch(parts[k]))
    return i, parts[i]


def _themes_from_score(master: Master, score, source: str, want: int) -> list[dict]:
    part_index, part = _leading_part(score)
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        return []
    ts = measures[0].timeSignature or part.recurse().getElementsByClass("TimeSignature").first()
    if ts is None:
        return []
    bar_beats = float(ts.barDuration.quarterLength)
    pickup = 0.0
    if measures[0].duration.quarterLength < bar_beats - 1e-6:  # anacrusis
        pickup = float(measures[0].duration.quarterLength)
    n_bars = bars_for(bar_beats)
    bpm, bpm_from = _tempo_bpm(score, master.default_bpm * beat_factor(ts.numerator, ts.denominator))
    bpm = min(max(bpm, 40.0), 200.0)
    full = measures[1:] if pickup else measures
    themes = []
    for w in range(0, len(full) - n_bars + 1, n_bars):
        window = full[w:w + n_bars]
        lead = [measures[0]] if (pickup and w == 0) else []
        group = lead + window
        start = float(group[0].offset)
        notes = _leading_notes(group, start)
        length = (pickup if lead else 0.0) + n_bars * bar_beats
        sounding = sum(min(d, length - o) for o, d, _, _ in notes)
        if len(notes) < 6 or sounding < 0.5 * length:
            continue
        p0 = pickup if lead else 0.0
        for row in notes:  # velocity: dynamic level x 127 plus the metrical accent
            pos = (row[0] - p0) % bar_beats
            accent = 6 if abs(pos) < 1e-6 else 3 if _is_strong(pos, bar_beats, ts.numerator) else 0
            row[3] = int(max(1, min(127, round(row[3] * 127) + accent)))
        first, last = group[0].number, group[-1].number
        themes.append({
            "id": "",  # set by the caller once the master's list is final
            "work": _work_title(score, source),
            "bars": f"{first}-{last}",
            "key": _key_name(part, group),
            "meter": ts.ratioString,
            "pickup_beats": p0,
            "length_beats": length,
            "tempo_bpm": round(bpm, 2),
            "tempo_from": bpm_from,
            "source": f"music21 corpus: {source}, part {part_index + 1} ({part.partName or 'leading part'})",
            "notes": [[round(o, 4), round(d, 4), int(p), int(v)] for o, d, p, v in notes],
        })
        if len(themes) >= want:
            break
    return themes


def _is_strong(pos_beats: float, bar_beats: float, numerator: int) -> bool:
    """Mid-bar strong beat of duple/quadruple and compound meters (4/4 beat 3, 6/8 beat 4)."""
    return numerator % 2 == 0 and numerator > 2 and abs(pos_beats - bar_beats / 2) < 1e-6


def _work_title(score, source: str) -> str:
    md = score.metadata
    title = (md.title or md.movementName or "") if md is not None else ""
    title = title.strip()
    # music21 puts the file name (or a part name) where a score has no title: name the work from its corpus path
    if not title or title.endswith((".mxl", ".xml", ".krn", ".abc")) or title.lower() in LEADING_PART_NAMES:
        stem = source.split("/", 1)[-1]
        if stem.endswith((".mxl", ".krn")):
            stem = stem.rsplit(".", 1)[0]
        title = stem.replace("bwv", "BWV ").replace("/", " ").replace("movement", "mvt. ")
    return title


def build_master(master: Master) -> dict:
    from music21 import corpus, stream

    themes: list[dict] = []
    per_source = max(1, math.ceil(THEMES_PER_MASTER / len(master.sources)))
    for source in master.sources:
        if len(themes) >= THEMES_PER_MASTER:
            break
        parsed = corpus.parse(source)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        for score in scores:
            if len(themes) >= THEMES_PER_MASTER:
                break
            want = min(per_source, THEMES_PER_MASTER - len(themes)) if len(scores) == 1 else 1
            themes.extend(_themes_from_score(master, score, source, want))
        print(f"  {master.name}: {source} -> {len(themes)} themes", file=sys.stderr)
    for i, t in enumerate(themes, 1):
        t["id"] = f"{master.name}-{i:02d}"
    return {"format": FORMAT_VERSION, "master": master.name, "display": master.display, "era": master.era,
            "license": "public domain (music21 corpus)", "themes": themes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--only", nargs="*", help="masters to rebuild (default: all)")
    ap.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = ap.parse_args(argv)
    bad = 0
    for master in MASTERS:
        if args.only and master.name not in args.only:
            continue
        lib = build_master(master)
        text = json.dumps(lib, separators=(",", ":"), ensure_ascii=False) + "\n"
        path = args.out / f"{master.name}.json"
        if args.check:
            same = path.is_file() and path.read_text() == text
            print(f"{master.name}: {'same' if same else 'DIFFERS'}")
            bad += not same
        else:
            path.write_text(text)
            print(f"{master.name}: {len(lib['themes'])} themes -> {path} ({len(text) // 1024} KiB)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
