"""`filmscore bundle info [DIR]`: what a model bundle holds, from its manifest (every file's sha256 verified).

Reads `bundle.json` and the safetensors headers only (`engine.bundle_manifest`): no model is built and torch is not
imported, so it answers in well under a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import HelpFormatter, add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="inspect model bundles")
    bsub = p.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    info = bsub.add_parser("info", help="print a bundle's settings, components, provenance and metrics",
                           formatter_class=HelpFormatter)
    info.add_argument("dir", type=Path, nargs="?", default=None, help="bundle directory (default: the shipped one)")
    info.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the component files")
    add_json_flag(info)
    info.set_defaults(run=run_info)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _provenance_lines(prov: dict[str, Any]) -> list[str]:
    lines = []
    if prov.get("hardware") or prov.get("torch"):
        lines.append(f"trained on {prov.get('hardware', '?')}, torch {prov.get('torch', '?')}")
    for stage, st in (prov.get("stages") or {}).items():
        seen = st.get("corpus_hours_seen")
        lines.append(f"{stage:<11} {st.get('steps', '?')} steps, {_value(st.get('train_hours', '?'))} h"
                     + (f", corpus {_value(seen[0])}..{_value(seen[-1])} h" if seen else "")
                     + (f", {len(st['sessions'])} recorded session(s)" if st.get("sessions") else ""))
    corpus = prov.get("corpus")
    if corpus:
        lines.append(f"corpus      {corpus.get('clips', '?')} clips, {_value(corpus.get('hours', '?'))} h, "
                     f"{corpus.get('works', '?')} works, {corpus.get('masters', '?')} masters")
        for split, sp in (corpus.get("splits") or {}).items():
            lines.append(f"  {split:<9} {sp.get('clips', '?')} clips, {_value(sp.get('hours', '?'))} h, "
                         f"{sp.get('works', '?')} works, {sp.get('masters', '?')} masters")
    known = {"hardware", "torch", "stages", "corpus"}
    lines += [f"{k}: {_value(v)}" for k, v in prov.items() if k not in known and not isinstance(v, dict)]
    return lines


def data_lines(data: dict[str, Any] | None) -> list[str]:
    """The data manifest (engine/data/data_manifest.py) as `bundle info` prints it: each source with its hours
    (train / held-out) and licence, then the weights' licence and its note."""
    if not data:
        return ["  data: no data manifest in this bundle (bundles before v2 carry none)"]
    src = data.get("sources", {})

    def h(s: dict) -> str:
        hh = s.get("hours", {})
        return f"{hh.get('train', 0):.2f} h train, {hh.get('heldout', 0):.2f} h held-out"

    lines = [f"  data: {data.get('clips', '?')} clips, {h(data)}"]
    for s in src.get("scores", []):
        lic = s.get("licence", {})
        lines.append(f"    {s['source']} ({s['master']}, {s['works']} works): {h(s)}; commercial use "
                     f"{lic.get('commercial_use')} ({lic.get('file')})")
    for s in src.get("soundfonts", []):
        lines.append(f"    {s['source']} (Debian {s.get('package')}): {h(s)}; licence {s.get('licence')} "
                     f"({s.get('copyright') or 'copyright file not installed'})")
    for s in src.get("films", []):
        lines.append(f"    {s['source']}: {h(s)}; licence {s.get('licence')}")
    w = data.get("weights", {})
    lines.append(f"  weights licence: {w.get('licence')}; {w.get('note')}")
    return lines


def run_info(args: argparse.Namespace) -> int:
    from filmscore.engine.bundle_manifest import describe_bundle

    info = describe_bundle(args.dir, verify=not args.no_verify)

    def human() -> None:
        print(f"{info['name']} {info['version']}  hash {info['hash']}  ({info['path']})")
        mel = info["mel"]
        audio = (f"stems {', '.join(info['stems'])} + their stereo mix" if info.get("stems") else "mono")
        print(f"  audio: {mel['sample_rate']} Hz {audio}; Mel {mel['n_mels']} bands, hop {mel['hop_length']}, "
              f"n_fft {mel['n_fft']}")
        print(f"  film layout: {info['film_layout']}")
        print("  components" + ("" if info["verified"] else " (sha256 not checked)") + ":")
        for name, c in info["components"].items():
            print(f"    {name:<11} {c['class']:<22} {c['dtype']:<8} {c['parameters'] / 1e6:7.2f} M weights  "
                  f"{c['bytes'] / 1e6:6.1f} MB  sha256 {c['sha256'][:12]}")
        prov = _provenance_lines(info["provenance"] or {})
        if prov:
            print("  provenance:")
            for line in prov:
                print(f"    {line}")
        if info["metrics"]:
            print("  metrics:")
            width = max(len(k) for k in info["metrics"])
            for k, v in info["metrics"].items():
                print(f"    {k:<{width}}  {_value(v)}")
        for line in data_lines(info.get("data")):
            print(line)

    emit(args, info, human)
    return 0
