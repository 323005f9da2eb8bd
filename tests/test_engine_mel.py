"""The Mel front-end against librosa on real audio (a FluidSynth render of a MIDI phrase), and audio loading."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import torch

from filmscore.engine.audio.io import load_audio, resample
from filmscore.engine.audio.mel import MelConfig, MelSpectrogram, log_mel, mel_filterbank
from filmscore.engine.errors import AudioLoadError


@pytest.fixture(scope="module")
def real_audio(tmp_path_factory) -> np.ndarray:
    """4 s of piano + strings rendered by FluidSynth from a MIDI file written here."""
    from filmscore.engine.audio.fluidsynth import render_midi

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr += [mido.Message("program_change", program=0, channel=0), mido.Message("program_change", program=48, channel=1)]
    for i, pitch in enumerate([60, 64, 67, 72, 71, 67, 65, 62]):
        tr.append(mido.Message("note_on", note=pitch, velocity=70 + 5 * i, channel=0, time=0))
        tr.append(mido.Message("note_on", note=pitch - 24, velocity=60, channel=1, time=0))
        tr.append(mido.Message("note_off", note=pitch, channel=0, time=240))
        tr.append(mido.Message("note_off", note=pitch - 24, channel=1, time=0))
    path = tmp_path_factory.mktemp("mel") / "phrase.mid"
    mid.save(path)
    return render_midi(path, sample_rate=16000)


@pytest.mark.parametrize("n_mels", [128, 64])
def test_log_mel_matches_librosa(real_audio, n_mels):
    import librosa

    cfg = MelConfig(n_mels=n_mels)
    ours = log_mel(real_audio, cfg).numpy()
    pad = (cfg.n_fft - cfg.hop_length) // 2
    spec = np.abs(librosa.stft(np.pad(real_audio, pad, mode="reflect"), n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                               win_length=cfg.win_length, window="hann", center=False))
    mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=n_mels, fmin=cfg.f_min, fmax=cfg.f_max) @ spec
    ref = np.log(np.maximum(mel, 1e-5))
    assert ours.shape == (n_mels, real_audio.shape[0] // cfg.hop_length)
    assert np.abs(ours - ref[:, :ours.shape[1]]).max() <= 1e-3
    assert ours.max() > -3  # real signal, not the log floor


@pytest.mark.parametrize("cfg", [MelConfig(), MelConfig(n_mels=64), MelConfig(sample_rate=24000, f_max=12000.0),
                                 MelConfig(sample_rate=44100, n_fft=2048, win_length=2048, f_min=30.0, f_max=22050.0)])
def test_filterbank_is_librosas_bit_for_bit(cfg):
    """Our numpy Slaney filterbank (render needs no librosa) equals librosa's, including the 1 kHz knee."""
    import librosa

    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min,
                              fmax=cfg.f_max, htk=False, norm="slaney").astype(np.float32)
    ours = mel_filterbank(cfg)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_conv_stft_path_agrees_where_there_is_signal(real_audio):
    x = torch.from_numpy(real_audio)[None]
    with torch.no_grad():
        fft, conv = MelSpectrogram()(x), MelSpectrogram(conv_stft=True)(x)
    loud = fft > -9  # bins well above the log floor (-11.5)
    assert (fft - conv).abs()[loud].max() < 1e-3
    assert (fft - conv).abs().max() < 1e-2


def test_mel_batched_equals_single(real_audio):
    mod = MelSpectrogram()
    x = torch.from_numpy(real_audio[:32000])
    with torch.no_grad():
        batch = mod(torch.stack([x, x * 0.5]))
        one = mod(x[None])
    assert torch.allclose(batch[0], one[0], atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])


def test_load_audio_resamples_any_rate_and_channels(tmp_path, real_audio):
    import soundfile as sf

    stereo = np.stack([real_audio, real_audio * 0.5], axis=1)
    up = resample(stereo.T, 16000, 44100).T
    sf.write(tmp_path / "x.wav", up, 44100)
    back = load_audio(tmp_path / "x.wav", 16000)
    assert back.ndim == 1 and abs(back.shape[0] - real_audio.shape[0]) <= 2
    n = min(back.shape[0], real_audio.shape[0])
    assert np.corrcoef(back[:n], real_audio[:n] * 0.75)[0, 1] > 0.99


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioLoadError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav", 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioLoadError, match="bad.wav"):
        load_audio(bad, 16000)
