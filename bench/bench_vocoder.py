"""The network vocoder against Griffin-Lim on held-out Mels: distance to the real audio, and speed, side by side.

For each held-out corpus clip (a 5.12 s excerpt), both vocoders invert (a) the ground-truth log-Mel of the real
audio and (b) the same Mel after a VAE round trip (what the render pipeline hands the vocoder). Reported per method:
multi-resolution STFT distance to the real audio (spectral convergence + log-magnitude L1 at 512/1024/2048-point
STFTs, the vocoder's training loss), log-Mel L1 of the re-analysed output against the input Mel, and seconds per
second of audio on one thread. Griffin-Lim runs at 32 iterations (what the pipeline uses) and at 100 (a stronger,
slower baseline). With `--listen DIR` it also writes the real / Griffin-Lim / network WAVs of the first clips and
a spectrogram sheet, for listening and looking. Writes bench/results/vocoder.json.

    python bench/bench_vocoder.py                                  # the shipped bundle's vocoder
    python bench/bench_vocoder.py --checkpoint ~/.cache/filmscore/train --listen /tmp/voc
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def _load_vocoder(args):
    from filmscore.engine.models import VocosVocoder

    if args.checkpoint is not None:
        from filmscore.engine.training.assemble import ema_model
        from filmscore.engine.training.loop import Run

        run = Run("vocoder", args.checkpoint)
        voc, _ = ema_model(run, "vocoder", VocosVocoder)
        if voc is None:
            raise SystemExit(f"{run.dir}: no vocoder checkpoint")
        return voc, f"checkpoint {run.dir} step {run.step}", None
    from filmscore.engine.bundle import load_bundle

    b = load_bundle(args.bundle) if args.bundle else load_bundle()
    if "vocoder" not in b.models:
        raise SystemExit(f"bundle {b.path} has no network vocoder")
    return b.models["vocoder"], f"bundle {b.name} {b.manifest.get('version')} ({b.hash})", b.models["vae"]


def _timed(fn, x):
    t0 = time.process_time()
    with torch.no_grad():
        y = fn(x)
    return y, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the shipped one)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="a training directory: its vocoder's EMA weights")
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--n-clips", type=int, default=12)
    ap.add_argument("--listen", type=Path, default=None, help="write WAVs and a spectrogram sheet here")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "vocoder.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from filmscore.engine.audio.griffin_lim import griffin_lim
    from filmscore.engine.audio.io import load_audio
    from filmscore.engine.audio.mel import MelSpectrogram
    from filmscore.engine.bundle import load_bundle
    from filmscore.engine.constants import MODEL_SAMPLE_RATE
    from filmscore.engine.training.corpus_data import DEFAULT_CORPUS, Corpus
    from filmscore.engine.training.train_vocoder import multi_resolution_stft_loss

    voc, source, vae = _load_vocoder(args)
    if vae is None:
        vae = load_bundle().models["vae"]  # the round trip the pipeline makes, with the shipped VAE
    corpus = Corpus(args.corpus or DEFAULT_CORPUS, split="heldout")
    front = MelSpectrogram(corpus.mel)
    n = 512  # 5.12 s
    clips = [c for c in corpus.clips if c.log_mel.shape[1] >= n]
    step = max(1, len(clips) // args.n_clips)
    clips = clips[::step][:args.n_clips]
    methods = {"griffin_lim_32": lambda m: griffin_lim(m, corpus.mel, n_iter=32),
               "griffin_lim_100": lambda m: griffin_lim(m, corpus.mel, n_iter=100),
               "network": voc}
    rows: dict[str, dict[str, list[float]]] = {}
    sheets = []
    for i, clip in enumerate(clips):
        real = torch.from_numpy(load_audio(clip.audio_path, MODEL_SAMPLE_RATE)[: n * 160].astype(np.float32))[None]
        mel = torch.from_numpy(clip.log_mel[:, :n].astype(np.float32))[None]
        with torch.no_grad():
            mean, _ = vae.encode(mel)
            mel_vae = vae.decode(mean)
        for cond, m in (("ground_truth_mel", mel), ("vae_mel", mel_vae)):
            for name, fn in methods.items():
                y, cpu = _timed(fn, m)
                r = rows.setdefault(f"{cond}/{name}", {"mrstft": [], "logmel_l1": [], "cpu_s_per_audio_s": []})
                r["mrstft"].append(float(multi_resolution_stft_loss(y, real)))
                r["logmel_l1"].append(float((front(y) - m).abs().mean()))
                r["cpu_s_per_audio_s"].append(cpu / (n / 100))
                if args.listen is not None and i < 3 and cond == "ground_truth_mel":
                    import soundfile as sf

                    args.listen.mkdir(parents=True, exist_ok=True)
                    if name == "griffin_lim_32":
                        sf.write(args.listen / f"{i}_real.wav", real[0].numpy(), MODEL_SAMPLE_RATE)
                        sheets.append([("real", real[0])])
                    if name != "griffin_lim_100":
                        sf.write(args.listen / f"{i}_{name}.wav", y[0].numpy(), MODEL_SAMPLE_RATE)
                        sheets[-1].append((name, y[0]))
        print(f"clip {i + 1}/{len(clips)} {clip.id}", flush=True)
    summary = {k: {m: round(float(np.mean(v)), 4) for m, v in r.items()} for k, r in rows.items()}
    ratios = {cond: {"mrstft_network_over_gl32": round(summary[f"{cond}/network"]["mrstft"]
                                                       / summary[f"{cond}/griffin_lim_32"]["mrstft"], 3),
                     "mrstft_network_over_gl100": round(summary[f"{cond}/network"]["mrstft"]
                                                        / summary[f"{cond}/griffin_lim_100"]["mrstft"], 3),
                     "speedup_network_vs_gl32": round(summary[f"{cond}/griffin_lim_32"]["cpu_s_per_audio_s"]
                                                      / summary[f"{cond}/network"]["cpu_s_per_audio_s"], 1)}
              for cond in ("ground_truth_mel", "vae_mel")}
    wins = {cond: int(sum(a < b for a, b in zip(rows[f"{cond}/network"]["mrstft"],
                                                rows[f"{cond}/griffin_lim_32"]["mrstft"])))
            for cond in ("ground_truth_mel", "vae_mel")}
    result = {"vocoder": source, "n_clips": len(clips), "seconds_per_clip": n / 100, "threads": 1,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
              "summary": summary, "ratios": ratios, "clips_where_network_beats_gl32": wins,
              "clips": [c.id for c in clips]}
    print(json.dumps({"vocoder": source, "summary": summary, "ratios": ratios, "wins": wins}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    if sheets:
        _spectrogram_sheet(sheets, args.listen / "spectrograms.png")


def _spectrogram_sheet(sheets, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no spectrogram sheet")
        return
    fig, axes = plt.subplots(len(sheets), len(sheets[0]), figsize=(4.2 * len(sheets[0]), 3.0 * len(sheets)),
                             squeeze=False)
    for r, row in enumerate(sheets):
        for c, (name, y) in enumerate(row):
            spec = torch.stft(y, 1024, 128, window=torch.hann_window(1024), return_complex=True).abs()
            db = 20 * torch.log10(spec.clamp(min=1e-5))
            axes[r][c].imshow(db[:256, 100:350].numpy(), origin="lower", aspect="auto", vmin=-80, vmax=float(db.max()),
                              cmap="magma", extent=(0.8, 2.8, 0, 4000))
            axes[r][c].set_title(f"{name}", fontsize=9)
            axes[r][c].set_ylabel("Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
