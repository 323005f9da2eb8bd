"""Delivery files: loudness normalisation with a true-peak ceiling, 24-bit WAV and BWF with bext and iXML
(engine/audio/delivery.py), atomic writes of the bridge's JSON sidecars (bridge/deliverables.py)."""

from __future__ import annotations

import errno
import os
import xml.etree.ElementTree as ET

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from filmscore.bridge import deliverables as dl
from filmscore.bridge.deliverables import DeliveryError, write_json
from filmscore.engine.audio.delivery import Delivery, read_bext, read_wav_chunks, write_wav
from filmscore.engine.audio.loudness import LoudnessError, normalize_loudness, resolve_target, true_peak_dbtp
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.timebase import Rational

SR = 48000


def music(seconds: float = 6.0, seed: int = 0, transient: float = 0.9) -> np.ndarray:
    """Chords with a swell and a sharp transient: a crest factor that needs the limiter at -16 LUFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (196.0, 247.0, 294.0)) / 3
    x = 0.1 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t)) + 0.005 * rng.standard_normal(t.size)
    x[SR: SR + 200] += transient * np.hanning(200)
    return x.astype(np.float32)


@pytest.mark.parametrize("target, lufs", [("ebu-r128", -23.0), ("atsc-a85", -24.0), ("streaming", -16.0), (-20, -20.0)])
def test_loudness_within_half_a_lu_and_true_peak_under_ceiling(target, lufs):
    y, rep = normalize_loudness(music(), SR, target)
    measured = pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64))
    assert abs(measured - lufs) <= 0.5 and rep.target_lufs == lufs
    assert true_peak_dbtp(y, SR) <= -1.0 + 1e-6
    assert rep.true_peak_dbtp <= -1.0 + 1e-6


def test_limiter_engages_only_when_needed():
    _, quiet = normalize_loudness(music(transient=0.0), SR, "ebu-r128")
    _, loud = normalize_loudness(music(), SR, "streaming")
    assert not quiet.limited and loud.limited


def test_true_peak_sees_inter_sample_peaks():
    n = np.arange(SR)
    x = np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4).astype(np.float32)  # samples at +-0.707, peak 1.0
    assert np.max(np.abs(x)) == pytest.approx(0.7071, abs=1e-3)
    assert true_peak_dbtp(x, SR) == pytest.approx(0.0, abs=0.3)


def test_bad_targets_and_silence():
    with pytest.raises(LoudnessError, match="loudness target 'loud'"):
        resolve_target("loud")
    with pytest.raises(LoudnessError, match="outside -70..0"):
        resolve_target(3)
    with pytest.raises(LoudnessError, match="silent"):
        normalize_loudness(np.zeros(SR, np.float32), SR)
    with pytest.raises(LoudnessError, match="too short"):
        normalize_loudness(music(transient=0.0)[: SR // 5], SR)


def test_bwf_chunks_round_trip(tmp_path):
    y, rep = normalize_loudness(music(), SR)
    tref = 3600 * SR + SR  # 01:00:01:00 at 24 fps: frame 86424, in samples at the delivered rate
    p = tmp_path / "1M1.wav"
    write_wav(p, y, SR, Delivery("bwf", "filmscore cue 1M1", originator_reference="1M1",
                                 time_reference=Rational(86424, 24), timecode_rate=24.0, project="reel 1",
                                 scene="1M1"), loudness=rep.to_json())
    info = sf.info(str(p))
    assert (info.samplerate, info.frames, info.subtype, info.channels) == (SR, y.shape[0], "PCM_24", 1)
    back, _ = sf.read(str(p), dtype="float32")
    assert np.max(np.abs(back - y)) < 2 ** -22
    b = read_bext(p)
    assert b["description"] == "filmscore cue 1M1" and b["originator"] == "filmscore"
    assert b["time_reference"] == tref and b["version"] == 2
    assert b["loudness_value"] == pytest.approx(rep.integrated_lufs, abs=0.01)
    assert b["max_true_peak"] == pytest.approx(rep.true_peak_dbtp, abs=0.01)
    assert b["coding_history"].startswith("A=PCM,F=48000")
    chunks = read_wav_chunks(p)
    assert list(chunks)[:2] == ["fmt ", "bext"] and list(chunks)[-1] == "data"
    assert len(chunks["bext"]) >= 602
    root = ET.fromstring(chunks["iXML"])
    assert root.findtext("SCENE") == "1M1"
    assert int(root.findtext("SPEED/TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO")) == tref
    assert root.findtext("SPEED/TIMECODE_RATE") == "24/1"


def test_time_reference_beyond_32_bits(tmp_path):
    tref = 2 ** 33 + 5
    p = tmp_path / "x.wav"
    write_wav(p, np.zeros((100, 2), np.float32), 96000, Delivery("bwf", "x", time_reference=Rational(tref, 96000)))
    assert read_bext(p)["time_reference"] == tref
    assert sf.info(str(p)).channels == 2


def test_unwritable_destination_is_named_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    target = blocker / "out" / "1M1.wav"
    with pytest.raises(FilmscoreError, match=f"{target}: cannot write"):
        write_wav(target, np.zeros(10, np.float32), SR, Delivery("bwf", "x"))


def test_disk_full_removes_the_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "cue.json"
    write_json(target, {"v": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dl.os, "fsync", full)
    with pytest.raises(DeliveryError, match=f"cannot write {target}: No space left on device"):
        write_json(target, {"v": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cue.json"]
    assert '"v": 1' in target.read_text()


def test_plain_and_bwf_carry_the_same_audio_bytes_and_a_fixed_date_gives_the_same_file(tmp_path, monkeypatch):
    """One writer: the two formats differ only in the chunks before `data`; with SOURCE_DATE_EPOCH the bext date is
    fixed, so writing the same cue twice gives the same bytes (what the delivery-path test compares)."""
    y, rep = normalize_loudness(music(seconds=3.0), SR)
    bwf = Delivery("bwf", "cue", time_reference=Rational(10, 1))
    write_wav(tmp_path / "plain.wav", y, SR)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    write_wav(tmp_path / "a.wav", y, SR, bwf, rep.to_json())
    write_wav(tmp_path / "b.wav", y, SR, bwf, rep.to_json())
    plain, a = read_wav_chunks(tmp_path / "plain.wav"), read_wav_chunks(tmp_path / "a.wav")
    assert list(plain) == ["fmt ", "data"] and plain["data"] == a["data"] and plain["fmt "] == a["fmt "]
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert read_bext(tmp_path / "a.wav")["date"] == "2023-11-14"
    # libsndfile reads what it would have written itself
    back, _ = sf.read(str(tmp_path / "plain.wav"), dtype="float32")
    buf = tmp_path / "sf.wav"
    sf.write(str(buf), y, SR, subtype="PCM_24")
    assert np.array_equal(back, sf.read(str(buf), dtype="float32")[0])


def test_delivery_round_trips_through_json_and_names_bad_fields():
    d = Delivery("bwf", "x", time_reference=Rational(86400, 24), timecode_rate=24.0, project="p", scene="s")
    assert Delivery.from_json(d.to_json()) == d
    with pytest.raises(FilmscoreError, match="unknown delivery format 'mp3'"):
        Delivery.from_json({"format": "mp3"})
    with pytest.raises(FilmscoreError, match="unknown field"):
        Delivery.from_json({"format": "bwf", "colour": "red"})



def test_integer_samples_are_written_bit_for_bit_in_either_format(tmp_path):
    """regenerate's splice keeps a cue's own 24-bit samples: the writer takes them as they are."""
    from filmscore.engine.audio.delivery import write_pcm24

    rng = np.random.default_rng(1)
    pcm = rng.integers(-2 ** 23, 2 ** 23, size=(999, 2)).astype(np.int32)
    write_pcm24(tmp_path / "a.wav", pcm, SR, Delivery("bwf", "x", time_reference=Rational(5, 1)))
    back, _ = sf.read(str(tmp_path / "a.wav"), dtype="int32", always_2d=True)
    assert np.array_equal(back >> 8, pcm) and read_bext(tmp_path / "a.wav")["time_reference"] == 5 * SR
    write_pcm24(tmp_path / "p.wav", pcm, SR)
    assert read_wav_chunks(tmp_path / "p.wav")["data"] == read_wav_chunks(tmp_path / "a.wav")["data"]
