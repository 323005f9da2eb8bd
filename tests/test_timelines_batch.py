"""The resumable batch end to end: a generated edit with three marked cues over generated media, rendered by the
real engine with a tiny seeded bundle, delivered as BWF and placed on the scored timeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pyloudnorm
import pytest
import soundfile as sf

from timeline_support import SR, score_options, timeline_bundle

from filmscore.engine.audio.delivery import read_bext
from filmscore.engine.audio.loudness import true_peak_dbtp
from filmscore.bridge.timelines.batch import MANIFEST_NAME, score_timeline
from filmscore.engine.plan.plan import CuePlan
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.edit_testing import CUES, make_edit
from filmscore.bridge.timelines.files import read_timeline
from filmscore.bridge.timelines.timing import range_samples, to_samples

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return timeline_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.mark.slow
def test_three_cues_delivered_and_placed(tmp_path, bundle):
    src = make_edit(tmp_path)
    cl = read_cues(read_timeline(src))
    assert [c.name for c in cl.cues] == list(CUES)
    out = tmp_path / "out"
    result = score_timeline(cl, cl.cues, out, score_options(bundle))
    assert result.ok, [o.message for o in result.outcomes]
    meter = pyloudnorm.Meter(SR)
    for cue in cl.cues:
        wav = out / f"{cue.file_stem}.wav"
        audio, sr = sf.read(str(wav), dtype="float64")
        _, n = range_samples(cue.record_range, SR)
        assert sr == SR and audio.shape == (n,) and sf.info(str(wav)).subtype == "PCM_24"
        assert abs(meter.integrated_loudness(audio) - (-23.0)) <= 0.5
        assert true_peak_dbtp(audio, SR) <= -1.0 + 1e-3
        bext = read_bext(wav)
        assert bext["time_reference"] == to_samples(RT(86400, 24) + cue.record_start, SR)
        meta = json.loads((out / f"{cue.file_stem}.json").read_text())
        assert meta["seed"] == 7 and meta["n_samples"] == n and meta["bundle"]["name"]
        assert meta["cue"]["name"] == cue.name and meta["missing_picture"] == []
        assert (out / f"{cue.file_stem}.controls.npz").is_file()
        # the cue's plan beside it (JSON and MIDI, the same plan), for the cue's length, recorded in the manifest
        plan = CuePlan.load(out / f"{cue.file_stem}.plan.json")
        assert abs(plan.duration_s - n / SR) < 1e-3
        assert CuePlan.load(out / f"{cue.file_stem}.plan.mid").key == plan.key
        entry = json.loads((out / MANIFEST_NAME).read_text())["cues"][cue.file_stem]["plan"]
        assert entry == meta["plan"] and entry["json"] == f"{cue.file_stem}.plan.json"
        assert (entry["key"], entry["mode"], entry["tempo_bpm"]) == (plan.key, plan.mode,
                                                                     round(plan.tempo.tempo_bpm, 3))
    # Every picture cut and hit the engine got is on a beat of that cue's plan (within 25 ms).
    plan3 = CuePlan.load(out / "cue_3.plan.json")
    assert plan3.hits and all(abs(h.beat_time_s - h.time_s) <= 0.025 for h in plan3.hits)
    # The hit marker and the edit at 6 s reached the cue that spans them.
    hits = [(h.kind, h.time.to_seconds()) for h in cl.cues[1].hits]
    assert hits == [("marker", pytest.approx(16 / 24)), ("cut", 2.5)]
    # The engine got those and the picture's own cut (media cut at 3 s, shown at record 8 s = 1 s into "cue 3").
    meta3 = json.loads((out / "cue_3.json").read_text())
    assert any(abs(h - 1.0) <= 0.1 for h in meta3["request"]["hits_s"])
    # The scored timeline puts every cue at its record time, to the frame.
    scored = read_timeline(out / "reel.scored.otio").timeline
    placed = {c.name: c.range_in_parent() for t in scored.audio_tracks() for c in t
              if isinstance(c, otio.schema.Clip)}
    for cue in cl.cues:
        assert placed[cue.name] == cue.record_range
    assert not (out / ".filmscore-work").exists()


@pytest.mark.slow
def test_a_failed_cue_does_not_stop_the_others_and_offline_media_is_reported(tmp_path, bundle):
    import mido

    theme = mido.MidiFile()
    track = mido.MidiTrack()
    theme.tracks.append(track)
    for n in (60, 64, 67, 72, 67, 64):
        track += [mido.Message("note_on", note=n, velocity=80, time=0), mido.Message("note_off", note=n, time=240)]
    theme.save(tmp_path / "theme.mid")
    src = make_edit(tmp_path)
    loaded = read_timeline(src)
    loaded.timeline.tracks.markers.append(otio.schema.Marker(name="2M1", marked_range=TR(RT(200, 24), RT(12, 24))))
    (tmp_path / "media" / "shots.mp4").rename(tmp_path / "media" / "moved.mp4")  # offline
    cl = read_cues(loaded)
    result = score_timeline(cl, cl.select(["2M1", "1M1"]), tmp_path / "out",
                            score_options(bundle, midi=tmp_path / "theme.mid"))
    by = {o.name: o for o in result.outcomes}
    assert by["2M1"].status == "failed" and "0.500 s is outside what the engine renders" in by["2M1"].message
    assert by["1M1"].status == "done" and "media offline: media/shots.mp4 not found" in by["1M1"].missing_picture[0]
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["cues"]["2M1"]["status"] == "failed" and manifest["cues"]["1M1"]["status"] == "done"
    assert not result.ok
    # The theme as fitted to the cue is delivered beside its WAV and named in its sidecar.
    assert mido.MidiFile(tmp_path / "out" / "1M1.theme.mid").length > 0
    assert json.loads((tmp_path / "out" / "1M1.json").read_text())["controls"]["theme_midi"] == "1M1.theme.mid"


@pytest.mark.slow
def test_rerun_after_kill_renders_only_the_missing_cues(tmp_path, bundle):
    src = make_edit(tmp_path)
    out = tmp_path / "out"
    code = ("import sys; from filmscore.bridge.cli import main; sys.exit(main())")
    argv = [sys.executable, "-c", code, "score", str(src), "-o", str(out), "--seed", "7", "--steps", "2",
            "--bundle", str(bundle), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = out / MANIFEST_NAME
    deadline = time.monotonic() + 600
    done_at_kill: list[str] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file():
            cues = json.loads(manifest.read_text())["cues"]
            done_at_kill = [k for k, v in cues.items() if v["status"] == "done"]
            if done_at_kill:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    if proc.returncode == 0:
        pytest.fail(f"the batch finished before it could be killed: {proc.stderr.read().decode()[-2000:]}")
    done_at_kill = [k for k, v in json.loads(manifest.read_text())["cues"].items() if v["status"] == "done"]
    assert 1 <= len(done_at_kill) < 3
    first = {k: sf.read(str(out / f"{k}.wav"))[0] for k in done_at_kill}

    from filmscore.engine.render import render_cue

    rendered: list[str] = []

    def counting_render(request, **kw):
        rendered.append(Path(request.output).stem)
        return render_cue(request, **kw)

    (out / ".1M2.wav.x1y2.part").write_bytes(b"half a file")  # as a kill during a write leaves it
    cl = read_cues(read_timeline(src))
    result = score_timeline(cl, cl.cues, out, score_options(bundle), render=counting_render)
    assert result.ok
    assert not list(out.glob(".*.part"))
    assert sorted(rendered) == sorted(c.file_stem for c in cl.cues if c.file_stem not in done_at_kill)
    assert {o.name: o.status for o in result.outcomes if o.file_stem in done_at_kill} == \
        {c.name: "skipped" for c in cl.cues if c.file_stem in done_at_kill}
    for k, audio in first.items():  # finished cues kept as they were
        np.testing.assert_array_equal(sf.read(str(out / f"{k}.wav"))[0], audio)
    # Same seed, same audio: render a finished cue again from scratch and compare.
    k = done_at_kill[0]
    (out / f"{k}.wav").unlink()
    again = score_timeline(cl, [c for c in cl.cues if c.file_stem == k], out, score_options(bundle))
    assert again.ok
    np.testing.assert_allclose(sf.read(str(out / f"{k}.wav"))[0], first[k], atol=2 ** -22)
