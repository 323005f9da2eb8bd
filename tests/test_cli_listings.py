"""The CLI's smaller promises: `--help` shows defaults and says what each option is, `bundle info` reads the manifest
without torch and prints no Python dicts, `maestros` keeps its columns on a pipe, delivered files follow the umask,
plain progress lines carry stage, percent and ETA (an injected clock: no wall time)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import pytest

from cli_support import run_cli

from filmscore.bridge.cli import build_parser
from filmscore.bridge.cli.common import PlainProgress
from filmscore.bridge.deliverables import atomic_write_bytes
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.controls.maestros import masters


def _help(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return " ".join(out.getvalue().split())  # one line: wrapping may split "(default: X)"


@pytest.mark.parametrize("command", [("render",), ("demo",), ("score",)])
def test_help_shows_the_defaults(command):
    text = _help(*command)
    for shown in ("--seed N", "(default: 0)", "(default: dpmpp)", "(default: auto)"):
        assert shown in text, (shown, command)
    if command != ("score",):
        for shown in ("(default: 3.0)", "(default: 1.0)", "(default: 48000)", "(default: -23.0)"):
            assert shown in text, (shown, command)
    assert "(default: None)" not in text and "(default: False)" not in text


def test_render_help_explains_vocoder_track_and_duration():
    text = _help("render")
    assert re.search(r"--vocoder \{auto,network,griffin-lim\} \S", text)  # the option has help text
    assert "Griffin-Lim" in text and "0-based" in text and "--overwrite" in text
    assert "1..600" in text and "at least 1 s" in text


def test_bundle_info_reads_the_manifest_without_torch(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "tiny", seed=0)
    code = ("import sys; from filmscore.bridge.cli import main; rc = main(['bundle', 'info', sys.argv[1]]); "
            "print('torch' in sys.modules, file=sys.stderr); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr.strip() == "False", proc.stderr
    assert "{" not in proc.stdout and "'" not in proc.stdout  # no Python dict or list reprs
    assert "16000 Hz mono" in proc.stdout
    # the counts read from safetensors headers are the loaded models' parameter counts
    loaded = load_bundle(bundle)
    lines = {ln.split()[0]: ln for ln in proc.stdout.splitlines()[4:] if ln.startswith("    ")}
    for name, model in loaded.models.items():
        n = sum(p.numel() for p in model.state_dict().values())
        assert f"{n / 1e6:7.2f} M weights" in lines[name]
    assert loaded.info()["components"]["unet"]["parameters"] == sum(
        p.numel() for p in loaded.models["unet"].state_dict().values())


def test_bundle_info_names_a_corrupted_file(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "tiny", seed=0)
    with open(bundle / "vae.safetensors", "r+b") as f:
        f.seek(-16, os.SEEK_END)  # in the weights, past the header
        f.write(b"\x00\x01\x02")
    proc = run_cli("bundle", "info", str(bundle), timeout_s=300)
    assert proc.returncode == 2 and "vae.safetensors: sha256 does not match" in proc.stderr
    proc = run_cli("bundle", "info", str(bundle), "--no-verify", "--json", timeout_s=300)
    assert proc.returncode == 0 and json.loads(proc.stdout)["verified"] is False


def test_maestros_keeps_whole_columns_on_a_pipe():
    proc = run_cli("maestros", timeout_s=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for m in masters():
        row = next(ln for ln in lines if ln.startswith(m.name + " "))
        assert m.display in row and m.era in row and row.endswith(f"({m.themes[0].id}..{m.themes[-1].id})")
    assert "…" not in proc.stdout and all(ln == ln.rstrip() for ln in lines)
    # and a reader that stops early ends the command quietly
    proc = subprocess.run(f"'{sys.executable}' -m filmscore.bridge.cli maestros bach | head -1", shell=True,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_delivered_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "cue.json", b"{}\n")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_plain_progress_lines_carry_stage_percent_and_eta():
    now = [100.0]
    out = io.StringIO()
    report = PlainProgress("filmscore render", stream=out, clock=lambda: now[0])
    report("picture", 0.0, "")
    for i in range(1, 26):  # 25 denoising steps, 2 s each
        now[0] += 2.0
        report("denoise", i / 25, f"step {i}/25")
    report("deliver", 1.0, "wrote cue.wav")
    lines = out.getvalue().splitlines()
    assert lines[0] == "filmscore render: picture   0%"
    denoise = [ln for ln in lines if " denoise " in ln]
    # a line at the stage's first report and at every 10 % after, never twice for one step of 10 %
    assert [int(ln.split()[3].rstrip("%")) for ln in denoise] == [4, 12, 20, 32, 40, 52, 60, 72, 80, 92, 100]
    # the stage started at its first report (step 1): 4 more steps took 8 s, so 20 % done leaves 32 s
    assert denoise[2] == "filmscore render: denoise  20% (ETA 32 s)"
    assert denoise[-1] == "filmscore render: denoise 100% step 25/25"
    assert lines[-1] == "filmscore render: deliver 100% wrote cue.wav"
