"""Harmony: a melody-only theme harmonised in its master's style puts a chord tone under >= 80 % of strong-beat
melody notes, and its progression is likelier under the master's chain than shuffled orders of the same chords; a
theme with its own accompaniment keeps its chords; the shipped statistics cover every master."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from filmscore.engine.controls.maestros import master_names, masters
from filmscore.engine.controls.theme import theme_from_midi
from filmscore.engine.plan.bass import roots_share
from filmscore.engine.plan.compose import make_plan
from filmscore.engine.plan.harmony import estimate_key, load_style, strong_beat_chord_tone_share, style_names
from filmscore.engine.plan.mood import MoodOverrides


def test_statistics_ship_for_every_master_and_the_pooled_style():
    assert set(master_names()) | {"all"} <= set(style_names())
    s = load_style("bach", "major")
    assert s.log_trans.shape == (6, 6) and np.allclose(np.exp(s.log_trans).sum(axis=1), 1)


@pytest.mark.parametrize("master", ["bach", "mozart", "folk"])
def test_melody_only_themes_harmonised_in_style(master):
    shares, ll, ll_shuffled = [], [], []
    rng = np.random.default_rng(0)
    info = next(m for m in masters() if m.name == master)
    for t in info.themes[:8]:
        from filmscore.engine.controls.maestros import load_theme

        plan = make_plan(20.0, theme=load_theme(master, t.id), style=master, hits_s=(5.0, 11.0),
                         overrides=MoodOverrides(energy=0.5))
        mel = [(n.onset_s, n.offset_s, n.pitch) for n in plan.melody]
        shares.append(strong_beat_chord_tone_share(mel, plan.chords, plan.tempo.strong_beats()))
        style = load_style(master, plan.mode)
        deg = [c.degree for c in plan.chords]
        ll.append(style.sequence_loglik(deg))
        ll_shuffled.append(np.mean([style.sequence_loglik(rng.permutation(deg)) for _ in range(20)]))
        assert roots_share(plan.bass, plan.chords) == 1.0
    share = float(np.nanmean(shares))
    print(f"{master}: chord tone under strong-beat melody notes {share:.3f} (min {np.nanmin(shares):.3f}); "
          f"progression log-lik/chord {np.mean(ll):.3f} vs shuffled {np.mean(ll_shuffled):.3f}")
    assert share >= 0.8
    assert np.mean(ll) > np.mean(ll_shuffled)


def _two_part_midi() -> bytes:
    """C major melody over a written accompaniment: C | F | G | C (one chord per bar, 4/4, 120 BPM)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mel, acc = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [mel, acc]
    for pitch in (72, 76, 79, 76, 77, 81, 77, 72, 74, 79, 74, 71, 72, 76, 72, 72):
        mel += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                mido.Message("note_off", note=pitch, velocity=0, time=480)]
    for chord in ((48, 52, 55), (53, 57, 60), (55, 59, 62), (48, 52, 55)):
        acc += [mido.Message("note_on", channel=1, note=p, velocity=70, time=0) for p in chord]
        acc += [mido.Message("note_off", channel=1, note=p, velocity=0, time=1920 if i == 0 else 0)
                for i, p in enumerate(chord)]
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_a_theme_with_parts_keeps_its_own_chords():
    theme = theme_from_midi(_two_part_midi())
    plan = make_plan(8.0, theme=theme, overrides=MoodOverrides(tempo_bpm=120, energy=0.2))
    assert plan.choices["harmony_from"] == "theme parts"
    assert [c.symbol for c in plan.chords][:4] == ["C", "F", "G", "C"]
    assert min(n.pitch for n in plan.melody) >= 71  # the melody part is the upper one
    assert {n.pitch for n in plan.harmony} <= {48, 52, 55, 53, 57, 60, 59, 62}  # its own accompaniment


def test_key_finding_and_key_override_transposes_a_theme():
    c_major = [(i, i + 1, p) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60))]
    assert estimate_key(c_major) == (0, "major")
    theme = theme_from_midi(_two_part_midi())
    plan = make_plan(8.0, theme=theme, overrides=MoodOverrides(key="D major", tempo_bpm=120, energy=0.2))
    assert plan.key == "D" and [c.symbol for c in plan.chords][:2] == ["D", "G"]


def test_without_a_theme_a_progression_and_melody_from_the_style():
    plan = make_plan(20.0, style="bach", seed=3, overrides=MoodOverrides(valence=0.2))
    assert plan.mode == "minor" and plan.melody and plan.chords[-1].degree == 0  # ends on the tonic
    mel = [(n.onset_s, n.offset_s, n.pitch) for n in plan.melody]
    assert strong_beat_chord_tone_share(mel, plan.chords, plan.tempo.strong_beats()) >= 0.8
    again = make_plan(20.0, style="bach", seed=3, overrides=MoodOverrides(valence=0.2))
    assert [n.pitch for n in again.melody] == [n.pitch for n in plan.melody]  # seeded
