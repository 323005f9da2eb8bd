"""`filmscore conform` end to end (bridge/timelines/conform.py, `conform_scored`): the generated edit
(bridge/timelines/edit_testing.py) scored by the real engine with the tiny bundle, then a new version of the edit in
which 0.5 s of picture is cut out of cue 1M2 (the cues after it move 0.5 s earlier) and cue 1M1's region is removed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile as sf

from timeline_support import SR, score_options, timeline_bundle

from filmscore.engine.audio.delivery import read_bext, read_wav_chunks
from filmscore.bridge.timelines.batch import MANIFEST_NAME, score_timeline
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.edit_testing import make_edit, make_new_edit, make_third_edit
from filmscore.bridge.timelines.files import read_timeline
from filmscore.bridge.timelines.timing import range_samples, to_samples


@pytest.mark.slow
def test_conform_copies_moved_cue_splices_changed_one_reports_deleted(tmp_path, tmp_path_factory, monkeypatch, capsys):
    bundle = timeline_bundle(tmp_path_factory.mktemp("bundle") / "tiny")
    src = make_edit(tmp_path)
    new_path = make_new_edit(src)
    scored = tmp_path / "scored"
    old_cl = read_cues(read_timeline(src))
    assert score_timeline(old_cl, old_cl.cues, scored, score_options(bundle)).ok

    import filmscore.engine.render as engine_render

    rendered: list[str] = []
    real = engine_render.render_cue

    def counting(request, **kw):
        rendered.append(Path(request.output).stem)
        return real(request, **kw)

    monkeypatch.setattr(engine_render, "render_cue", counting)
    from filmscore.bridge.cli import main

    out = tmp_path / "v2"
    code = main(["conform", str(src), str(new_path), "--scored", str(scored), "-o", str(out), "--json"])
    cap = capsys.readouterr()
    assert cap.out, cap.err
    summary = json.loads(cap.out)
    assert code == 0, summary
    by = {c["name"]: c for c in summary["cues"]}
    assert rendered == []  # nothing rendered whole: the changed cue is inpainted in its range

    new_cues = {c.name: c for c in read_cues(read_timeline(new_path)).cues}
    # cue 3 moved 0.5 s earlier in record time, same picture: the same audio bytes, the time reference moved
    assert by["cue 3"]["status"] == "unchanged" and by["cue 3"]["action"] == "copied"
    old3, new3 = read_wav_chunks(scored / "cue_3.wav"), read_wav_chunks(out / "cue_3.wav")
    assert old3["data"] == new3["data"] and old3["fmt "] == new3["fmt "]
    t_ref = to_samples(new_cues["cue 3"].record_timecode_start, SR)
    assert read_bext(out / "cue_3.wav")["time_reference"] == t_ref == read_bext(scored / "cue_3.wav")[
        "time_reference"] - SR // 2
    assert f"<TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO>{t_ref}<" in new3["iXML"].decode()
    # 1M2: the shot cut changed it: its last 0.5 s (after the 1 s margin past the new join at 1 s) are the old
    # samples shifted by 0.5 s, bit for bit; the first 2 s come from the fresh render, crossfaded into the old
    m2 = by["1M2"]
    assert m2["status"] == "changed" and m2["action"] == "spliced"
    _, n = range_samples(new_cues["1M2"].record_range, SR)
    old2, _ = sf.read(str(scored / "1M2.wav"), dtype="int32")
    new2, _ = sf.read(str(out / "1M2.wav"), dtype="int32")
    assert new2.shape == (n,) and m2["kept_samples"] == n - 2 * SR and m2["rendered_samples"] == 2 * SR
    np.testing.assert_array_equal(new2[2 * SR:], old2[2 * SR + SR // 2:2 * SR + SR // 2 + (n - 2 * SR)])
    assert not np.array_equal(new2[:SR], old2[:SR])
    assert read_bext(out / "1M2.wav")["time_reference"] == to_samples(new_cues["1M2"].record_timecode_start, SR)
    meta2 = json.loads((out / "1M2.json").read_text())
    assert meta2["conform"]["regenerate_s"] == [[0.0, pytest.approx(2.0)]] and meta2["n_samples"] == n
    how = meta2["conform"]["new_audio"]  # the old latent held after the range, 2 s inpainted
    assert m2["new_audio"] == "inpainted" and how["method"] == "inpainted"
    assert how["original_latent"] == "stored latent" and meta2["request"]["duration_s"] == n / SR  # score kept it
    # the spliced cue keeps the inpainting's latent, tied to its samples: the next conform holds it (below)
    assert meta2["latent"]["file"] == "1M2.latent.npy" and (out / "1M2.latent.npy").is_file()
    assert (out / "cue_3.latent.npy").is_file()
    # its plan is the old cue's moved to the new cut: the new join (1 s) on a beat, the beats after the 2 s range
    # the old ones 0.5 s earlier
    from filmscore.engine.plan.plan import CuePlan

    old_plan, plan2 = CuePlan.load(scored / "1M2.plan.json"), CuePlan.load(out / "1M2.plan.json")
    assert plan2.duration_s == pytest.approx(n / SR, abs=1e-4) and meta2["plan"]["json"] == "1M2.plan.json"
    assert abs(plan2.tempo.hit_errors([1.0])[0]) <= 0.025
    assert meta2["conform"]["plan"]["refitted_s"] == [[0.0, pytest.approx(2.0)]]
    later = old_plan.tempo.beats[(old_plan.tempo.beats >= 2.5) & (old_plan.tempo.beats < n / SR + 0.5)] - 0.5
    assert all(np.abs(plan2.tempo.beats - t).min() < 2e-4 for t in later)
    # 1M1: deleted, reported in the summary and in the new manifest, no file written
    assert by["1M1"]["status"] == "deleted" and by["1M1"]["action"] == "reported"
    assert not (out / "1M1.wav").exists()
    manifest = json.loads((out / MANIFEST_NAME).read_text())["cues"]
    assert manifest["1M1"]["status"] == "deleted" and manifest["cue_3"]["conform"]["action"] == "copied"
    assert manifest["1M2"]["conform"]["action"] == "spliced"
    # the scored timeline of the new edit holds both delivered cues at their new record times
    scored_tl = read_timeline(out / "reel_v2.scored.otio").timeline
    placed = {c.name: c.range_in_parent() for t in scored_tl.audio_tracks() for c in t
              if isinstance(c, otio.schema.Clip)}
    assert placed == {name: new_cues[name].record_range for name in ("1M2", "cue 3")}
    assert not (out / ".filmscore-conform-work").exists()

    # The cut changes again (v2 -> v3, conformed from what the first conform delivered): 1M2 is inpainted once
    # more around the new cut, holding the latent the first conform stored; nothing is rendered whole
    v3_path = make_third_edit(new_path)
    out3 = tmp_path / "v3"
    code = main(["conform", str(new_path), str(v3_path), "--scored", str(out), "-o", str(out3), "--json"])
    summary3 = json.loads(capsys.readouterr().out)
    assert code == 0, summary3
    assert rendered == []
    m3 = {c["name"]: c for c in summary3["cues"]}["1M2"]
    assert m3["status"] == "changed" and m3["action"] == "spliced" and m3["new_audio"] == "inpainted"
    meta3 = json.loads((out3 / "1M2.json").read_text())
    assert meta3["conform"]["new_audio"]["original_latent"] == "stored latent"
    assert meta3["latent"]["file"] == "1M2.latent.npy"
    _, n3 = range_samples({c.name: c for c in read_cues(read_timeline(v3_path)).cues}["1M2"].record_range, SR)
    new3, _ = sf.read(str(out3 / "1M2.wav"), dtype="int32")
    assert new3.shape == (n3,) == (n + SR // 2,) and 0 < m3["kept_samples"] < n
    # the kept stretch is the first conform's samples, bit for bit (its own inpainted range among them)
    (piece,) = meta3["conform"]["kept"]
    assert piece["start_s"] == piece["old_start_s"] == 0.0
    k = m3["kept_samples"]
    np.testing.assert_array_equal(new3[:k], new2[:k])
    assert not np.array_equal(new3[k:n], new2[k:])
