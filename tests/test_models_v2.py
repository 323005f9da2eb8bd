"""Bundle v2 models: the ControlsV2 layout, group dropout, the global conditions, the v2 bundle files and the v2
sampler on a tiny random-weight bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2
from filmscore.engine.bundle_v2 import load_bundle_v2
from filmscore.engine.errors import BundleError
from filmscore.engine.models import GlobalConditionV2
from filmscore.engine.models.controls_v2 import (CONTROL_CHANNELS_V2, CONTROL_GROUPS_V2, ControlsV2, ControlsV2Error,
                                                 drop_groups)
from filmscore.engine.models.global_condition import UnknownMasterError
from filmscore.engine.pipeline_v2 import FilmScorePipelineV2, GuidanceV2


def _controls(n: int = 200) -> ControlsV2:
    melody = np.zeros(n, np.int16)
    melody[10:60] = 69  # A4
    melody[60:100] = 48  # C3
    chroma = np.zeros((n, 12), np.uint8)
    chroma[:, [0, 4, 7]] = 1
    bass = np.full(n, 36, np.int16)
    beat = np.zeros(n, np.uint8)
    beat[[k for k in (20, 70, 120) if k < n]] = 1
    down = np.zeros(n, np.uint8)
    down[20] = 1
    dyn = np.linspace(-40, -20, n).astype(np.float32)
    return ControlsV2(n, melody, dyn, chroma, bass, beat, down)


def test_layout_rows_hold_what_the_docstring_says():
    x = _controls().to_model_input()
    assert x.shape == (CONTROL_CHANNELS_V2, 200)
    assert x[9, 30] == 1 and x[:12, 30].sum() == 1  # A = pitch class 9
    assert x[12, 30] == pytest.approx(9 / 12)  # A4 is 9 semitones above middle C
    assert x[12, 80] == pytest.approx(-1.0) and x[0, 80] == 1  # C3: an octave below, pitch class C
    assert x[:13, 5].sum() == 0 and x[13].min() == 1  # a rest: no pitch, melody still present
    assert x[14].mean() == pytest.approx(0.0, abs=1e-6) and x[14, -1] > x[14, 0] and x[15].min() == 1
    assert list(np.nonzero(x[16:28, 0])[0]) == [0, 4, 7] and x[28, 0] == 1 and x[40, 0] == pytest.approx(-1.0)
    assert x[42, 20] == 1 and x[42, 70] == 1 and 0 < x[42, 21] < 1 and x[42, 45] == 0  # bumps on the beats
    assert x[43, 20] == 1 and x[43, 70] == 0 and x[44].min() == 1


def test_absent_groups_are_zero_and_groups_partition_the_rows():
    rows = sorted(r for s in CONTROL_GROUPS_V2.values() for r in range(s.start, s.stop))
    assert rows == list(range(CONTROL_CHANNELS_V2))
    full = _controls().to_model_input()
    for group, rows in CONTROL_GROUPS_V2.items():
        x = _controls().without(group).to_model_input()
        assert not x[rows].any()
        others = np.ones(CONTROL_CHANNELS_V2, bool)
        others[rows] = False
        np.testing.assert_array_equal(x[others], full[others])
    with pytest.raises(ControlsV2Error, match="unknown control group"):
        _controls().without("tempo")
    with pytest.raises(ControlsV2Error, match="melody_pitch"):
        ControlsV2(10, melody_pitch=np.zeros(9))


def test_fit_length_pads_with_none_and_holds_dynamics():
    c = _controls(100).fit_length(150)
    assert c.n_frames == 150 and (c.melody_pitch[100:] == 0).all() and (c.beat[100:] == 0).all()
    assert (c.dynamics_db[100:] == c.dynamics_db[99]).all()
    assert _controls(100).fit_length(40).chord_chroma.shape == (40, 12)


def test_drop_groups_zeroes_each_rows_own_groups_only():
    x = torch.from_numpy(np.stack([_controls().to_model_input()] * 3))
    keep = {"melody": torch.tensor([False, True, True]), "rhythm": torch.tensor([True, False, True])}
    y = drop_groups(x, keep)
    m, r = CONTROL_GROUPS_V2["melody"], CONTROL_GROUPS_V2["rhythm"]
    assert not y[0, m].any() and torch.equal(y[0, r], x[0, r])
    assert not y[1, r].any() and torch.equal(y[1, m], x[1, m])
    assert torch.equal(y[2], x[2]) and torch.equal(x[0, m], torch.from_numpy(_controls().to_model_input()[m]))


def test_global_condition_null_mood_and_style_rows():
    torch.manual_seed(0)
    g = GlobalConditionV2(masters=("bach", "folk"), token_dim=8, hidden_dim=4)
    assert g.master_index(None) == 0 and g.master_index("folk") == 2
    with pytest.raises(UnknownMasterError, match="knows bach, folk"):
        g.master_index("mahler")
    mood = torch.tensor([[0.9, 0.1, 0.8], [0.1, 0.9, 0.2]])
    off = g(mood, torch.tensor([False, False]), torch.tensor([1, 2]))
    assert torch.equal(off[0, 0], off[1, 0])  # no mood: the same null token whatever the values
    on = g(mood, torch.tensor([True, True]), torch.tensor([1, 2]))
    assert not torch.allclose(on[0, 0], on[1, 0]) and not torch.allclose(on[0, 1], on[1, 1])


@pytest.fixture(scope="module")
def tiny_v2(tmp_path_factory):
    return load_bundle_v2(make_tiny_bundle_v2(tmp_path_factory.mktemp("b2") / "bundle"))


def test_bundle_files_round_trip_and_refuse_the_other_schema(tiny_v2, tmp_path):
    b = tiny_v2
    assert set(b.models) == {"vae", "unet", "controlnet", "film_head", "global_cond", "vocoder"}
    assert b.stems == ("lead", "accompaniment", "percussion") and b.mel_config.sample_rate == 24000
    assert b.mel_config.hop_length == 240 and b.mel_config.f_max == 12000
    again = load_bundle_v2(b.path)
    assert again.hash == b.hash
    with pytest.raises(BundleError, match="schema"):
        load_bundle(b.path)  # v1's loader does not misread a v2 bundle
    own = make_tiny_bundle_v2(tmp_path / "own")
    (own / "vae.safetensors").write_bytes(b"x" * 10)
    with pytest.raises(BundleError, match="sha256"):
        load_bundle_v2(own)


def test_bundle_v2_refuses_a_v1_bundle():
    from filmscore.engine.bundle_manifest import DEFAULT_BUNDLE_DIR

    if not (DEFAULT_BUNDLE_DIR / "bundle.json").is_file():
        pytest.skip("no default bundle installed")
    with pytest.raises(BundleError, match="filmscore.bundle/2"):
        load_bundle_v2(DEFAULT_BUNDLE_DIR)


def test_the_stems_waves_can_live_in_a_working_file(tiny_v2, tmp_path):
    """`waves_to`: the vocoder writes the stems' waves into a nameless file there (a render's way: memory flat in the
    cue's length); the mids read from it are the in-memory ones, sample for sample, and so is the stereo mix."""
    from filmscore.engine.audio.spill import SpillColumn

    pipe = FilmScorePipelineV2(tiny_v2)
    run = dict(n_samples=24000 * 3 + 17, controls=_controls(300), master="bach", steps=2, threads=2)
    here, there = pipe(**run), pipe(**run, waves_to=tmp_path)
    assert all(isinstance(v, SpillColumn) for v in there.mids.values())
    for s in here.mids:
        np.testing.assert_array_equal(np.asarray(there.mids[s]), here.mids[s])
    np.testing.assert_array_equal(there.mix, here.mix)
    assert list(tmp_path.iterdir()) == []  # the file has no name: nothing is left behind


def test_sampler_renders_stems_that_sum_to_the_mix(tiny_v2):
    pipe = FilmScorePipelineV2(tiny_v2)
    n = 24000 * 2
    out = pipe(n_samples=n, controls=_controls(200), mood=np.array([0.8, 0.2, 0.9]), master="bach", steps=2,
               threads=1, keep_mel=True)
    assert out.sample_rate == 24000 and out.mix.shape == (n, 2) and out.log_mels.shape[:2] == (3, 32)
    total = sum(out.stems.values())
    np.testing.assert_allclose(total, out.mix, atol=1e-6)
    for s, st in out.stems.items():
        assert st.shape == (n, 2) and np.isfinite(st).all()
        np.testing.assert_allclose((st[:, 0] + st[:, 1]) / 2, out.mids[s], atol=1e-6)  # mid = what the model made
    assert np.corrcoef(out.mix[:, 0], out.mix[:, 1])[0, 1] < 0.999  # the side signal makes it stereo
    assert out.info["passes"] == ["all", "style", "melody", "harmony", "rhythm"]  # scales != 1 cost a pass
    again = pipe(n_samples=n, controls=_controls(200), mood=np.array([0.8, 0.2, 0.9]), master="bach", steps=2,
                 threads=2)
    np.testing.assert_array_equal(again.mix, out.mix)  # same seed, any thread count: the same audio
    assert again.log_mels is None  # kept only when asked (a render needs none: memory flat in the cue's length)
    no_melody = pipe(n_samples=n, controls=_controls(200).without("melody"), mood=np.array([0.8, 0.2, 0.9]),
                     master="bach", steps=2, threads=1)
    assert not np.allclose(no_melody.mids["lead"], out.mids["lead"])
    assert no_melody.info["passes"] == ["all", "style", "harmony", "rhythm"]
    plain = pipe(n_samples=n, steps=2, threads=1, guidance=GuidanceV2(picture=1, style=1, melody=1, harmony=1,
                                                                       rhythm=1))
    assert plain.info["passes"] == ["all"] and plain.info["controls"] == {g: False for g in CONTROL_GROUPS_V2}
    with pytest.raises(UnknownMasterError):
        pipe(n_samples=n, master="mahler", steps=1, threads=1)


def test_sampler_long_cue_uses_windows(tiny_v2):
    pipe = FilmScorePipelineV2(tiny_v2)
    n = 24000 * 14  # longer than one 10.24 s window
    out = pipe(n_samples=n, controls=_controls(1400), steps=1, threads=1)
    assert out.info["n_windows"] == 2 and out.mix.shape == (n, 2)
    manifest = json.loads((tiny_v2.path / "bundle.json").read_text())
    assert manifest["controls"]["channels"] == CONTROL_CHANNELS_V2


def test_controls_from_a_cue_plan_follow_the_label_rules():
    from types import SimpleNamespace

    from filmscore.engine.controls.midi import Note
    from filmscore.engine.pipeline_v2 import controls_from_plan

    def note(a, b, p):
        return Note(a, b, p, 90, 1, 1)

    plan = SimpleNamespace(
        duration_s=2.0, melody=[note(0.0, 0.5, 72), note(0.5, 1.0, 74)], harmony=[note(0.0, 2.0, 52)],
        bass=[note(0.0, 1.0, 36), note(1.0, 2.0, 43)],
        chords=[SimpleNamespace(time_s=0.0, end_s=1.0, pitch_classes=(0, 4, 7)),
                SimpleNamespace(time_s=1.0, end_s=2.0, pitch_classes=(7, 11, 2))],
        tempo=SimpleNamespace(beats=np.array([-0.5, 0.0, 0.5, 1.0, 1.5]), downbeats=np.array([0.0, 1.0])),
        dynamics_db=np.linspace(-30, -20, 20), mood=SimpleNamespace(energy=0.8, valence=0.2, tension=0.7))
    c, mood = controls_from_plan(plan)
    assert c.n_frames == 200 and mood.tolist() == pytest.approx([0.8, 0.2, 0.7])
    assert c.melody_pitch[10] == 72 and c.melody_pitch[60] == 74 and c.melody_pitch[150] == 0
    assert c.bass_pitch[50] == 36 and c.bass_pitch[150] == 43
    assert list(np.nonzero(c.chord_chroma[50])[0]) == [0, 4, 7]
    assert list(np.nonzero(c.chord_chroma[150])[0]) == [2, 7, 11]
    assert list(np.nonzero(c.beat)[0]) == [0, 50, 100, 150] and list(np.nonzero(c.downbeat)[0]) == [0, 100]
    assert c.dynamics_db[0] < c.dynamics_db[-1] and all(c.present.values())
    x = c.to_model_input()
    assert x[12, 10] == pytest.approx(1.0)  # C5: one octave above middle C, the register the plan wrote


def test_controls_from_a_theme_keep_its_written_register(tmp_path):
    import mido

    from filmscore.engine.pipeline_v2 import controls_from_theme

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000))  # 120 bpm: a beat is 0.5 s
    for pitch, vel in ((55, 40), (79, 110)):  # G3 then G5: two octaves apart, same pitch class
        tr.append(mido.Message("note_on", note=pitch, velocity=vel, time=0))
        tr.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    mid.save(tmp_path / "theme.mid")
    c = controls_from_theme(tmp_path / "theme.mid")
    assert c.present == {"melody": True, "dynamics": True, "harmony": False, "rhythm": False}
    assert c.melody_pitch[20] == 55 and c.melody_pitch[70] == 79
    x = c.to_model_input()
    assert x[7, 20] == x[7, 70] == 1  # pitch class G both times ...
    assert x[12, 70] - x[12, 20] == pytest.approx(2.0)  # ... two octaves apart in the register row
    assert c.dynamics_db[70] > c.dynamics_db[20]
