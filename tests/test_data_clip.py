"""One clip end to end: files written atomically, audio length, controls from MIDI lead + rendered audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
from filmscore.engine.data.arrange import ClipSpec
from filmscore.engine.data.clip import melody_agreement, render_clip
from filmscore.engine.data.music21_source import ParsedScore, PartNotes, Work
from filmscore.engine.data.orchestration import BY_NAME


def test_melody_agreement():
    m = np.zeros((4, 12), np.float32)
    m[[0, 1, 2], [0, 4, 7]] = 1  # frame 3 is a rest
    a = np.zeros((4, 12), np.float32)
    a[[0, 1, 3], [0, 5, 2]] = 1  # frame 2 unvoiced in the audio
    assert melody_agreement(m, a) == pytest.approx(1 / 3)
    assert np.isnan(melody_agreement(np.zeros((3, 12)), a[:3]))


@pytest.mark.slow
def test_render_clip(tmp_path):
    from filmscore.engine.audio.fluidsynth import SynthError, find_fluidsynth, find_soundfont

    try:
        find_fluidsynth(), find_soundfont()
    except SynthError as e:
        pytest.skip(f"FluidSynth or a GM SoundFont missing: {e}")
    import av
    import soundfile as sf
    from filmscore.engine.controls.types import Controls

    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    mel = np.array([[q, 1.0, scale[q % 8]] for q in range(24)], float)
    parsed = ParsedScore(Work("folk", "folk/scale", "x.abc"), "scale", [PartNotes("m", "melody", mel)],
                         np.arange(0, 24, 4.0), 24.0, 0, "major")
    rec = render_clip(parsed, ClipSpec(0, 6, -2, 120.0, 1.0, BY_NAME["strings"], 1), "scale.p0.c0", tmp_path)
    assert rec["duration_s"] == 12.0 and rec["key"] == "Bb" and rec["split"] in ("train", "heldout")
    clip = tmp_path / "clips" / "folk" / "scale.p0.c0"
    assert sorted(p.name for p in clip.iterdir()) == ["audio.flac", "controls.npz", "film.mp4", "meta.json",
                                                       "score.mid"]
    assert [p.name for p in clip.parent.iterdir()] == ["scale.p0.c0"]  # no temporary directory left
    wave, sr = sf.read(tmp_path / rec["audio"])
    assert sr == 16000 and wave.shape == (192000,)
    assert 20 * np.log10(np.sqrt(np.mean(wave ** 2))) == pytest.approx(-20, abs=0.5)
    ctl = Controls.load_npz(tmp_path / rec["controls"])
    assert ctl.n_frames == 1200
    # melody = MIDI lead: pitch classes of the scale transposed down 2
    assert set(np.nonzero(ctl.melody.sum(0))[0]) == {(p - 2) % 12 for p in scale}
    assert rec["melody_agreement"] > 0.8
    with av.open(str(tmp_path / rec["video"])) as c:
        assert sum(1 for _ in c.decode(video=0)) == 120
    meta = json.loads((tmp_path / rec["meta"]).read_text())
    assert meta["source"] == "x.abc" and len(meta["tension"]) == 6
