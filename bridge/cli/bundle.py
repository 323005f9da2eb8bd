"""`filmscore bundle info [DIR]`: what a model bundle holds (verifying every hash)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="inspect model bundles")
    bsub = p.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    info = bsub.add_parser("info", help="print a bundle's settings, components, provenance and metrics")
    info.add_argument("dir", type=Path, nargs="?", default=None, help="bundle directory (default: the shipped one)")
    add_json_flag(info)
    info.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from filmscore.engine.bundle import load_bundle

    info = load_bundle(args.dir).info()

    def human() -> None:
        print(f"{info['name']} {info['version']}  hash {info['hash']}  ({info['path']})")
        mel = info["mel"]
        print(f"  Mel: {mel['n_mels']} bands, {mel['sample_rate']} Hz, hop {mel['hop_length']}, n_fft {mel['n_fft']}")
        print(f"  film layout: {info['film_layout']}")
        for name, c in info["components"].items():
            params = f"{c['parameters'] / 1e6:.2f} M params" if c["parameters"] else ""
            print(f"  {name:<11} {c['class']:<22} {c['dtype']:<8} {params:<16} sha256 {c['sha256'][:12]}")
        if info["provenance"]:
            print(f"  provenance: {info['provenance']}")
        if info["metrics"]:
            print(f"  metrics: {info['metrics']}")

    emit(args, info, human)
    return 0
