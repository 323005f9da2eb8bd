"""Benchmark and measurements for the local controls (issue #4). Writes bench/results/controls.json.

    python bench/bench_controls.py                 # all three parts (~3 min on one busy core)
    python bench/bench_controls.py --only speed    # speed | agreement | fitting

- speed: `filmscore controls` on a 10-minute reference recording (FluidSynth render of maestro themes, 44.1 kHz
  stereo WAV, so decoding and resampling count): wall and CPU time of the command in a fresh process (imports
  included), and of `controls_from_audio` alone on the decoded 16 kHz signal. Everything runs on one thread, so
  CPU seconds are what the wall time would be on an idle core; the 1-minute load average is recorded beside them.
- agreement: the audio path. Maestro themes (one per master) fitted to 20 s, rendered by FluidSynth with each of
  several GM instruments, re-extracted with `controls_from_audio`; share of the MIDI melody's voiced frames whose
  pitch class the audio gives back (a frame the audio calls unvoiced counts as a miss), the same with the
  plain argmax (Music ControlNet's metric, no voicing), with librosa's default chroma octave weighting, and the
  Pearson r of the two dynamics curves.
- fitting: a generated set of cues (random library theme, 15-120 s, hit points every 3-10 s, at least 1 s apart):
  share of hit points with a strong beat within +-70 ms, for three tempo-bend limits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
INSTRUMENTS = {0: "acoustic grand piano", 11: "vibraphone", 19: "church organ", 24: "nylon guitar", 40: "violin",
               48: "string ensemble", 52: "choir aahs", 56: "trumpet", 60: "french horn", 65: "alto sax",
               68: "oboe", 71: "clarinet", 73: "flute"}


def _with_program(mid, program: int):
    import mido

    for track in mid.tracks:
        for i, msg in enumerate(track):
            if msg.type == "program_change":
                track[i] = msg.copy(program=program)
    if not any(m.type == "program_change" for t in mid.tracks for m in t):
        mid.tracks[-1].insert(0, mido.Message("program_change", program=program))
    return mid


def bench_speed(tmp: Path) -> dict:
    import soundfile as sf

    from filmscore.engine.audio.fluidsynth import render_midi
    from filmscore.engine.audio.io import load_audio
    from filmscore.engine.controls.audio import controls_from_audio
    from filmscore.engine.controls.request import controls_for_request

    _, fitted = controls_for_request(n_frames=60_000, maestro="mozart", theme="mozart-01")
    mid = _with_program(fitted.to_midi(), 40)
    t0 = time.perf_counter()
    left = render_midi(mid, sample_rate=44_100)
    render_s = time.perf_counter() - t0
    wave = left[: 600 * 44_100]
    wav = tmp / "ten_minutes.wav"
    sf.write(str(wav), np.stack([wave, 0.8 * wave], axis=1), 44_100)  # stereo, as a recording would be
    cmd = [sys.executable, "-c", "import sys; from filmscore.bridge.cli import main; sys.exit(main(sys.argv[1:]))",
           "controls", str(wav), "-o", str(tmp / "c.npz"), "--json"]
    runs, cpu = [], []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    inner = json.loads(out.stdout)["seconds"]
    x = load_audio(wav, 16_000)
    t0, c0 = time.perf_counter(), time.process_time()
    c = controls_from_audio(x, 16_000)
    extract, extract_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"audio_s": len(wave) / 44_100, "file": "44.1 kHz stereo WAV (FluidSynth render of mozart-01, violin)",
            "cli_wall_s": [round(r, 2) for r in runs], "cli_wall_s_best": round(min(runs), 2),
            "cli_cpu_s": [round(r, 2) for r in cpu], "cli_cpu_s_best": round(min(cpu), 2),
            "cli_controls_s (load+decode+resample+extract)": round(inner, 2),
            "controls_from_audio_s": round(extract, 2), "controls_from_audio_cpu_s": round(extract_cpu, 2),
            "load_average_1min": round(os.getloadavg()[0], 2), "n_frames": c.n_frames,
            "fluidsynth_render_s": round(render_s, 2), "goal_s": 10.0}


def bench_agreement(seconds: float = 20.0) -> dict:
    from filmscore.engine.audio.fluidsynth import render_midi
    from filmscore.engine.controls.audio import LIBROSA_OCTAVE_WEIGHTING, chroma_from_audio, controls_from_audio
    from filmscore.engine.controls.maestros import master_names
    from filmscore.engine.controls.request import controls_for_request

    n = int(seconds * 100)
    themes = []
    for i, master in enumerate(master_names()):
        c_midi, fitted = controls_for_request(n_frames=n, maestro=master, seed=i)
        themes.append((master, fitted.theme.name.split(" ")[0], c_midi, fitted.to_midi()))
    rows = {}
    for program, name in INSTRUMENTS.items():
        hit = tot = hit_arg = hit_lib = 0
        rs = []
        for master, theme_id, c_midi, mid in themes:
            wave = render_midi(_with_program(mid, program), sample_rate=16_000)
            c_audio = controls_from_audio(wave, 16_000, n_frames=n)
            voiced = c_midi.melody.sum(axis=1) > 0
            want = c_midi.melody[voiced].argmax(axis=1)
            got_voiced = c_audio.melody[voiced].sum(axis=1) > 0
            hit += int(((c_audio.melody[voiced].argmax(axis=1) == want) & got_voiced).sum())
            chroma, _ = chroma_from_audio(wave, 16_000, n)
            hit_arg += int((chroma[voiced].argmax(axis=1) == want).sum())
            chroma_lib, _ = chroma_from_audio(wave, 16_000, n, octave_weighting=LIBROSA_OCTAVE_WEIGHTING)
            hit_lib += int((chroma_lib[voiced].argmax(axis=1) == want).sum())
            tot += int(voiced.sum())
            rs.append(float(np.corrcoef(c_midi.dynamics, c_audio.dynamics)[0, 1]))
        rows[name] = {"program": program, "voiced_frames": tot, "agreement": round(hit / tot, 4),
                      "argmax_agreement": round(hit_arg / tot, 4),
                      "argmax_agreement_librosa_default_weighting": round(hit_lib / tot, 4),
                      "dynamics_r_mean": round(float(np.mean(rs)), 3)}
        print(f"  {name:22s} {hit / tot:.3f} (argmax {hit_arg / tot:.3f}, librosa default {hit_lib / tot:.3f}), "
              f"dynamics r {np.mean(rs):.2f}", file=sys.stderr)
    agree = [r["agreement"] for r in rows.values()]
    return {"themes": [t[1] for t in themes], "seconds_per_theme": seconds, "instruments": rows,
            "mean_agreement": round(float(np.mean(agree)), 4),
            "instruments_at_or_above_0.90": sum(a >= 0.9 for a in agree), "n_instruments": len(agree),
            "goal": 0.90}


def bench_fitting(n_cues: int = 300, seed: int = 0) -> dict:
    from filmscore.engine.controls.fit import FitSettings, fit_theme
    from filmscore.engine.controls.maestros import load_theme, master_names

    names = master_names()
    out = {}
    for max_change in (0.10, 0.15, 0.20):
        rng = np.random.default_rng(seed)
        caught = total = 0
        errors, jumps, secs = [], [], []
        for i in range(n_cues):
            theme = load_theme(names[i % len(names)], seed=int(rng.integers(1 << 30)))
            duration = float(rng.uniform(15, 120))
            hits = np.sort(rng.uniform(0.5, duration - 0.5, max(1, int(duration / rng.uniform(3, 10)))))
            hits = hits[np.concatenate([[True], np.diff(hits) >= 1.0])]
            t0 = time.perf_counter()
            ft = fit_theme(theme, duration, hits, FitSettings(max_change=max_change))
            secs.append(time.perf_counter() - t0)
            caught += sum(h.caught for h in ft.hits)
            total += len(ft.hits)
            errors += [abs(h.error_s) for h in ft.hits]
            st = ft._stretches()
            jumps.append(float(np.exp(np.max(np.abs(np.diff(np.log(st)))))) if st.size > 1 else 1.0)
        out[f"max_change_{max_change:.2f}"] = {
            "hit_share_within_70ms": round(caught / total, 4), "hits": total, "cues": n_cues,
            "median_abs_error_ms": round(1000 * float(np.median(errors)), 1),
            "median_largest_tempo_step": round(float(np.median(jumps)), 3),
            "fit_ms_mean": round(1000 * float(np.mean(secs)), 1)}
        print(f"  max change {max_change:.2f}: {caught / total:.3f} of {total} hits", file=sys.stderr)
    return {"default_max_change": FitSettings().max_change, "results": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="controls benchmark (issue #4)")
    ap.add_argument("--only", choices=["speed", "agreement", "fitting"], action="append")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "controls.json")
    args = ap.parse_args(argv)
    parts = args.only or ["speed", "agreement", "fitting"]
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.out.is_file():  # keep the parts not rerun
        result = {**json.loads(args.out.read_text()), **result}
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            print(f"{part}:", file=sys.stderr)
            t0 = time.perf_counter()
            result[part] = (bench_speed(Path(tmp)) if part == "speed" else bench_agreement() if part == "agreement"
                            else bench_fitting())
            result[part]["bench_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in parts}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
