"""Evaluation report: `report.json` (every number), `report.md` (tables, plots) and `plots/*.png`.

Plots (matplotlib, Agg): one summary figure of the main metrics per system, and per item the requested vs
re-extracted melody (pitch class per frame) and dynamics (centred dB) for the model and its baselines, and the
model cue's Mel spectrogram with the picture's cuts, the requested hit points and the detected onsets marked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import sidecar
from ..constants import CONTROL_FRAME_RATE, MEL_FRAME_RATE
from ..extras import require
from .runner import SYSTEMS, EvalRun

REPORT_FORMAT = sidecar.EVAL_REPORT.tag  # report.json's tag; read one back with sidecar.load(EVAL_REPORT, path)

# (key, label, higher is better?) in table order
METRICS: tuple[tuple[str, str, bool | None], ...] = (
    ("melody_accuracy_pooled", "melody accuracy (pooled)", True),
    ("melody_accuracy_mean", "melody accuracy (mean per cue)", True),
    ("dynamics_r_micro", "dynamics r (micro: mean per cue)", True),
    ("dynamics_r_macro", "dynamics r (macro: pooled frames)", True),
    ("cut_onset_rate", "cuts with an onset within 70 ms", True),
    ("hit_onset_rate", "hit points with an onset within 70 ms", True),
    ("onset_chance", "chance of that (time within 70 ms of an onset)", None),
    ("beat_f1", "beat F1 vs hit points (mir_eval, 70 ms)", True),
    ("beat_transition_iou", "beat/transition IoU", True),
    ("motion_loudness_r", "motion-loudness r", True),
    ("originality_melodic", "originality, melodic (1 - max n-gram containment)", True),
    ("originality_embedding", "originality, embedding (1 - max cosine)", True),
    ("copy_rate_melodic", "copy rate, melodic", False),
    ("copy_rate_embedding", "copy rate, embedding", False),
    ("maestro_top1", "maestro-guided cues recognised as their master (top-1)", True),
    ("n_maestro_cues", "maestro-guided cues whose master the classifier knows", None),
    ("own_master_top1", "other cues recognised as their piece's master (top-1)", True),
    ("fad_proxy_embedding", "FAD-proxy, self-trained embedding", False),
    ("fad_proxy_handcrafted", "FAD-proxy, handcrafted statistics", False),
    ("n_reference_segments", "FAD-proxy reference segments (set's own stretches left out)", None),
    ("plan_hits_on_beats", "plan: the picture's hits on a plan beat (25 ms)", True),
    ("plan_tempo_matches", "plan: audio tempo = plan's (8 %, octaves allowed)", True),
    ("plan_mode_matches", "plan: audio mode = plan's", True),
    ("plan_pulse_on_beats", "plan: onset strength on plan beats / between", True),
    ("n_plan_cues", "cues measured against a plan", None),
    ("n_cues", "cues", None),
)
SYSTEM_LABELS = {"model": "model", "no_control": "no ControlNet (control guidance 0)",
                 "shuffled": "shuffled controls", "ground_truth": "ground-truth render",
                 "gt_vae_vocoder": "ground truth via VAE + vocoder", "griffin_lim": "Griffin-Lim of GT Mel",
                 "plan": "model rendering the item's plan"}


def _clean(x):
    """JSON-safe: nan/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def to_json(run: EvalRun, command: str = "") -> dict:
    o = run.options
    return _clean({
        sidecar.KEY: REPORT_FORMAT, "command": command, "set": run.set_name, "bundle": run.bundle,
        "options": {"systems": list(o.systems), "steps": o.render.steps, "scheduler": o.render.scheduler,
                    "picture_guidance": o.render.picture_guidance, "control_guidance": o.render.control_guidance,
                    "control_strength": o.render.control_strength, "vocoder": o.render.vocoder,
                    "transcriber": o.transcriber, "backend": o.render.backend},
        "reference": run.reference if run.reference is not None else {"missing": run.reference_missing},
        "systems": run.pooled,
        "cues": [{"system": c.system, "item": c.item, **c.scores()} for c in run.cues],
        "seconds": run.seconds,
    })


def fmt_metric(v) -> str:
    """A metric as the report and `filmscore eval` print it: 3 decimals (1 from 100 up), integers as such, "–" when
    missing or not finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def _plot_summary(run: EvalRun, path: Path) -> None:
    matplotlib = require("matplotlib", "eval", "the evaluation report's plots")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, _, hb in METRICS if hb is not None
            and any(math.isfinite(run.pooled[s].get(k, float("nan"))) for s in run.pooled)]
    systems = [s for s in SYSTEMS if s in run.pooled]
    n = len(keys)
    cols = 3
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, k in zip(axes.ravel(), keys):
        vals = [run.pooled[s].get(k, float("nan")) for s in systems]
        ax.bar(range(len(systems)), [v if math.isfinite(v) else 0 for v in vals],
               color=[colors(i) for i in range(len(systems))])
        if k in ("cut_onset_rate", "hit_onset_rate"):  # the chance level of each system's cues
            chance = [run.pooled[s].get("onset_chance", float("nan")) for s in systems]
            ax.scatter(range(len(systems)), chance, marker="_", s=300, c="k", zorder=3, label="chance")
            ax.legend(fontsize=6)
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, rotation=35, ha="right", fontsize=7)
        ax.set_title(dict((a, b) for a, b, _ in METRICS)[k], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_item(run: EvalRun, item_id: str, path: Path) -> bool:
    matplotlib = require("matplotlib", "eval", "the evaluation report's plots")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = run.prepared[item_id]
    cues = {c.system: c for c in run.cues if c.item == item_id}
    main = cues.get("model") or next(iter(cues.values()), None)
    if main is None:
        return False
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    t = np.arange(p.n_frames) / CONTROL_FRAME_RATE
    ax = axes[0]
    req = p.controls.melody
    voiced = req.sum(1) > 0
    if p.controls.melody_present:
        ax.scatter(t[voiced], req[voiced].argmax(1), s=6, c="k", label="requested", zorder=3)
    for k, (name, c) in enumerate(cues.items()):
        if c.adherence is None:
            continue
        em = c.adherence.extracted_melody
        v = em.sum(1) > 0
        ax.scatter(t[:len(em)][v], em[v].argmax(1) + 0.12 * (k + 1), s=2, label=f"{name} (re-extracted)")
    ax.set_yticks(range(12))
    ax.set_yticklabels(["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"], fontsize=7)
    ax.set_title(f"{item_id}: melody (pitch class per frame)", fontsize=9)
    ax.legend(fontsize=6, loc="upper right", ncol=3, markerscale=3)
    ax = axes[1]
    if p.controls.dynamics_present:
        d = p.controls.dynamics.astype(np.float64)
        ax.plot(t, d - d.mean(), "k", lw=2, label="requested")
    for name, c in cues.items():
        if c.adherence is None:
            continue
        e = c.adherence.extracted_db.astype(np.float64)
        ax.plot(t[:len(e)], e - e.mean(), lw=1, label=f"{name} (r={fmt_metric(c.adherence.dynamics_r)})")
    ax.set_ylabel("dB (centred)")
    ax.set_title("dynamics", fontsize=9)
    ax.legend(fontsize=6, loc="upper right", ncol=3)
    ax = axes[2]
    m = main.log_mel
    ax.imshow(m, origin="lower", aspect="auto", extent=(0, m.shape[1] / MEL_FRAME_RATE, 0, m.shape[0]),
              cmap="magma")
    for c in p.cuts_s:
        ax.axvline(c, color="cyan", lw=1.5)
    for h in p.hits_s:
        ax.axvline(h, color="lime", lw=1, ls="--")
    for o in main.rhythm.onsets_s:
        ax.plot([o, o], [m.shape[0] - 10, m.shape[0]], color="white", lw=0.8)
    ax.set_title(f"{main.system} cue: log-Mel; cuts (cyan), hit points (green dashed), onsets (white ticks)",
                 fontsize=9)
    ax.set_xlabel("s")
    ax.set_ylabel("Mel band")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(run: EvalRun, out_dir: Path, command: str = "", max_item_plots: int = 12) -> dict:
    """Write report.json, report.md and plots/ into `out_dir`; returns the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plots").mkdir(exist_ok=True)
    doc = to_json(run, command)
    (out_dir / "report.json").write_text(json.dumps(doc, indent=1) + "\n")
    _plot_summary(run, out_dir / "plots" / "summary.png")
    item_plots = []
    for item_id in list(run.prepared)[:max_item_plots]:
        if _plot_item(run, item_id, out_dir / "plots" / f"{item_id}.png"):
            item_plots.append(item_id)
    (out_dir / "report.md").write_text(markdown(run, doc, item_plots))
    return doc


def markdown(run: EvalRun, doc: dict, item_plots: list[str]) -> str:
    systems = [s for s in SYSTEMS if s in run.pooled]
    o = run.options.render
    lines = [f"# filmscore evaluation: set `{run.set_name}`, bundle `{run.bundle.get('name')}` "
             f"({run.bundle.get('hash')})", ""]
    b = run.bundle
    stages = ", ".join(f"{k} {v.get('steps')} steps / {v.get('train_hours')} h"
                       for k, v in (b.get("provenance", {}).get("stages") or {}).items())
    lines += [f"Bundle `{b.get('name')}` version {b.get('version')} ({b.get('path')})"
              + (f"; training: {stages}" if stages else "")
              + f"; backend `{(b.get('backend') or {}).get('name', 'torch')}`.", ""]
    if doc.get("command"):
        lines += ["Made with:", "", f"    {doc['command']}", ""]
    lines += [f"Sampling: {o.steps} steps {o.scheduler}, picture guidance {o.picture_guidance}, control guidance "
              f"{o.control_guidance}, vocoder {o.vocoder}. {len(run.prepared)} items, {len(run.cues)} cues, "
              f"{run.seconds:.0f} s.", "",
              "Systems: " + "; ".join(f"`{s}` = {SYSTEM_LABELS[s]}" for s in systems) + ".", "",
              "| metric | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for key, label, hb in METRICS:
        vals = [run.pooled[s].get(key) for s in systems]
        if all(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in vals):
            continue
        arrow = "" if hb is None else (" ↑" if hb else " ↓")
        lines.append(f"| {label}{arrow} | " + " | ".join(fmt_metric(v) for v in vals) + " |")
    lines += ["", "![summary](plots/summary.png)", ""]
    ref = run.reference
    lines += ["## Corpus reference", ""]
    if ref is None:
        lines += [f"Originality, recognizability and FAD-proxy left out: {run.reference_missing}", ""]
    else:
        cl = ref["classifier"]
        lines += [f"Corpus `{ref.get('corpus')}`: {ref.get('n_train_clips')} train clips, "
                  f"{ref.get('n_heldout_clips')} held-out; transcriber `{ref['transcriber']}`.", "",
                  f"Master classifier ({', '.join(cl['classes'])}): held-out accuracy "
                  f"{fmt_metric(cl['heldout_accuracy'])} (balanced {fmt_metric(cl['heldout_balanced_accuracy'])}, chance "
                  f"{fmt_metric(cl['chance'])}) on {cl['n_heldout_clips']} clips of works it never saw; trained on "
                  f"{cl['n_train_clips']} clips, {cl['steps']} steps.", ""]
        for k, c in ref["calibration"].items():
            lines.append(f"- copy threshold, {k}: {fmt_metric(c['threshold'])} (the {c['quantile']:.0%} quantile of "
                         f"{c['n_pairs']} corpus clips' highest similarity to other works; false alarms "
                         f"{fmt_metric(c['false_alarm_rate'])}; excerpts flagged against their own source clip, i.e. verbatim "
                         f"copies detected: {fmt_metric(c['detection_rate_own_piece'])})")
        lines.append(f"- FAD-proxy reference: {ref.get('n_quality_segments')} segments of "
                     f"{ref.get('n_quality_clips')} {ref.get('quality_reference')} renders")
        lines.append("")
    lines += ["## Per cue", "", "| system | item | melody acc | dyn r | cut onsets | beat F1 | IoU | motion r |"
              " orig. mel | orig. emb | recognised | render s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in run.cues:
        s = c.scores()
        rec = s.get("predicted_master", "–")
        lines.append(f"| {c.system} | {c.item} | {fmt_metric(s['melody_accuracy'])} | {fmt_metric(s['dynamics_r'])} | "
                     f"{fmt_metric(s['cut_onset_rate'])} | {fmt_metric(s['beat_f1'])} | {fmt_metric(s['beat_transition_iou'])} | "
                     f"{fmt_metric(s['motion_loudness_r'])} | "
                     f"{fmt_metric(1 - s['similarity_melodic']) if 'similarity_melodic' in s else '–'} | "
                     f"{fmt_metric(1 - s['similarity_embedding']) if 'similarity_embedding' in s else '–'} | {rec} | "
                     f"{fmt_metric(s['render_s'])} |")
    lines.append("")
    for item_id in item_plots:
        lines += [f"### {item_id}", "", f"![{item_id}](plots/{item_id}.png)", ""]
    lines += ["Definitions: docs/evaluation.md. FAD-proxy is a Fréchet distance on filmscore's own features, "
              "not VGGish FAD.", ""]
    return "\n".join(lines)
