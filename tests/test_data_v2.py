"""Corpus v2: labels checked against the clip's own MIDI file, stems that sum to the mix, the hall, the build's
version guard. The MIDI is read back with mido / controls.midi, not through the arranger's own note lists."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
from filmscore.engine.controls.midi import controls_from_midi, notes_from_midi
from filmscore.engine.data.arrange_v2 import STEM_OF_TRACK, ClipSpecV2, arrange_clip_v2, beat_grid
from filmscore.engine.data.labels import (
    LABELS_SCHEMA,
    LabelsError,
    compute_labels,
    load_labels,
    melody_chroma,
    save_labels,
)
from filmscore.engine.data.music21_source import ParsedScore, PartNotes, Work
from filmscore.engine.data.orchestration_v2 import BY_NAME_V2, ORCHESTRATIONS_V2, STEMS

SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def _tune(sig=(4, 4), bars=6) -> ParsedScore:
    bar_ql = sig[0] * 4.0 / sig[1]
    n = int(bars * bar_ql)
    mel = np.array([[q, 1.0, SCALE[q % 8]] for q in range(n)], float)
    return ParsedScore(Work("folk", "folk/scale", "x.abc"), "scale", [PartNotes("m", "melody", mel)],
                       np.arange(0, n, bar_ql), float(n), 0, "major", None,
                       {"time_signatures": [[0.0, float(sig[0]), float(sig[1])]]})


def _chorale() -> ParsedScore:
    """Four voices, four bars of 4/4: a real polyphonic texture (inner parts on the harmony track, bass below)."""
    sop = np.array([[q, 1.0, 72 + (q % 3)] for q in range(16)], float)
    alto = np.array([[q * 2, 2.0, 64 + (q % 2)] for q in range(8)], float)
    ten = np.array([[q * 2, 2.0, 57 + (q % 2) * 2] for q in range(8)], float)
    bas = np.array([[q * 4, 4.0, 48 - (q % 2) * 5] for q in range(4)], float)
    parts = [PartNotes("s", "melody", sop), PartNotes("a", "accomp", alto), PartNotes("t", "accomp", ten),
             PartNotes("b", "accomp", bas)]
    return ParsedScore(Work("bach", "bach/x", "x.mxl"), "x", parts, np.arange(0, 16, 4.0), 16.0, 0, "major", None,
                       {"time_signatures": [[0.0, 4.0, 4.0]]})


def _labels(arr):
    n = int(round(arr.duration_s * 100))
    return compute_labels(arr, n, np.zeros(n, np.float32), None, "folk", "x")


def _midi_notes(arr, stem):
    """(onset s, offset s, pitch) of the stem's notes as read back from the MIDI file."""
    out = []
    for t in arr.stem_tracks(stem):
        if t.program is None or not len(arr.notes[t.name]):
            continue
        out += [(n.onset_s, n.offset_s, n.pitch) for n in notes_from_midi(arr.midi, track=t.index)]
    return np.asarray(out, float).reshape(-1, 3)


@pytest.mark.parametrize("orch", [o.name for o in ORCHESTRATIONS_V2])
def test_every_orchestration_writes_its_stems_and_pans(orch):
    arr = arrange_clip_v2(_tune(), ClipSpecV2(0, 6, 0, 100.0, 1.0, BY_NAME_V2[orch], 3))
    names = [t.name for t in arr.tracks]
    assert names[0] == "melody" and {STEM_OF_TRACK[n] for n in names} >= {"lead", "accompaniment"}
    for t in arr.tracks:  # track index points at the right MIDI track, with its pan
        track = arr.midi.tracks[t.index]
        assert track.name == t.name
        pans = [m.value for m in track if m.type == "control_change" and m.control == 10]
        assert pans == [int(round(64 + 63 * t.pan))]
    # the theme stays under the lead instrument's range rule and its notes are the written ones
    lead = arr.notes["melody"]
    assert np.array_equal(np.sort(lead[:, 2]), np.sort(np.asarray(SCALE * 3, float)[:24] + 12 * arr.lead_octave))


def test_beats_equal_the_midi_beats_in_4_4_and_6_8():
    arr = arrange_clip_v2(_tune(), ClipSpecV2(0, 6, 2, 96.0, 1.0, BY_NAME_V2["string_ostinato"], 1))
    arrays, scalars = _labels(arr)
    tpb = arr.midi.ticks_per_beat
    tempo = next(m.tempo for m in arr.midi.tracks[0] if m.type == "set_tempo")
    midi_beats = [mido.tick2second(k * tpb, tpb, tempo) for k in range(24)]  # 6 bars of 4 quarter notes
    np.testing.assert_allclose(arrays["beat_s"], midi_beats, atol=1e-9)
    assert arrays["beat_downbeat"].tolist() == [k % 4 == 0 for k in range(24)]
    assert np.flatnonzero(arrays["beat"]).tolist() == [int(np.floor(t * 100 + 1e-6)) for t in midi_beats]
    assert arrays["downbeat"].sum() == 6 and scalars["beat_bpm"] == pytest.approx(96.0)

    arr = arrange_clip_v2(_tune((6, 8), 4), ClipSpecV2(0, 4, 0, 120.0, 1.0, BY_NAME_V2["pastoral"], 1))
    arrays, scalars = _labels(arr)
    np.testing.assert_allclose(arrays["beat_s"], [mido.tick2second(k * 720, 480, mido.bpm2tempo(120.0))
                                                  for k in range(8)], atol=1e-9)
    assert scalars["beat_ql"] == 1.5 and scalars["beat_bpm"] == pytest.approx(80.0)


def test_a_pickup_bar_counts_its_beats_back_from_the_first_downbeat():
    p = _tune()
    p.bars = np.concatenate([[0.0], np.arange(1.0, 24.0, 4.0)])  # a one-beat pickup, then full bars
    beats, down = beat_grid(p, 0, 3)
    assert beats.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] and down.tolist() == [
        False, True, False, False, False, True, False, False, False]


@pytest.mark.parametrize("parsed", [_tune(), _chorale()], ids=["tune", "chorale"])
def test_chord_labels_equal_the_sounding_notes_of_the_midi(parsed):
    orch = BY_NAME_V2["choir_pad"]  # block chords + pad: every slot's triad sounds through it
    arr = arrange_clip_v2(parsed, ClipSpecV2(0, len(parsed.bars), 0, 90.0, 1.0, orch, 7))
    arrays, _ = _labels(arr)
    acc = _midi_notes(arr, "accompaniment")
    ends = np.append(arrays["beat_s"][1:], arr.duration_s)
    for k, (s, e) in enumerate(zip(arrays["beat_s"], ends)):
        inside = acc[(acc[:, 0] < e - 1e-6) & (acc[:, 1] > s + 1e-6)]
        want = np.zeros(12, np.uint8)
        want[inside[:, 2].astype(int) % 12] = 1
        assert np.array_equal(arrays["beat_sounding_pcs"][k], want), k
        at = acc[(acc[:, 0] <= s + 1e-6) & (acc[:, 1] > s + 1e-6)]
        assert arrays["beat_bass_pitch"][k] == (at[:, 2].min() if len(at) else 0)
        # the slot's triad (held by the pad) is among the sounding pitch classes, its root among them too
        assert np.all(arrays["beat_sounding_pcs"][k][arrays["beat_chord_pcs"][k] == 1] == 1)
        assert arrays["beat_chord_pcs"][k][arrays["beat_chord_root"][k]] == 1
    assert arrays["chord_chroma"].sum(axis=1).min() == 3  # a triad on every frame
    assert arrays["chord_chroma"][-1][parsed.tonic] == 1  # the last slot resolves to the tonic


def test_melody_bass_and_density_labels_equal_the_midi():
    arr = arrange_clip_v2(_tune(), ClipSpecV2(0, 6, -3, 110.0, 1.0, BY_NAME_V2["piano_theme"], 5))
    arrays, scalars = _labels(arr)
    n = arrays["melody_pitch"].size
    ref = controls_from_midi(arr.midi, track=1, n_frames=n).melody
    assert np.array_equal(melody_chroma(arrays["melody_pitch"]), ref)
    lead = notes_from_midi(arr.midi, track=1)
    assert arrays["melody_pitch"].max() == max(x.pitch for x in lead)
    assert scalars["lead"]["median"] == float(np.median([x.pitch for x in lead]))
    acc = _midi_notes(arr, "accompaniment")
    for f in (10, n // 3, n // 2, n - 10):
        t = (f + 0.5) / 100
        at = acc[(acc[:, 0] <= t) & (acc[:, 1] > t), 2]
        assert arrays["bass_pitch"][f] == (at.min() if len(at) else 0)
    # note density: onsets per second of the lead in a 1 s window
    f = n // 2
    on = np.array([x.onset_s for x in lead])
    assert arrays["density"][f, 0] == np.sum((np.floor(on * 100 + 1e-6) >= f - 50) & (np.floor(on * 100 + 1e-6) < f + 50))
    level = arr.dynamics.curve(100)
    assert np.array_equal(arrays["dynamics_level"], level[:n])


def test_labels_round_trip_and_refuse_another_schema(tmp_path):
    arr = arrange_clip_v2(_tune(), ClipSpecV2(0, 6, 0, 100.0, 1.0, BY_NAME_V2["epic"], 2))
    arrays, scalars = _labels(arr)
    save_labels(tmp_path, arrays, scalars)
    a2, s2 = load_labels(tmp_path)
    assert s2["schema"] == LABELS_SCHEMA and set(a2) == set(arrays)
    assert all(np.array_equal(a2[k], arrays[k]) for k in arrays)
    (tmp_path / "labels.json").write_text(json.dumps(dict(scalars, schema="filmscore.labels/0")))
    with pytest.raises(LabelsError, match="schema"):
        load_labels(tmp_path)


def test_hall_is_deterministic_unit_energy_and_decorrelated():
    from filmscore.engine.data.stems import hall_ir

    ir = hall_ir(24_000)
    assert ir.shape == (int(2.6 * 24_000), 2)
    np.testing.assert_allclose((ir.astype(np.float64) ** 2).sum(axis=0), 1.0, rtol=1e-5)
    assert abs(np.corrcoef(ir[:, 0], ir[:, 1])[0, 1]) < 0.1
    assert not ir[: int(0.007 * 24_000)].any()  # the pre-delay
    hall_ir.cache_clear()
    assert np.array_equal(hall_ir(24_000), ir)


def test_stems_midi_puts_each_stem_in_its_own_segment():
    from filmscore.engine.data.stems import STEM_GAP_S, stems_midi

    arr = arrange_clip_v2(_tune(), ClipSpecV2(0, 6, 0, 100.0, 1.0, BY_NAME_V2["epic"], 2))
    mid, starts = stems_midi(arr)
    for k, stem in enumerate(STEMS):
        assert starts[stem] == pytest.approx(k * (arr.duration_s + STEM_GAP_S), abs=1e-3)
        for t in arr.stem_tracks(stem):
            if t.program is None or not len(arr.notes[t.name]):
                continue
            got = sorted((round(n.onset_s - starts[stem], 6), n.pitch) for n in notes_from_midi(mid, channel=t.channel + 1))
            want = sorted((round(n.onset_s, 6), n.pitch) for n in notes_from_midi(arr.midi, track=t.index))
            assert got == want


@pytest.mark.slow
def test_render_clip_v2_stems_sum_to_the_mix(tmp_path):
    from filmscore.engine.audio.fluidsynth import SynthError, find_fluidsynth, find_soundfont

    try:
        find_fluidsynth(), find_soundfont()
    except SynthError as e:
        pytest.skip(f"FluidSynth or a GM SoundFont missing: {e}")
    import soundfile as sf
    from filmscore.engine.data.clip_v2 import render_clip_v2

    spec = ClipSpecV2(0, 4, 0, 120.0, 1.0, BY_NAME_V2["epic"], 11)
    rec = render_clip_v2(_tune(bars=4), spec, "scale.p0.c0", tmp_path, 24_000, find_soundfont())
    d = tmp_path / "clips/folk/scale.p0.c0"
    mix, sr = sf.read(d / "mix.flac", always_2d=True)
    assert sr == 24_000 and mix.shape == (int(round(rec["duration_s"] * 100)) * 240, 2)
    total = sum(sf.read(d / f"{s}.flac", always_2d=True)[0] for s in STEMS)
    assert np.abs(total - mix).max() * 32768 <= 3.0  # three PCM16 roundings
    assert rec["stems_present"]["lead"] and rec["stems_present"]["accompaniment"]
    assert np.corrcoef(mix[:, 0], mix[:, 1])[0, 1] < 0.99  # stereo, not two copies
    arrays, scalars = load_labels(d)
    assert scalars["sample_rate"] == 24_000 and arrays["melody_pitch"].size == mix.shape[0] // 240
    assert rec["melody_agreement_lead"] is not None and rec["melody_agreement_lead"] > 0.5
    # the same seed renders the same audio
    rec2 = render_clip_v2(_tune(bars=4), spec, "scale.p0.c0", tmp_path / "again", 24_000, find_soundfont())
    assert np.array_equal(sf.read(tmp_path / "again/clips/folk/scale.p0.c0/mix.flac")[0], sf.read(d / "mix.flac")[0])
    assert rec2["reverb_wet_db"] == rec["reverb_wet_db"]


def test_build_refuses_to_mix_versions_or_audio_settings(tmp_path):
    from filmscore.engine.data.build import AudioSpec, BuildConfig, check_corpus_config
    from filmscore.engine.data.index import CorpusError

    check_corpus_config(tmp_path, AudioSpec(2, 24_000, "/x/MuseScore_General.sf3"))
    check_corpus_config(tmp_path, AudioSpec(2, 24_000, "/x/MuseScore_General.sf3"))  # resume: same settings
    with pytest.raises(CorpusError, match="sample_rate=32000"):
        check_corpus_config(tmp_path, AudioSpec(2, 32_000, "/x/MuseScore_General.sf3"))
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "index.jsonl").write_text("")
    check_corpus_config(v1, AudioSpec(1))  # an old v1 corpus without corpus.json resumes
    with pytest.raises(CorpusError, match="holds v1 clips"):
        check_corpus_config(v1, AudioSpec(2, 24_000, "/x/f.sf3"))
    with pytest.raises(CorpusError, match="version 2 only"):
        BuildConfig(tmp_path, sample_rate=24_000)
    with pytest.raises(CorpusError, match="--version"):
        BuildConfig(tmp_path, version=3)


@pytest.mark.slow
def test_relabel_rebuilds_the_clip_and_rewrites_its_labels(tmp_path):
    from filmscore.engine.audio.fluidsynth import SynthError, find_fluidsynth, find_soundfont

    try:
        find_fluidsynth(), find_soundfont()
    except SynthError as e:
        pytest.skip(f"FluidSynth or a GM SoundFont missing: {e}")
    from filmscore.engine.data.arrange import base_qpm
    from filmscore.engine.data.build import Job, stable_seed, variant
    from filmscore.engine.data.clip_v2 import render_clip_v2
    from filmscore.engine.data.index import append_records
    from filmscore.engine.data.music21_source import ParseCache
    from filmscore.engine.data.relabel import relabel_corpus

    parsed = _tune(bars=4)
    cache = ParseCache(tmp_path / "parsed")
    cache.path(parsed.work).parent.mkdir(parents=True)
    cache.path(parsed.work).write_text(json.dumps(parsed.to_json()))
    transpose, scale, orch, _ = variant(Job(parsed.work, 0), len(ORCHESTRATIONS_V2))
    clip_id = "scale.p0.c0"
    spec = ClipSpecV2(0, 4, transpose, base_qpm(parsed) * scale, scale, ORCHESTRATIONS_V2[orch], stable_seed(clip_id))
    rec = render_clip_v2(parsed, spec, clip_id, tmp_path, 24_000, find_soundfont())
    append_records(tmp_path, [rec])
    d = tmp_path / "clips/folk" / clip_id
    before, scalars = load_labels(d)
    (d / "labels.npz").unlink()
    out = relabel_corpus(tmp_path)
    assert out["relabelled"] == 1 and out["n_failed"] == 0, out["failed"]
    after, scalars2 = load_labels(d)
    assert set(after) == set(before) and all(np.array_equal(after[k], before[k]) for k in before)
    assert scalars2 == scalars
    data = (d / "score.mid").read_bytes()
    assert data[-4:] == b"\x00\xff\x2f\x00"
    (d / "score.mid").write_bytes(data[:-4] + b"\x01\xff\x2f\x00")  # the last track ends one tick later
    out = relabel_corpus(tmp_path)
    assert out["relabelled"] == 0 and out["mismatched"] == [clip_id]


def _riff_list(kind: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    import struct

    body = kind + b"".join(c + struct.pack("<I", len(p)) + p + (b"\0" if len(p) & 1 else b"") for c, p in chunks)
    return b"LIST" + struct.pack("<I", len(body)) + body


def test_expand_sf3_decodes_samples_and_rewrites_the_sample_table(tmp_path):
    import io
    import struct

    import soundfile as sf
    from filmscore.engine.data.soundfont import SHDR, _lists, expand_sf3, expanded_sf2

    sr = 22_050
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr) * 32767).astype(np.int16)
    streams = []
    for k in range(2):
        buf = io.BytesIO()
        sf.write(buf, tone * (k + 1) // 2, sr, format="OGG", subtype="VORBIS")
        streams.append(buf.getvalue())
    smpl = streams[0] + streams[1]
    recs = [SHDR.pack(b"a".ljust(20, b"\0"), 0, len(streams[0]), 100, 5000, sr, 69, 0, 0, 1 | 0x10),
            SHDR.pack(b"b".ljust(20, b"\0"), len(streams[0]), len(smpl), 10, 20, sr, 69, 0, 0, 1 | 0x10),
            SHDR.pack(b"EOS".ljust(20, b"\0"), 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    pdta = [(b"phdr", b"P" * 38), (b"pbag", b"B" * 4), (b"shdr", b"".join(recs))]
    body = b"sfbk" + _riff_list(b"INFO", [(b"ifil", struct.pack("<HH", 3, 1)), (b"INAM", b"t\0")]) + \
        _riff_list(b"sdta", [(b"smpl", smpl)]) + _riff_list(b"pdta", pdta)
    src = tmp_path / "t.sf3"
    src.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)

    assert expand_sf3(src, tmp_path / "t.sf2") == 2
    out = (tmp_path / "t.sf2").read_bytes()
    lists = _lists(out, tmp_path / "t.sf2")
    assert dict(lists[b"INFO"])[b"ifil"] == struct.pack("<HH", 2, 4)
    assert dict(lists[b"pdta"])[b"phdr"] == b"P" * 38 and dict(lists[b"pdta"])[b"pbag"] == b"B" * 4
    pcm = np.frombuffer(dict(lists[b"sdta"])[b"smpl"], "<i2")
    new = [SHDR.unpack_from(dict(lists[b"pdta"])[b"shdr"], i) for i in range(0, 3 * SHDR.size, SHDR.size)]
    (_, s0, e0, ls0, le0, *_, t0), (_, s1, e1, ls1, le1, *_, t1) = new[:2]
    assert (s0, ls0, le0) == (0, 100, 5000) and t0 == 1 and t1 == 1  # the Vorbis flag is cleared
    assert s1 == e0 + 46 and (ls1, le1) == (s1 + 10, s1 + 20) and not pcm[e0:s1].any()
    assert e0 - s0 == len(tone) and len(pcm) == e1 + 46
    err = pcm[s0:e0].astype(float) - tone // 2
    assert np.sqrt(np.mean(err ** 2)) < 0.01 * np.sqrt(np.mean(tone.astype(float) ** 2))  # Vorbis is lossy
    assert new[2][0].startswith(b"EOS")
    # an .sf2 is used as it is; an .sf3 is expanded once into the cache
    assert expanded_sf2(tmp_path / "t.sf2", tmp_path / "cache") == tmp_path / "t.sf2"
    first = expanded_sf2(src, tmp_path / "cache")
    assert first.suffix == ".sf2" and first.read_bytes() == out
    assert expanded_sf2(src, tmp_path / "cache") == first


def test_mood_labels_are_the_cue_plans_mood_per_clip_and_shot():
    from filmscore.engine.plan import mood  # first-party: an import error fails the test, it is not skipped
    from filmscore.engine.data.labels import mood_labels
    from filmscore.engine.film.affect import EMOTION_COLUMNS
    from filmscore.engine.film.features import FilmFeatures

    n = 60  # 6 s at 10 frames/s; a cut at 2.5 s; the second shot moves fast
    emotion = np.full((n, len(EMOTION_COLUMNS)), 0.3, np.float32)
    emotion[25:, EMOTION_COLUMNS.index("motion")] = 0.9
    feats = FilmFeatures(np.zeros((n, 4), np.float32), emotion, np.zeros((n, 8), np.float32),
                         np.zeros(600, np.float32), (2.5,), 6.0, "test")
    got = mood_labels(feats, [2.5], 6.0)
    assert got["clip"] == mood.mood_of_film(feats, 0.0, 6.0).to_json()
    assert [(s["start_s"], s["end_s"]) for s in got["shots"]] == [(0.0, 2.5), (2.5, 6.0)]
    assert got["shots"][1]["energy"] > got["shots"][0]["energy"]
    assert {k: got["shots"][1][k] for k in ("energy", "valence", "tension")} == mood.mood_of_film(feats, 2.5, 6.0).to_json()


@pytest.mark.slow
def test_tiny_v2_build_resumes_and_checks(tmp_path):
    from filmscore.engine.audio.fluidsynth import SynthError, find_fluidsynth, find_soundfont

    try:
        find_fluidsynth(), find_soundfont()
    except SynthError as e:
        pytest.skip(f"FluidSynth or a GM SoundFont missing: {e}")
    from filmscore.engine.data.build import BuildConfig, build_corpus
    from filmscore.engine.data.index import read_index
    from filmscore.engine.data.render_check import check_corpus

    cfg = BuildConfig(tmp_path, hours=1.0, workers=1, composers=("bach",), tiny=True, version=2,
                      soundfont=str(find_soundfont()))
    s = build_corpus(cfg)
    assert s.new_clips == 2 and s.failed_jobs == 0, s.first_errors
    assert json.loads((tmp_path / "corpus.json").read_text())["sample_rate"] == 24_000
    again = build_corpus(cfg)
    assert again.new_clips == 0 and again.clips == 2
    recs = read_index(tmp_path)
    assert all(r["version"] == 2 and set(r["stems"]) == set(STEMS) for r in recs)
    out = check_corpus(tmp_path)
    assert out["clips"] == 2 and out["mix"]["sum_err_lsb_max"] <= 3.0
    assert out["mix"]["lr_corr"]["mean"] < 0.99 and out["mix"]["chord_iou"]["mean"] > 0.3
