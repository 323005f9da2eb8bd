"""Rendering with a v2 bundle (engine/render_v2.py): the bundle's schema picks the engine, `stems` writes the stems
beside the stereo mix and they sum to the delivered mix after mastering (one set of gains for all, the limiter's
included: engine/audio/stem_mastering.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from filmscore.engine.audio.loudness import normalize_loudness
from filmscore.engine.audio.stem_mastering import master_stems
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2
from filmscore.engine.errors import RequestError
from filmscore.engine.render import render_cue
from filmscore.engine.request import RenderRequest
from filmscore.engine.stereo_v2 import StereoStems, place_stems

STEMS = ("lead", "accompaniment", "percussion")
LSB24 = 2.0 ** -23


@pytest.fixture(scope="module")
def bundle_v2(tmp_path_factory) -> Path:
    return make_tiny_bundle_v2(tmp_path_factory.mktemp("b2") / "bundle")


GAINS = {"lead": 0.3, "accompaniment": 0.6, "percussion": 0.3}


def _peaky_mids(sr: int, seconds: float = 3.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Three mono stems: a tone, a chord and clicks whose peaks make the mix's true peak pass the ceiling once it
    is brought to -23 LUFS (so the limiter acts)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    lead = 0.02 * np.sin(2 * np.pi * 440 * t)
    acc = 0.01 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t))
    perc = np.zeros_like(t)
    for k in range(0, len(t), sr // 2):
        perc[k:k + 200] += 0.9 * rng.standard_normal(min(200, len(t) - k)) * np.exp(-np.arange(min(200, len(t) - k)) / 40)
    return {"lead": lead.astype(np.float32), "accompaniment": acc.astype(np.float32),
            "percussion": perc.astype(np.float32)}


def _whole(mastered) -> np.ndarray:
    return np.concatenate(list(mastered.blocks()))


def test_stems_get_the_mix_gains_limiter_included():
    sr = 48_000
    mids = _peaky_mids(sr)
    stems, mix = place_stems(mids, GAINS, sr)
    with master_stems(StereoStems(mids, GAINS, sr), STEMS, sr, sr, len(mix), -23.0) as m:
        out, out_stems, report = _whole(m.mix), {k: _whole(v) for k, v in m.stems.items()}, m.report
    assert report["limited"]  # the clicks need the limiter at -23 LUFS
    # the mix is mastered exactly as a cue on its own (v1's normalisation), the stems riding along
    ref, ref_report = normalize_loudness(mix, sr, -23.0)
    assert np.array_equal(out, ref) and report == ref_report.to_json()
    assert abs(report["integrated_lufs"] + 23.0) < 0.1 and report["true_peak_dbtp"] <= -1.0
    # the stems still sum to it, and each kept its own level (a stem normalised alone would be at -23 LUFS)
    assert np.max(np.abs(sum(out_stems.values()) - out)) < 1e-6
    def rms(x):
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    # the stems keep their balance (two steady tones under one gain curve), which normalising each would undo
    assert rms(out_stems["lead"]) / rms(out_stems["accompaniment"]) == pytest.approx(
        rms(stems["lead"]) / rms(stems["accompaniment"]), rel=0.01)


def test_master_stems_resamples_all_alike_and_only_the_stems_asked_for(tmp_path):
    mids = _peaky_mids(24_000, 2.0, seed=1)
    placed = StereoStems(mids, GAINS, 24_000)
    with master_stems(placed, STEMS, 24_000, 48_000, 96_001, -23.0, folder=tmp_path) as m:
        out, out_stems = _whole(m.mix), {k: _whole(v) for k, v in m.stems.items()}
        assert m.report["limited"] is True
    assert out.shape == (96_001, 2) and all(s.shape == (96_001, 2) for s in out_stems.values())
    assert np.max(np.abs(sum(out_stems.values()) - out)) < 1e-6
    with master_stems(placed, ("lead",), 24_000, 48_000, 96_001, -23.0, folder=tmp_path) as m:
        assert set(m.stems) == {"lead"} and np.array_equal(_whole(m.mix), out)
        assert np.array_equal(_whole(m.stems["lead"]), out_stems["lead"])
    assert list(tmp_path.iterdir()) == []  # the working files have no names and are gone


def test_master_stems_on_workers_gives_the_same_samples(tmp_path, monkeypatch):
    # a render hands master_stems its stage pool: placement blocks, resampling pieces, loudness units at once
    import filmscore.engine.audio.io as audio_io
    import filmscore.engine.audio.loudness as ld
    import filmscore.engine.audio.stem_mastering as sm
    from filmscore.engine.threads import model_threads

    for module, name, value in ((sm, "CHUNK", 20_000), (ld, "CHUNK", 20_000), (audio_io, "RESAMPLE_CHUNK", 8_000)):
        monkeypatch.setattr(module, name, value)  # many units in a 2 s cue
    placed = StereoStems(_peaky_mids(24_000, 2.0, seed=3), GAINS, 24_000)

    def deliver(workers) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
        with master_stems(placed, STEMS, 24_000, 48_000, 96_001, -23.0, folder=tmp_path, workers=workers) as m:
            return _whole(m.mix), {k: _whole(v) for k, v in m.stems.items()}, m.report

    mix, stems, report = deliver(ld.in_turn)
    units = []
    with model_threads(3) as pool:
        def counted(fn, items):
            items = list(items)
            units.append(len(items))
            return pool.map(fn, items)

        mix_w, stems_w, report_w = deliver(counted)
    assert report["limited"] and report_w == report and np.array_equal(mix_w, mix)
    assert all(np.array_equal(stems_w[k], stems[k]) for k in STEMS)
    assert units[0] == -(-48_000 // 20_000) and units.count(-(-48_000 // 8_000)) == 4  # placed; 4 signals resampled


def test_the_mix_is_placed_in_one_piece(monkeypatch):
    import scipy.signal

    mids = _peaky_mids(24_000, 2.0, seed=2)
    placed = StereoStems(mids, GAINS, 24_000)
    a, b = 9_001, 30_000  # off any block grid, with filter history before it
    rows, mix = placed.rows(a, b), placed.mix_rows(a, b)
    assert np.max(np.abs(sum(rows.values()) - mix)) < 1e-12 * np.max(np.abs(mix))  # the stems' sum, to rounding
    # one convolution for the mix's side, whatever the number of stems (the side filter is linear)
    calls = []
    fftconvolve = scipy.signal.fftconvolve
    monkeypatch.setattr(scipy.signal, "fftconvolve", lambda x, d: calls.append(1) or fftconvolve(x, d))
    [_ for _ in placed.blocks(16_000, ())]
    assert len(calls) == -(-placed.n // 16_000)


def test_render_v2_stems_sum_to_the_mix(bundle_v2, tmp_path):
    out = tmp_path / "cue.wav"
    res = render_cue(RenderRequest(output=out, duration_s=3.0, seed=3, steps=3, bundle=bundle_v2, stems=True))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["bundle"]["schema"] == "filmscore.bundle/2"
    assert set(meta["stems"]) == set(STEMS) and res.metadata["stems"] == meta["stems"]
    mix, sr = sf.read(str(out))
    assert sr == 48_000 and mix.shape == (144_000, 2) and sf.info(str(out)).subtype == "PCM_24"
    total = np.zeros_like(mix)
    for s in STEMS:
        p = Path(meta["stems"][s])
        assert p == tmp_path / f"cue.{s}.wav"
        a, r = sf.read(str(p))
        assert r == sr and a.shape == mix.shape and sf.info(str(p)).subtype == "PCM_24"
        total += a
    # each file is rounded to 24 bits on its own: the sum is within a few LSB of the mix
    assert np.max(np.abs(total - mix)) <= 4 * LSB24
    assert np.abs(mix).max() > 0.01 and np.corrcoef(mix[:, 0], mix[:, 1])[0, 1] < 0.9999  # stereo, not dual mono
    assert abs(meta["loudness"]["integrated_lufs"] + 23.0) < 0.1


def test_the_mix_is_the_same_with_or_without_stems(bundle_v2, tmp_path):
    """Only written stems are mastered (a render without them skips their resampling and limiting): a stem follows
    the mix's gains and never changes the mix, so the mix's samples are the same either way. The timings account
    for the import and the stereo placement as their own stages."""
    a, b = tmp_path / "with.wav", tmp_path / "without.wav"
    request = dict(duration_s=3.0, seed=5, steps=2, bundle=bundle_v2, maestro="bach")
    render_cue(RenderRequest(output=a, stems=True, **request))
    res = render_cue(RenderRequest(output=b, **request))
    x, _ = sf.read(str(a), dtype="int32")
    y, _ = sf.read(str(b), dtype="int32")
    assert np.array_equal(x, y)
    assert json.loads(a.with_suffix(".json").read_text())["loudness"] == res.metadata["loudness"]
    assert {"import", "load", "denoise", "decode", "vocode", "stereo", "deliver"} <= set(res.timings_s)


def test_render_v2_without_stems_and_with_a_maestro(bundle_v2, tmp_path):
    out = tmp_path / "m.wav"
    render_cue(RenderRequest(output=out, duration_s=4.0, maestro="bach", steps=2, bundle=bundle_v2))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["stems"] is None and not (tmp_path / "m.lead.wav").exists()
    assert meta["pipeline"]["master"] == "bach" and meta["controls"]["melody"] is True
    assert meta["theme"]["maestro"] == "bach" and Path(meta["controls"]["theme_midi"]).is_file()
    c = np.load(tmp_path / "m.controls.npz")
    assert c["melody_pitch"].max() > 40  # MIDI pitches: the register kept, not pitch classes


def test_stems_need_a_v2_bundle(tmp_path):
    b1 = make_tiny_bundle(tmp_path / "b1")
    with pytest.raises(RequestError, match="v1 bundle"):
        render_cue(RenderRequest(output=tmp_path / "x.wav", duration_s=2.0, steps=1, bundle=b1, stems=True))
    assert not (tmp_path / "x.wav").exists()


def test_cli_render_stems_and_the_outputs_rule(bundle_v2, tmp_path):
    from filmscore.bridge.cli import main

    out = tmp_path / "c.wav"
    args = ["render", "--bundle", str(bundle_v2), "--duration", "2", "--steps", "1", "--stems", "-o", str(out),
            "--json"]
    assert main(args) == 0
    assert all((tmp_path / f"c.{s}.wav").is_file() for s in STEMS)
    out.unlink()  # the mix gone, a stem left: the outputs rule still refuses to replace the stem
    assert main(args) != 0
    assert not out.exists()
    assert main(args + ["--overwrite"]) == 0 and out.is_file()


def test_bwf_stems_share_the_mix_time_reference(bundle_v2, tmp_path):
    from filmscore.engine.audio.delivery import Delivery, read_bext
    from filmscore.engine.timebase import Rational

    out = tmp_path / "t.wav"
    d = Delivery(format="bwf", description="cue 1M1", time_reference=Rational(3600.5, 1.0), project="reel 1")
    render_cue(RenderRequest(output=out, duration_s=2.0, steps=1, bundle=bundle_v2, stems=True, delivery=d))
    mix = read_bext(out)
    assert mix["time_reference"] == int(3600.5 * 48_000)
    for s in STEMS:
        b = read_bext(tmp_path / f"t.{s}.wav")
        assert b["time_reference"] == mix["time_reference"] and (b["date"], b["time"]) == (mix["date"], mix["time"])
        assert s in b["description"]
        assert sf.info(str(tmp_path / f"t.{s}.wav")).frames == sf.info(str(out)).frames


def test_score_delivers_stems_beside_each_cue(tmp_path):
    """`filmscore score` with a v2 bundle and stems: each cue's stems are BWF beside its WAV, with its time reference
    and length, summing to it; the cue's JSON and the batch manifest list them. The bundle's film head reads the
    film encoder's layout, so the cue's picture conditions it."""
    from filmscore.engine.film.spec import default_feature_spec
    from filmscore.bridge.timelines.batch import MANIFEST_NAME, ScoreOptions, score_timeline
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.edit_testing import make_edit
    from filmscore.bridge.timelines.files import read_timeline
    from filmscore.engine.audio.delivery import read_bext

    dim, layout = default_feature_spec()
    bundle_v2 = make_tiny_bundle_v2(tmp_path / "b", feature_dim=dim, feature_layout=layout)
    cl = read_cues(read_timeline(make_edit(tmp_path)))
    out = tmp_path / "out"
    result = score_timeline(cl, cl.select(["1M1"]), out, ScoreOptions(seed=1, steps=1, bundle=bundle_v2, stems=True))
    assert result.ok, [o.message for o in result.outcomes]
    stem = cl.select(["1M1"])[0].file_stem
    mix, sr = sf.read(str(out / f"{stem}.wav"))
    ref = read_bext(out / f"{stem}.wav")["time_reference"]
    total = np.zeros_like(mix)
    for s in STEMS:
        p = out / f"{stem}.{s}.wav"
        a, r = sf.read(str(p))
        assert r == sr and a.shape == mix.shape and read_bext(p)["time_reference"] == ref
        total += a
    assert np.max(np.abs(total - mix)) <= 4 * LSB24
    entry = json.loads((out / MANIFEST_NAME).read_text())["cues"][stem]
    assert entry["stems"] == {s: f"{stem}.{s}.wav" for s in STEMS}
    assert json.loads((out / f"{stem}.json").read_text())["stems"] == entry["stems"]
    assert result.outcomes[0].stems == entry["stems"]
    assert json.loads((out / f"{stem}.json").read_text())["pipeline"]["picture"] is True


def test_v2_preview_drafts_the_mix_first(bundle_v2, tmp_path):
    from filmscore.engine.render import Preview

    seen = []
    out, draft = tmp_path / "p.wav", tmp_path / "p.draft.wav"
    render_cue(RenderRequest(output=out, duration_s=2.0, steps=3, bundle=bundle_v2, stems=True),
               preview=Preview(draft, steps=1, on_ready=lambda p, s: seen.append((p, out.exists()))))
    assert seen == [(draft, False)]  # the draft came before the cue
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["preview"]["steps"] == 1 and meta["preview"]["path"] == str(draft)
    d, sr = sf.read(str(draft))
    assert d.shape == (96_000, 2) and sr == 48_000
    assert not list(tmp_path.glob("p.draft.*.wav"))  # stems belong to the cue, not its draft
