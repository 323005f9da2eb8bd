"""`filmscore cues` and the argument checks of `filmscore score` (rendering is in test_timelines_batch.py)."""

from __future__ import annotations

import json

import pytest

import filmscore.bridge.cli as cli


@pytest.fixture
def main(monkeypatch):
    # Only the commands under test: the others import engine parts this test does not need.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cues", "score"))
    return cli.main


def test_cues_json_for_every_fixture(main, fixtures_dir, capsys):
    for src in sorted((fixtures_dir / "timelines").iterdir()):
        assert main(["cues", str(src), "--json"]) == 0, src.name
        doc = json.loads(capsys.readouterr().out)
        assert doc["cues"], src.name
        c = doc["cues"][0]
        assert set(c["record_start"]) == {"value", "rate", "seconds"} and c["duration_s"] > 0
        assert all(set(h) == {"kind", "name", "time"} for h in c["hits"])


def test_cues_human_output(main, fixtures_dir, capsys):
    assert main(["cues", str(fixtures_dir / "timelines" / "premiere_example.otio")]) == 0
    out = capsys.readouterr().out
    assert "note: 4 Marker.3 downgraded to Marker.2" in out
    assert "duration 42.367 s = 1271/30" in out
    assert "hit marker +   3.767 s  113/30  My MArker 1" in out
    assert "no picture: clip 'test_title' at record 00:00:00:15: generated picture (Slug)" in out


def test_in_out_range(main, fixtures_dir, capsys):
    assert main(["cues", str(fixtures_dir / "timelines" / "hiero_xml_export.xml"), "--in", "01:00:10:00",
                 "--out", "01:00:20:00", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["cues"][0]
    assert c["origin"] == "range" and c["record_start_s"] == 10.0 and c["duration_s"] == 10.0
    assert c["record_start_timecode"] == "01:00:10:00"


@pytest.mark.parametrize("argv, message", [
    (["cues", "missing.otio"], "missing.otio: no such timeline file"),
    (["cues", "{t}", "--in", "00:00:01:00"], "give --in and --out together"),
    (["score", "{t}", "-o", "{o}", "--cues", "9M9"], "no cue named '9M9'"),
    (["score", "{t}", "-o", "{o}", "--loudness", "very"], "--target-lufs 'very': give a number or one of ebu-r128"),
])
def test_errors_are_one_line(main, fixtures_dir, tmp_path, capsys, argv, message):
    t = str(fixtures_dir / "timelines" / "simple_cut.otio")
    argv = [a.format(t=t, o=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_score_keeps_files_it_did_not_deliver_and_never_writes_an_input(main, fixtures_dir, tmp_path, capsys):
    """The outputs rule before the first render: a cue file this batch did not deliver (no filmscore-batch.json
    entry with these settings) is kept unless --overwrite, and no cue file may be an input, --overwrite or not."""
    t = str(fixtures_dir / "timelines" / "simple_cut.otio")
    out = tmp_path / "out"
    out.mkdir()
    stem = "Figure_1_-_Simple_Cut_List"  # the fixture's one cue, as a file name
    (out / f"{stem}.wav").write_bytes(b"someone else's cue")
    assert main(["score", t, "-o", str(out), "--maestro", "bach"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{stem}.wav exists; give --overwrite" in err and "\n" not in err
    assert (out / f"{stem}.wav").read_bytes() == b"someone else's cue"
    (out / f"{stem}.wav").unlink()
    theme = out / f"{stem}.theme.mid"  # the batch would move its fitted theme here
    theme.write_bytes(b"MThd")
    assert main(["score", t, "-o", str(out), "--midi", str(theme), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is the midi input" in err and theme.read_bytes() == b"MThd"


def test_score_reports_each_cue_as_plain_lines_on_a_pipe(main, fixtures_dir, tmp_path, capsys):
    """stderr is not a terminal under capsys: each cue's events are plain lines (here the fixture's one cue, 0.79 s,
    is shorter than a cue may be: it fails, the batch says so and exits 1)."""
    t = str(fixtures_dir / "timelines" / "simple_cut.otio")
    assert main(["score", t, "-o", str(tmp_path / "out"), "--maestro", "bach"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err and all(ln.startswith("filmscore score: Figure 1 - Simple Cut List (1/1) ") for ln in err)
    assert err[-1].startswith("filmscore score: Figure 1 - Simple Cut List (1/1) fail: cue 'Figure 1 - Simple Cut "
                              "List': 0.792 s is outside what the engine renders")
