"""`CuePlan` files: PLAN.json and PLAN.mid round trips (the MIDI reopens to the same plan; tracks named melody,
harmony, bass, percussion; tempo map and bars a DAW reads), controls at 100/s, damaged files refused; the rhythm
figure's density follows energy and hits get accents."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from filmscore.engine.controls.maestros import load_theme
from filmscore.engine.plan.compose import make_plan
from filmscore.engine.plan.mood import MoodOverrides, PlanError
from filmscore.engine.plan.plan import MIN_NOTE_S, SCHEMA, CuePlan
from filmscore.engine.plan.rhythm import onset_density


@pytest.fixture(scope="module")
def plan() -> CuePlan:
    return make_plan(24.0, theme=load_theme("bach", "5"), style="bach", hits_s=(3.2, 9.7, 15.1))


def test_json_round_trip_is_exact(plan, tmp_path):
    plan.save(tmp_path / "p.json")
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["schema"] == SCHEMA
    for k in ("tempo_bpm", "beats", "downbeats", "key", "mode", "chords", "hits", "mood", "melody", "sections"):
        assert k in d
    again = CuePlan.load(tmp_path / "p.json")
    assert again.to_json() == plan.to_json()


def test_midi_round_trip_reopens_to_the_same_plan(plan, tmp_path):
    plan.save(tmp_path / "p.mid")
    mid = mido.MidiFile(tmp_path / "p.mid")
    names = [next((m.name for m in t if m.type == "track_name"), None) for t in mid.tracks]
    assert names == ["tempo map", "melody", "harmony", "bass", "percussion"]
    back = CuePlan.load(tmp_path / "p.mid")
    inside = (plan.tempo.beats >= -1e-9)
    b0 = int(np.argmax(inside)) - 1
    assert np.abs(back.tempo.beats - plan.tempo.beats[b0:b0 + len(back.tempo.beats)]).max() < 1e-3
    downs = plan.tempo.downbeats[plan.tempo.downbeats > plan.tempo.beats[b0] - 1e-9]
    assert np.abs(back.tempo.downbeats[:5] - downs[:5]).max() < 1e-3
    for name in ("melody", "harmony", "bass", "percussion"):
        a, b = getattr(plan, name), getattr(back, name)
        assert [n.pitch for n in a] == [n.pitch for n in b]
        assert max(abs(x.onset_s - y.onset_s) for x, y in zip(a, b)) < 2e-3
    assert [c.symbol for c in back.chords] == [c.symbol for c in plan.chords]
    assert (back.key, back.mode, back.mood) == (plan.key, plan.mode, plan.mood)
    assert np.abs(back.dynamics_db - plan.dynamics_db).max() < 0.5
    assert len(back.hits) == len(plan.hits)
    # the same controls to the frame, as render --plan uses them
    ca, cb = plan.controls(), back.controls()
    assert (ca.melody.argmax(1)[ca.melody.sum(1) > 0] == cb.melody.argmax(1)[ca.melody.sum(1) > 0]).mean() > 0.99
    assert np.abs(ca.dynamics - cb.dynamics).max() < 0.5


def test_controls_follow_the_melody_and_dynamics(plan):
    c = plan.controls(2400)
    assert c.melody.shape == (2400, 12) and c.melody_present and c.dynamics_present
    on = [n for n in plan.melody if n.offset_s < 23.9][3]
    f = int((on.onset_s + on.offset_s) / 2 * 100)
    assert c.melody[f].argmax() == on.pitch % 12


def test_damaged_plans_are_refused(tmp_path, plan):
    d = plan.to_json()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**d, "schema": "other/9"}))
    with pytest.raises(PlanError, match="bad.json: not a filmscore.plan/1"):
        CuePlan.load(bad)
    bad.write_text(json.dumps({**d, "beats": [1.0, 0.5]}))
    with pytest.raises(PlanError, match="increasing"):
        CuePlan.load(bad)
    bad.write_text(json.dumps({**d, "mode": "dorian"}))
    with pytest.raises(PlanError, match="major or minor"):
        CuePlan.load(bad)
    plain = tmp_path / "plain.mid"
    m = mido.MidiFile()
    m.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, time=0), mido.Message("note_off", note=60,
                                                                                           time=480)]))
    m.save(plain)
    with pytest.raises(PlanError, match="header"):
        CuePlan.load(plain)
    with pytest.raises(PlanError, match="no such plan"):
        CuePlan.load(tmp_path / "none.json")


def test_rhythm_density_follows_energy_and_hits_get_accents():
    calm = make_plan(16.0, overrides=MoodOverrides(energy=0.1, tempo_bpm=100), hits_s=(4.0,))
    busy = make_plan(16.0, overrides=MoodOverrides(energy=0.9, tempo_bpm=100), hits_s=(4.0,))
    d_calm = onset_density(calm.harmony + calm.percussion, 0, 16)
    d_busy = onset_density(busy.harmony + busy.percussion, 0, 16)
    assert d_busy > 2 * d_calm
    for p in (calm, busy):
        crash = [n for n in p.percussion if n.pitch == 49]
        assert any(abs(n.onset_s - 4.0) <= 0.025 and n.velocity >= 110 for n in crash)


@pytest.mark.parametrize("seed", [5, 24, 50])  # cues whose chord slivers at the start or end once gave
def test_a_plan_with_cuts_near_its_ends_saves_and_loads(seed):  # notes ending before they start
    r = np.random.default_rng(seed)
    d = float(r.uniform(8, 40))
    hits = sorted(float(x) for x in r.uniform(0.5, d - 0.5, int(r.integers(1, 5))))
    plan = make_plan(d, hits_s=hits, overrides=MoodOverrides(energy=float(r.uniform(0.1, 0.9))), seed=seed)
    back = CuePlan.from_json(json.loads(json.dumps(plan.to_json())))
    for track in ("melody", "harmony", "bass", "percussion"):
        assert all(n.offset_s - n.onset_s >= MIN_NOTE_S for n in getattr(plan, track)), track
        assert len(getattr(back, track)) == len(getattr(plan, track)), track
