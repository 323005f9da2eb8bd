"""`filmscore render` and its siblings as a newcomer meets them: no input is ever overwritten, an existing output needs
--overwrite, every refusal comes before the model loads (one line, no leading blank), a truncated picture is stated,
progress reaches a pipe as plain lines, the seed's theme is recorded. Real MP4s (PyAV), real MIDI (mido), the tiny
test bundle; the full and read-only disks are real tmpfs mounts in a user namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from cli_support import CLI_ARGV, run_cli
from small_fs import run_in_small_fs
from video_support import write_clip

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.controls.maestros import load_theme


def write_theme(path: Path) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for note in (60, 62, 64, 65, 67, 65, 64, 62):
        track.append(mido.Message("note_on", note=note, velocity=80, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=480))
    mid.save(str(path))
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The tiny bundle with the film encoder's own layout, so that real clips render."""
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", seed=0)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    clip = write_clip(d / "clip.mp4", 3.0)
    data = clip.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])  # index intact, the picture cut short
    return {"clip": clip, "truncated": d / "truncated.mp4", "short": write_clip(d / "short.mp4", 0.48),
            "theme": write_theme(d / "theme.mid")}


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not proc.stderr.startswith("\n"), repr(proc.stderr[:80])  # no blank line before the error
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- inputs are never outputs --------------------------------------------------------------------------------------

def test_a_typo_cannot_replace_the_reference(tmp_path, media, bundle):
    ref = tmp_path / "ref.wav"
    import soundfile as sf

    sf.write(str(ref), 0.1 * np.sin(np.arange(16000 * 3) / 16000 * 2 * np.pi * 440), 16000)
    before = ref.read_bytes()
    os.link(ref, tmp_path / "hard.wav")
    (tmp_path / "soft.wav").symlink_to(ref)
    for given in (ref, tmp_path / "hard.wav", tmp_path / "soft.wav", Path("ref.wav")):
        proc = run_cli("render", media["clip"], "--reference", given, "--duration", "2", "--bundle", bundle,
                       "-o", "ref.wav", "--overwrite", cwd=tmp_path)  # --overwrite does not make an input an output
        _one_line_error(proc, "reference audio input", "never overwrites its inputs")
    assert ref.read_bytes() == before


def test_a_sidecar_cannot_replace_the_midi_theme(tmp_path, media, bundle):
    theme = shutil.copy(media["theme"], tmp_path / "cue.theme.mid")  # OUT.theme.mid is render's fitted-theme file
    before = Path(theme).read_bytes()
    proc = run_cli("render", "--duration", "2", "--midi", theme, "--bundle", bundle, "-o", tmp_path / "cue.wav",
                   "--overwrite")
    _one_line_error(proc, "midi input")
    assert Path(theme).read_bytes() == before


def test_the_video_cannot_be_an_output_of_encode_or_controls(tmp_path, media):
    clip = shutil.copy(media["clip"], tmp_path / "clip.mp4")
    _one_line_error(run_cli("encode", clip, "--plot", clip, "--overwrite"), "video input")
    theme = shutil.copy(media["theme"], tmp_path / "theme.mid")
    _one_line_error(run_cli("controls", theme, "-o", tmp_path / "c.npz", "--duration", "4", "--midi-out", theme,
                            "--overwrite"), "is the source input")


# -- an existing output is kept unless --overwrite ----------------------------------------------------------------

def test_existing_output_or_sidecar_needs_overwrite(tmp_path, bundle):
    out = tmp_path / "cue.wav"
    out.write_bytes(b"an earlier cue")
    _one_line_error(run_cli("render", "--duration", "2", "--bundle", bundle, "-o", out), "exists", "--overwrite")
    assert out.read_bytes() == b"an earlier cue"
    out.unlink()
    (tmp_path / "cue.json").write_text("{}")  # a side file alone is kept the same way
    _one_line_error(run_cli("render", "--duration", "2", "--bundle", bundle, "-o", out), "cue.json", "--overwrite")
    assert not out.exists()
    proc = run_cli("render", "--duration", "2", "--steps", "1", "--bundle", bundle, "-o", out, "--overwrite", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "cue.json").read_text())["schema"] == "filmscore.cue/1"


def test_controls_keeps_an_existing_file(tmp_path, media):
    out = tmp_path / "c.npz"
    out.write_bytes(b"keep me")
    _one_line_error(run_cli("controls", media["theme"], "-o", out), "exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert run_cli("controls", media["theme"], "-o", out, "--overwrite").returncode == 0
    assert np.load(out)["melody"].shape[1] == 12


# -- refusals come before the model loads --------------------------------------------------------------------------

def test_a_missing_video_is_answered_without_loading_torch(tmp_path):
    """`render nope.mp4` answers from the light checks alone: the render path (torch, the model) is never
    imported, nor scipy (a second of imports on a busy machine), which is what makes it as fast as `encode`."""
    code = ("import sys; from filmscore.bridge.cli import main; rc = main(['render', 'nope.mp4', '-o', 'x.wav']); "
            "print(*(m in sys.modules for m in ('torch', 'scipy', 'filmscore.engine.render'))); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stdout.split() == ["False", "False", "False"], (proc.stdout, proc.stderr)
    assert proc.stderr == "filmscore render: error: nope.mp4: no such video\n"


def test_inputs_are_checked_before_the_bundle_is_loaded(tmp_path, bundle):
    """A broken weight file would fail the model load; a bad MIDI file is reported first."""
    broken = Path(shutil.copytree(bundle, tmp_path / "broken"))
    (broken / "unet.safetensors").write_bytes(b"not weights")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    _one_line_error(run_cli("render", "--duration", "2", "--midi", bad, "--bundle", broken, "-o", tmp_path / "x.wav"),
                    "bad.mid", "not a readable standard MIDI file")
    theme = write_theme(tmp_path / "t.mid")
    _one_line_error(run_cli("render", "--duration", "2", "--midi", theme, "--track", "3", "--bundle", broken,
                            "-o", tmp_path / "x.wav"), "track 3 does not exist")


def test_unreadable_and_short_pictures_are_refused_up_front(tmp_path, media, bundle):
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    _one_line_error(run_cli("render", junk, "-o", tmp_path / "x.wav"), "junk.mp4", "cannot be opened")
    # the same 1 s minimum for a given --duration and for the picture's own length
    _one_line_error(run_cli("render", "--duration", "0.5", "-o", tmp_path / "x.wav"), "outside 1.0..600.0")
    _one_line_error(run_cli("render", media["short"], "--bundle", bundle, "-o", tmp_path / "x.wav"),
                    "short.mp4", "a cue is at least 1 s")


# -- a truncated picture -------------------------------------------------------------------------------------------

def test_truncated_picture_range_is_an_error_before_work(tmp_path, media, bundle):
    line = _one_line_error(run_cli("render", media["truncated"], "--duration", "2.8", "--bundle", bundle,
                                   "-o", tmp_path / "x.wav"), "truncated.mp4", "no picture decodes at")
    assert "the container says 3.00 s" in line


def test_truncated_picture_to_the_end_is_a_stated_warning(tmp_path, media, bundle):
    proc = run_cli("render", media["truncated"], "--steps", "1", "--bundle", bundle, "-o", tmp_path / "cue.wav",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    meta = json.loads((tmp_path / "cue.json").read_text())
    assert summary["warnings"] == meta["warnings"] and len(meta["warnings"]) == 1
    assert "truncated" in meta["warnings"][0] and "container says 3.00 s" in meta["warnings"][0]
    assert 1.0 <= summary["duration_s"] < 2.5  # the picture that decodes, not the 3 s the index claims
    proc = run_cli("render", media["clip"], "--steps", "1", "--bundle", bundle, "-o", tmp_path / "whole.wav", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["warnings"] == []


# -- progress on a pipe, the seed's theme --------------------------------------------------------------------------

def test_progress_reaches_a_pipe_as_plain_lines_and_the_theme_is_recorded(tmp_path, bundle):
    proc = run_cli("render", "--duration", "2", "--steps", "2", "--maestro", "bach", "--seed", "3", "--bundle", bundle,
                   "-o", tmp_path / "cue.wav")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[0].strip(), repr(proc.stderr[:80])
    stages = [ln.split()[2] for ln in lines if ln.startswith("filmscore render: ")]
    assert {"controls", "denoise", "deliver"} <= set(stages)
    assert "filmscore render: denoise  50%" in lines[stages.index("denoise")]  # 1 of 2 steps
    assert any(ln.startswith("filmscore render: denoise 100%") for ln in lines)
    drawn = load_theme("bach", None, 3).meta["id"]
    meta = json.loads((tmp_path / "cue.json").read_text())
    assert meta["theme"]["id"] == drawn and meta["theme"]["chosen_by"] == "seed"
    assert lines[-1].startswith("wrote ") and drawn in lines[-1] and lines[-1].endswith("(drawn by the seed)")


# -- the output folder: read-only, full ----------------------------------------------------------------------------

def test_full_or_read_only_destination_is_one_line_before_work(tmp_path, bundle):
    out = tmp_path / "out"
    out.mkdir()
    cli = [*CLI_ARGV, "render", "--bundle", str(bundle), "-o", str(out / "cue.wav")]
    proc = run_in_small_fs(out, "256k", cli + ["--duration", "30"])
    _one_line_error(proc, f"output folder {out}", "MB free", "need about")
    proc = run_in_small_fs(out, "1m", cli + ["--duration", "2"], ro=True)
    _one_line_error(proc, f"output folder {out}", "cannot write there", "Read-only file system")


def test_a_disk_that_fills_during_the_write_is_named(tmp_path):
    """libsndfile says "System error" for ENOSPC; the render's writer names the file and the full disk."""
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys, numpy as np, soundfile as sf; from pathlib import Path; "
            "from filmscore.engine.render import write_atomically; from filmscore.engine.errors import FilmscoreError\n"
            "p = Path(sys.argv[1]) / 'cue.wav'\n"
            "wav = lambda t: sf.write(str(t), np.zeros(10**6), 48000, subtype='PCM_24', format='WAV')\n"
            "try:\n    write_atomically(p, wav)\n"
            "except FilmscoreError as e:\n    print(e)\n"
            "print(sorted(x.name for x in p.parent.iterdir()))")
    proc = run_in_small_fs(out, "512k", [sys.executable, "-c", code, str(out)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{out / 'cue.wav'}: cannot write (no space left on device)", "[]"]
