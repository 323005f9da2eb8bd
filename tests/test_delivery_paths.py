"""One delivery path: the same timeline cue rendered by `filmscore score` (batch), by the bridge's timeline job (what
the panels send: a real `filmscore serve` with worker processes) and by `filmscore render --timeline --cue --bwf`
(a subprocess, rendering itself and handing the request to that bridge) gives byte-identical audio data and the same
`bext` and `iXML`.

All three build the request with `bridge/timelines/render_cue.py` and the engine masters and writes it once
(engine/audio/delivery.py). A tiny seeded bundle renders real audio; the edit is generated (two shots of real
encoded video cut into a 24 fps timeline starting at 01:00:00:00), so the picture is encoded three times. The
bext date is pinned with SOURCE_DATE_EPOCH, so the whole chunk can be compared.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile as sf

from cli_support import run_cli

from filmscore.bridge.client import BridgeClient
from filmscore.bridge.server.launch import launch_server
from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.files import read_timeline
from filmscore.bridge.timelines.timing import range_samples, to_samples
from filmscore.engine.audio.delivery import read_bext, read_wav_chunks
from filmscore.engine.bundle_testing import make_tiny_bundle

pytestmark = pytest.mark.timeout(900)

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
SR = 48000
SEED, STEPS = 5, 2
EPOCH = "1767225600"  # 2026-01-01 00:00:00 UTC


def make_edit(folder: Path) -> Path:
    """Two generated shots (a cut at 2 s) as one clip on a 24 fps timeline from 01:00:00:00 with a cue marker
    "1M1" over 1.0-3.5 s (so the cut falls inside the cue) and a point marker at 3 s."""
    from filmscore.engine.film.synthetic import Shot, write_edit

    write_edit(folder / "shots.mp4", [Shot("pan", 2.0, seed=1), Shot("shapes", 2.0, seed=2)], width=96, height=64,
               fps=24)
    tl = otio.schema.Timeline(name="delivery reel", global_start_time=RT(86400, 24))
    track = otio.schema.Track(name="V1")
    track.append(otio.schema.Clip(name="A", media_reference=otio.schema.ExternalReference(target_url="shots.mp4"),
                                  source_range=TR(RT(0, 24), RT(96, 24))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(name="1M1", marked_range=TR(RT(24, 24), RT(60, 24)), color="GREEN"))
    tl.tracks.markers.append(otio.schema.Marker(name="stab", marked_range=TR(RT(72, 24), RT(0, 24))))
    path = folder / "reel.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


@pytest.mark.slow
def test_score_bridge_job_and_render_bwf_deliver_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    media = tmp_path / "media"
    media.mkdir()
    edit = make_edit(media)
    cues = read_cues(read_timeline(edit))
    cue = cues.select(["1M1"])[0]

    # 1. filmscore score (the batch, this process)
    scored = tmp_path / "scored"
    result = score_timeline(cues, [cue], scored, ScoreOptions(seed=SEED, steps=STEPS, bundle=bundle, backend="torch"))
    assert result.ok, [o.message for o in result.outcomes]
    by_score = scored / f"{cue.file_stem}.wav"

    # 2. the bridge's timeline job, as a panel sends it
    out = tmp_path / "out"
    out.mkdir()
    state = tmp_path / "state"
    with launch_server(state, media_roots=[media], output_roots=[out], bundle=bundle) as srv:
        with BridgeClient(srv.info) as c:
            job = c.render(out / "panel.wav", timeline=edit, cue="1M1", seed=SEED, steps=STEPS, backend="torch")
            st = c.wait(job, timeout_s=600)
        # 4. filmscore render --timeline --cue --bwf handed to that bridge (bridge/cli/render_handoff.py)
        handed = run_cli("render", "--timeline", edit, "--cue", "1M1", "--bwf", "--seed", str(SEED), "--steps",
                         str(STEPS), "--bundle", bundle, "--backend", "torch", "-o", out / "handed.wav",
                         "--connection-file", srv.connection_file, "--json",
                         env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    assert st["state"] == "finished", st["error"]
    by_job = Path(st["output"])
    assert handed.returncode == 0, handed.stderr[-3000:]
    assert json.loads(handed.stdout)["bridge"]["job_id"]

    # 3. filmscore render --timeline --cue --bwf
    by_render = tmp_path / "render.wav"
    cli = run_cli("render", "--timeline", edit, "--cue", "1M1", "--bwf", "--seed", str(SEED), "--steps", str(STEPS),
                  "--bundle", bundle, "--backend", "torch", "-o", by_render,
                  env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    assert cli.returncode == 0, cli.stderr[-3000:]

    files = {"score": by_score, "bridge job": by_job, "render --bwf": by_render,
             "render on the bridge": out / "handed.wav"}
    chunks = {k: read_wav_chunks(p) for k, p in files.items()}
    _, n = range_samples(cue.record_range, SR)
    ref = chunks["score"]
    assert len(ref["data"]) == 3 * n and np.abs(sf.read(str(by_score))[0]).max() > 0
    for name, ch in chunks.items():
        assert list(ch) == ["fmt ", "bext", "iXML", "data"], name
        assert ch["data"] == ref["data"], f"{name}: audio data differs from score's"
        assert ch["bext"] == ref["bext"], f"{name}: bext differs from score's ({read_bext(files[name])})"
        assert ch["iXML"] == ref["iXML"], name
    bext = read_bext(by_score)
    assert bext["time_reference"] == to_samples(cue.record_timecode_start, SR) == (3600 + 1) * SR
    assert bext["description"] == f"filmscore cue 1M1 (delivery reel), seed {SEED}"
    assert bext["date"] == "2026-01-01" and bext["loudness_value"] is not None
    lo = struct.unpack("<I", ref["bext"][338:342])[0]
    assert lo == (3600 + 1) * SR
    meta = json.loads((scored / f"{cue.file_stem}.json").read_text())
    assert meta["picture"] is not None and meta["missing_picture"] == []  # the picture was encoded, not skipped
    assert meta["request"]["delivery"]["format"] == "bwf"


@pytest.mark.parametrize("args, message", [
    (["--duration", "2", "--cue", "1M1"], "--cue names a cue of a --timeline"),
    (["--timeline", "EDIT", "--duration", "2", "--cue", "1M1"], "--duration: not with --timeline"),
    (["--timeline", "EDIT"], "--timeline needs --cue NAME"),
])
def test_render_timeline_flags_are_refused_in_one_line(tmp_path, args, message):
    edit = tmp_path / "reel.otio"
    otio.adapters.write_to_file(otio.schema.Timeline(name="empty"), str(edit))
    argv = [str(edit) if a == "EDIT" else a for a in args]
    cli = run_cli("render", *argv, "-o", tmp_path / "x.wav", timeout_s=300)
    assert cli.returncode != 0 and message in cli.stderr, cli.stderr[-2000:]
