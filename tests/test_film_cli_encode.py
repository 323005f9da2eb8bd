"""`filmscore encode`: JSON summary (cuts, duration), npz and PNG outputs, one-line errors."""

from __future__ import annotations

import json

import pytest

from filmscore.bridge.cli import main
from filmscore.engine.film import FilmFeatures
from filmscore.engine.film.synthetic import Shot, write_edit


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FILMSCORE_CACHE_DIR", str(tmp_path / "cache"))


def test_encode_json_npz_plot(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    true = write_edit(video, [Shot("pan", 2.5, seed=1), Shot("shapes", 2.5, speed=0.3, seed=2)], fps=25)
    npz, png = tmp_path / "f.npz", tmp_path / "f.png"
    assert main(["encode", str(video), "--json", "-o", str(npz), "--plot", str(png)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duration"] == pytest.approx(5.0)
    assert len(summary["cuts"]) == 1 and abs(summary["cuts"][0] - true[0]) <= 0.1 + 1e-6
    assert {"affect", "hit_points", "layout", "frames", "cut_kinds"} <= set(summary)
    faces = summary["faces"]  # generated shapes and pans: the face branch runs and finds no one
    assert faces["status"] == "on" and faces["face_frames"] == 0.0 and faces["dominant"] is None
    assert [(s["start"], s["end"]) for s in faces["shots"]] == [(0.0, summary["cuts"][0]), (summary["cuts"][0], 5.0)]
    feats = FilmFeatures.load_npz(npz)
    assert feats.n_frames == 50 and feats.layout == summary["layout"]
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["encode", str(video), "--start", "1", "--duration", "2"]) == 0
    out = capsys.readouterr().out
    assert "2.00 s from 1.00 s" in out and "cuts (1): 1.60" in out  # the cut at 2.52 s shows from the 10/s frame at 2.6 s
    assert "faces: in 0% of frames; per shot: 0.0-1.6 s none; 1.6-2.0 s none" in out

    # stderr is not a terminal here: progress comes as plain lines, the last one at 100 % (no cache: it decodes)
    assert main(["encode", str(video), "--duration", "1", "--no-cache"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(ln.startswith("filmscore encode: encoding ") for ln in err)
    assert err[-1].startswith("filmscore encode: encoding 100%")


def test_encode_errors_are_one_line(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing.mov")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mov" in err[0] and "does not exist" in err[0]
    video = tmp_path / "short.mp4"
    write_edit(video, [Shot("still", 2.0, seed=1)], fps=25)
    assert main(["encode", str(video), "--start", "1", "--duration", "5"]) == 2
    assert "past the end" in capsys.readouterr().err
    assert main(["encode", str(video), "-o", str(tmp_path / "no" / "f.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
