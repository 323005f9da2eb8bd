"""Does the cue follow the picture? One theme, one seed, eight generated films: matched against mismatched pairs.

Eight synthetic edits of 24 s (engine/film/synthetic.py) with clearly different motion envelopes and cut patterns
are encoded by the film encoder; one maestro theme is rendered against every film with the default bundle (same
seed, 10 DPM-Solver++ steps), under the pipeline's real switches, so that the figures say where an effect comes
from:

| condition | theme | hit fitting (cuts) | film tokens (picture guidance) | dynamics from the picture |
|---|---|---|---|---|
| theme/full | yes | yes | 2.0 | mixed with the theme's at the default weight 0.5 |
| theme/theme_dynamics | yes | yes | 2.0 | - (weight 0: the theme's own) |
| theme/no_tokens | yes | yes | 0 | mixed, 0.5 |
| theme/no_hits | yes | no | 2.0 | mixed, 0.5 |
| theme/no_picture | yes | no | 0 | - (one render: the picture cannot enter) |
| free/full | no | - | 2.0 | yes |
| free/tokens_only | no | - | 2.0 | no |
| free/dynamics_only | no | - | 0 | yes |

"theme/full" is `filmscore render VIDEO --maestro bach --theme bach-01`, "free/full" is `filmscore render VIDEO`:
the bench calls the functions render_cue calls (controls_for_request with the film's cuts as hit points,
with_picture_dynamics, the pipeline) and checks once that its theme/full cue matches render_cue's. The two "full"
conditions are rendered again with seed 1: the distance between two seeds of one film is the sampler's own
variation, against which the distance between films is read. Metrics: engine/metrics/picture_response.py.
Writes bench/results/picture_effect.json and docs/eval/picture_effect.png.

    OMP_NUM_THREADS=1 nice -n 10 python bench/bench_picture_effect.py     # ~5 min on one busy core
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filmscore.engine.film.synthetic import Shot
from filmscore.engine.request import RenderRequest

ROOT = Path(__file__).resolve().parent.parent
MAESTRO, THEME = "bach", "bach-01"
DURATION_S = 24.0
STEPS = 10
PICTURE_GUIDANCE, CONTROL_GUIDANCE = 2.0, 3.0  # RenderRequest's defaults


def _shots(kind_speed_len, seed0: int, transition: str = "cut") -> list[Shot]:
    return [Shot(k, d, speed=s, seed=seed0 + i, transition=transition if i else "cut")
            for i, (k, s, d) in enumerate(kind_speed_len)]


FILMS: dict[str, list[Shot]] = {
    # Shot lengths are jittered so that no two films cut within 0.1 s of each other: a cut shared by two films
    # would count as "matched" in a mismatched pair and hide part of the contrast.
    # calm: two long, nearly static shots
    "calm": _shots([("still", 0.0, 12.4), ("pan", 0.02, 11.6)], 10),
    # fast cutting: 12 shots of 1.4-2.7 s at one moderate pan speed
    "fast_cuts": _shots([("pan", 0.08, d) for d in (1.9, 1.7, 2.1, 1.8, 2.1, 1.4, 2.5, 1.8, 2.0, 1.6, 2.4, 2.7)], 20),
    # a slow build: still -> slow pan -> shapes -> fast shapes
    "build": _shots([("still", 0.0, 6.2), ("pan", 0.05, 5.8), ("shapes", 0.2, 6.1), ("shapes", 0.7, 5.9)], 40),
    # motion bursts: still shots broken by short bursts of fast shapes
    "bursts": _shots([("still", 0.0, 4.6), ("shapes", 0.8, 2.4), ("still", 0.0, 4.5), ("shapes", 0.8, 2.9),
                      ("still", 0.0, 4.4), ("shapes", 0.8, 2.8), ("still", 0.0, 2.4)], 60),
    # the reverse of the build: fast -> still
    "fade_down": _shots([("shapes", 0.8, 8.1), ("pan", 0.08, 8.0), ("still", 0.0, 7.9)], 80),
    # a peak in the middle
    "mid_peak": _shots([("still", 0.0, 7.7), ("shapes", 0.8, 8.2), ("still", 0.0, 8.1)], 90),
    # accelerating cuts at one pan speed: shots of 7.3 s down to 1.4 s
    "accelerating": _shots([("pan", 0.1, d) for d in (7.3, 4.6, 3.7, 3.1, 1.9, 1.4, 2.0)], 100),
    # gradual transitions: alternating fast pans and flickering stills joined by 1 s dissolves
    "dissolves": _shots([("pan", 0.25, 6.5), ("flicker", 0.0, 6.7), ("pan", 0.25, 6.4), ("flicker", 0.0, 7.4)],
                        120, transition="dissolve"),
}


@dataclass(frozen=True)
class Condition:
    name: str
    theme: bool
    hits: bool
    tokens: bool
    picture_dynamics: float  # the request's picture_dynamics weight; 0 with a theme keeps the theme's dynamics
    per_film: bool = True  # False: the picture cannot enter, one render stands for every film


W = RenderRequest.picture_dynamics  # the default weight a render uses
CONDITIONS = (
    Condition("theme/full", True, True, True, W),
    Condition("theme/theme_dynamics", True, True, True, 0.0),
    Condition("theme/no_tokens", True, True, False, W),
    Condition("theme/no_hits", True, False, True, W),
    Condition("theme/no_picture", True, False, False, 0.0, per_film=False),
    Condition("free/full", False, False, True, W),
    Condition("free/tokens_only", False, False, True, 0.0),
    Condition("free/dynamics_only", False, False, False, W),
)
SEED_REPLICATED = ("theme/full", "free/full")


@dataclass
class Cue:
    wave: np.ndarray  # (n,) float32 at 16 kHz, before mastering
    dynamics_db: np.ndarray | None  # (n_frames,) the dynamics control the model followed, None when absent
    fitted: object | None  # FittedTheme
    info: dict  # the pipeline's summary (vocoder, windows, whether picture and controls were used)


def render(pipe, film, cond: Condition, seed: int) -> Cue:
    """One cue as render_cue makes it (engine/render.py `_controls` + the pipeline), with `cond`'s switches."""
    from filmscore.engine.constants import MODEL_SAMPLE_RATE
    from filmscore.engine.controls.request import controls_for_request
    from filmscore.engine.cue_controls import with_picture_dynamics
    from filmscore.engine.request import cue_n_samples

    n_samples = cue_n_samples(DURATION_S, MODEL_SAMPLE_RATE)
    n_frames = int(np.ceil(n_samples / pipe.mel_config.hop_length))
    controls, fitted = controls_for_request(n_frames=n_frames, maestro=MAESTRO if cond.theme else None,
                                            theme=THEME if cond.theme else None,
                                            hits_s=tuple(film.cuts_s) if cond.hits else (), seed=seed)
    if cond.picture_dynamics > 0:
        controls = with_picture_dynamics(controls, film, cond.picture_dynamics)
    out = pipe(n_samples=n_samples, film=film, controls=controls, seed=seed, steps=STEPS, scheduler="dpmpp",
               picture_guidance=PICTURE_GUIDANCE if cond.tokens else 0.0, control_guidance=CONTROL_GUIDANCE)
    return Cue(out.wave, controls.dynamics.copy() if controls.dynamics_present else None, fitted, out.info)


def fitted_tempo(fitted, n: int, rate: int) -> np.ndarray:
    """`(n,)` the fitted theme's tempo in BPM at the contour frames: own BPM x d(own time)/d(cue time); before a
    late entrance, the tempo it enters at."""
    t = (np.arange(n) + 0.5) / rate
    dt = 1e-4  # frame centres sit between the knots (hits on the 10/s picture grid): one segment's slope each
    bpm = fitted.theme.bpm * (fitted.cue_to_own(t + dt) - fitted.cue_to_own(t - dt)) / (2 * dt)
    playing = bpm > 1e-6
    return np.interp(np.arange(n), np.nonzero(playing)[0], bpm[playing])


def rounded(x, nd: int = 4):
    if isinstance(x, dict):
        return {k: (v if k == "p_value" else rounded(v, nd)) for k, v in x.items()}  # p: to_json's 3 digits
    if isinstance(x, (list, tuple)):
        return [rounded(v, nd) for v in x]
    if isinstance(x, np.ndarray):
        return rounded(x.tolist(), nd)
    if isinstance(x, (float, np.floating)):
        return None if not np.isfinite(x) else round(float(x), nd)
    if isinstance(x, np.integer):
        return int(x)
    return x


def analyse(names, films, cues, seed1, controls_rate: int) -> dict:
    """Every contrast of the run (see the module docstring)."""
    from filmscore.engine.metrics import picture_response as pr
    from filmscore.engine.metrics.rhythm import onset_coverage, onset_envelope, onset_times

    sr = 16000
    rate = pr.CONTOUR_RATE
    n = pr.n_contour_frames(DURATION_S)
    motion = [pr.envelope_contour(films[f].motion, 100, n) for f in names]
    cuts = [tuple(films[f].cuts_s) for f in names]
    out: dict = {}
    cache: dict = {}

    def features(key, wave):
        if key not in cache:
            on = onset_times(wave, sr)
            cache[key] = {"loud": pr.loudness_contour(wave, sr), "onsets": on, "tempo": pr.local_tempo(wave, sr),
                          "coverage": onset_coverage(on, DURATION_S), "flux": onset_envelope(wave, sr)}
        return cache[key]

    for cond in CONDITIONS:
        cs = cues[cond.name]
        feats = [features((cond.name, f), cs[f].wave) for f in names]
        r = pr.contour_r_matrix([x["loud"] for x in feats], motion)
        accent = pr.event_accent_matrix([x["loud"] for x in feats], cuts)
        strength = pr.event_onset_strength_matrix([x["flux"] for x in feats], cuts, DURATION_S)
        align = pr.event_alignment_matrix([x["onsets"] for x in feats], cuts, DURATION_S)
        row = {
            "loudness_vs_motion_r": pr.matched_contrast(r).to_json(),
            "accent_at_cuts_db": pr.matched_contrast(accent).to_json(),
            "onset_strength_at_cuts": pr.matched_contrast(strength).to_json(),
            "cut_onset_alignment": pr.matched_contrast(align).to_json(),
            "onset_chance_mean": float(np.mean([x["coverage"] for x in feats])),
            "loudness_contour_distance_db_between_films": float(pr.off_diagonal(
                pr.pairwise([x["loud"] for x in feats], pr.contour_distance)).mean()),
            "audio_tempo_distance_oct_between_films": float(pr.off_diagonal(
                pr.pairwise([x["tempo"] for x in feats], pr.tempo_distance)).mean()),
            "r_matrix": r, "accent_matrix": accent,
            "onset_strength_matrix": strength, "cut_alignment_matrix": align,
        }
        dyn = [cs[f].dynamics_db for f in names]
        if all(d is not None for d in dyn):  # what the model was asked to play, against the picture
            dyn_c = [pr.window_means(d, controls_rate, n, rate, pr.CONTOUR_WINDOW_S) for d in dyn]
            row["dynamics_control_vs_motion_r"] = pr.matched_contrast(pr.contour_r_matrix(dyn_c, motion)).to_json()
            row["output_vs_dynamics_control_r_mean"] = float(np.nanmean(
                [pr.pearson(pr.smooth(x["loud"]), pr.smooth(d)) for x, d in zip(feats, dyn_c)]))
        fits = [cs[f].fitted for f in names]
        if all(ft is not None for ft in fits):
            notes = [np.array([nt.onset_s for nt in ft.notes]) for ft in fits]
            row["fitted_note_starts_on_cuts"] = pr.matched_contrast(
                pr.event_alignment_matrix(notes, cuts, DURATION_S)).to_json()
            shares = [ft.hit_share for ft in fits if ft.hit_share is not None]
            row["fitted_hits_caught_share"] = float(np.mean(shares)) if shares else None
            tempi = [fitted_tempo(ft, n, rate) for ft in fits]
            row["fitted_tempo_distance_oct_between_films"] = float(pr.off_diagonal(
                pr.pairwise(tempi, pr.tempo_distance)).mean())
            row["fitted_tempo_bpm_range"] = [float(min(t.min() for t in tempi)), float(max(t.max() for t in tempi))]
        if cond.name in seed1:
            other = [features((cond.name, f, 1), seed1[cond.name][f].wave) for f in names]
            row["seed_noise_floor"] = {
                "loudness_contour_distance_db_same_film": float(np.mean(
                    [pr.contour_distance(a["loud"], b["loud"]) for a, b in zip(feats, other)])),
                "audio_tempo_distance_oct_same_film": float(np.mean(
                    [pr.tempo_distance(a["tempo"], b["tempo"]) for a, b in zip(feats, other)])),
                "seed1_loudness_vs_motion_r": pr.matched_contrast(
                    pr.contour_r_matrix([x["loud"] for x in other], motion)).to_json(),
                "seed1_accent_at_cuts_db": pr.matched_contrast(pr.event_accent_matrix(
                    [x["loud"] for x in other], cuts)).to_json(),
                "seed1_onset_strength_at_cuts": pr.matched_contrast(pr.event_onset_strength_matrix(
                    [x["flux"] for x in other], cuts, DURATION_S)).to_json(),
                "seed1_cut_onset_alignment": pr.matched_contrast(pr.event_alignment_matrix(
                    [x["onsets"] for x in other], cuts, DURATION_S)).to_json(),
            }
        out[cond.name] = row
    return out, {k: v["loud"] for k, v in cache.items()}, motion


def plot(path: Path, names, films, motion, loud, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from filmscore.engine.metrics.picture_response import CONTOUR_RATE, smooth

    cols = (("theme/full", "theme/theme_dynamics", "theme bach-01 fitted to the cuts; dynamics: half theme, half picture"),
            ("free/full", "free/tokens_only", "no theme: dynamics from the picture, film tokens on"))
    fig = plt.figure(figsize=(14, 2.0 * len(names) + 4.5))
    gs = fig.add_gridspec(len(names) + 2, 2, height_ratios=[1] * len(names) + [0.25, 2.2], hspace=0.55, wspace=0.18)
    t = (np.arange(len(motion[0])) + 0.5) / CONTOUR_RATE
    for c, (cond, ref, title) in enumerate(cols):
        for i, f in enumerate(names):
            ax = fig.add_subplot(gs[i, c])
            mx = ax.twinx()
            mx.fill_between(t, motion[i], color="0.8", lw=0, label="motion")
            mx.set_ylim(0, 1.05)
            mx.set_yticks([])
            ax.set_zorder(mx.get_zorder() + 1)
            ax.patch.set_visible(False)
            ref_key = (ref, names[0]) if ref == "theme/no_picture" else (ref, f)
            a, b = smooth(loud[ref_key]), smooth(loud[(cond, f)])
            top = max(a.max(), b.max()) + 2
            ax.plot(t, a, color="0.45", lw=0.9, ls="--", label={"theme/no_picture": "no picture",
                                                             "theme/theme_dynamics": "theme's own dynamics"}
                    .get(ref, "tokens only"))
            ax.plot(t, b, color="tab:blue", lw=1.3, label="cue loudness (dB, 1 s)")
            ax.set_ylim(top - 42, top)  # a late entrance's silence would squash the rest
            for cut in films[f].cuts_s:
                ax.axvline(cut, color="tab:red", lw=0.8, alpha=0.8)
            r = results[cond]["r_matrix"][i, i]
            acc = results[cond]["accent_matrix"][i, i]
            ax.set_title(f"{f}: r(loudness, motion) = {r:+.2f}, accent at cuts {acc:+.1f} dB", fontsize=8,
                         loc="left")
            ax.tick_params(labelsize=7)
            ax.set_xlim(0, DURATION_S)
            if i == 0:
                ax.text(0, 1.6, title, transform=ax.transAxes, fontsize=10, weight="bold")
                ax.legend(fontsize=6, loc="lower right", ncol=2)
            if i == len(names) - 1:
                ax.set_xlabel("s (red: cuts the encoder found; grey: motion envelope 0..1)", fontsize=7)
    for c, (cond, _, _) in enumerate(cols):
        ax = fig.add_subplot(gs[len(names) + 1, c])
        m = results[cond]["r_matrix"]
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("film (motion envelope)", fontsize=8)
        ax.set_ylabel("cue made for film", fontsize=8)
        lc = results[cond]["loudness_vs_motion_r"]
        ax.set_title(f"{cond}: r matched {lc['matched']:+.2f} vs mismatched {lc['mismatched']:+.2f} "
                     f"(p = {lc['p_value']:.2g})", fontsize=8)  # p: exact, over all 8! film assignments
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "bench" / "results" / "picture_effect.json")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "eval" / "picture_effect.png")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--films", default=",".join(FILMS), help="a comma-separated subset of the films (>= 2)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from filmscore.engine.constants import CONTROL_FRAME_RATE, MODEL_SAMPLE_RATE
    from filmscore.engine.film import encode_video
    from filmscore.engine.film.synthetic import edit_duration, write_edit
    from filmscore.engine.metrics.picture_response import contour_distance, loudness_contour
    from filmscore.engine.render import build_pipeline, render_cue
    from filmscore.engine.request import RenderRequest

    t_start = time.perf_counter()
    names = [f.strip() for f in args.films.split(",") if f.strip()]
    unknown = [f for f in names if f not in FILMS]
    if unknown or len(names) < 2:
        raise SystemExit(f"--films: give at least two of {', '.join(FILMS)} (unknown: {', '.join(unknown) or '-'})")
    films, true_cuts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in names:  # 1. the films, encoded as a render encodes them
            if abs(edit_duration(FILMS[f]) - DURATION_S) > 1e-6:
                raise SystemExit(f"film {f}: {edit_duration(FILMS[f])} s, expected {DURATION_S} s")
            video = Path(tmp) / f"{f}.mp4"
            true_cuts[f] = write_edit(video, FILMS[f], width=256, height=144, fps=10)
            films[f] = encode_video(video, cache=False)
        t_films = time.perf_counter() - t_start

        pipe, bundle = build_pipeline(None)  # 2. every condition x film, seed 0; the "full" ones with seed 1 too
        cues: dict[str, dict] = {}
        seed1: dict[str, dict] = {}
        t0 = time.perf_counter()
        for cond in CONDITIONS:
            if cond.per_film:
                cues[cond.name] = {f: render(pipe, films[f], cond, 0) for f in names}
            else:
                one = render(pipe, films[names[0]], cond, 0)
                cues[cond.name] = {f: one for f in names}
            if cond.name in SEED_REPLICATED:
                seed1[cond.name] = {f: render(pipe, films[f], cond, 1) for f in names}
            print(f"{cond.name}: rendered ({time.perf_counter() - t0:.0f} s)", flush=True)
        n_renders = sum(len(names) if c.per_film else 1 for c in CONDITIONS) + len(SEED_REPLICATED) * len(names)
        t_render = time.perf_counter() - t0

        # 3. the bench's theme/full path is render_cue's: same cue up to mastering's gain
        import soundfile as sf

        check = Path(tmp) / "check.wav"
        render_cue(RenderRequest(output=check, film_features=films[names[1]], duration_s=DURATION_S, maestro=MAESTRO, theme=THEME,
                                 seed=0, steps=STEPS, sample_rate=MODEL_SAMPLE_RATE))
        delivered, _ = sf.read(check, dtype="float32")
        path_check_db = contour_distance(loudness_contour(delivered, MODEL_SAMPLE_RATE),
                                         loudness_contour(cues["theme/full"][names[1]].wave, MODEL_SAMPLE_RATE))

    t0 = time.perf_counter()
    results, loud, motion = analyse(names, films, cues, seed1, CONTROL_FRAME_RATE)
    t_analyse = time.perf_counter() - t0
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    plot(args.figure, names, films, motion, loud, results)

    film_rows = {}
    for i, f in enumerate(names):
        fm = films[f].motion
        film_rows[f] = {"shots": [f"{s.kind}@{s.speed:g} {s.duration_s:g}s {s.transition}" for s in FILMS[f]],
                        "true_cuts_s": true_cuts[f], "detected_cuts_s": list(films[f].cuts_s),
                        "motion_mean": float(fm.mean()), "motion_std": float(fm.std()),
                        "theme_full_hits": cues["theme/full"][f].fitted.summary()["hits"]}
    result = {
        "benchmark": "picture_effect", "date": time.strftime("%Y-%m-%d"),
        "command": "OMP_NUM_THREADS=1 nice -n 10 python bench/bench_picture_effect.py",
        "bundle": {"name": bundle.name, "version": bundle.manifest.get("version"), "hash": bundle.hash},
        "theme": f"{MAESTRO}/{THEME}", "duration_s": DURATION_S, "steps": STEPS, "scheduler": "dpmpp", "seed": 0,
        "picture_guidance": PICTURE_GUIDANCE, "control_guidance": CONTROL_GUIDANCE,
        "vocoder": cues["theme/full"][names[0]].info["vocoder"],
        "machine": f"{platform.processor() or platform.machine()}, torch threads {args.threads}",
        "seconds": {"films": t_films, "renders": t_render, "n_renders": n_renders, "analysis": t_analyse,
                    "total": time.perf_counter() - t_start},
        "render_cue_path_check_db": path_check_db,
        "min_cut_separation_between_films_s": min(
            float(np.abs(np.subtract.outer(true_cuts[a], true_cuts[b])).min())
            for i, a in enumerate(names) for b in names[i + 1:] if true_cuts[a] and true_cuts[b]),
        "films": film_rows, "conditions": {k: {kk: vv for kk, vv in v.items()} for k, v in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rounded(result, 4), indent=1) + "\n")

    print(f"\n{len(names)} films x {len(CONDITIONS)} conditions, {n_renders} renders in {t_render:.0f} s; "
          f"render_cue check {path_check_db:.3f} dB -> {args.out}, {args.figure}")
    print("matched / mismatched (p: exact permutation test over film assignments)")
    print(f"{'condition':<20}{'loudness~motion r':>24}{'accent at cuts dB':>24}{'onset strength at cuts':>24}"
          f"{'onset on cut':>22}{'chance':>7}{'dB films':>9}{'seed':>6}")
    for name, row in results.items():
        cells = []
        for key in ("loudness_vs_motion_r", "accent_at_cuts_db", "onset_strength_at_cuts", "cut_onset_alignment"):
            c = row[key]
            cells.append(f"{c['matched']:+.2f}/{c['mismatched']:+.2f} p={c['p_value']:.3f}")
        floor = row.get("seed_noise_floor", {}).get("loudness_contour_distance_db_same_film")
        print(f"{name:<20}{cells[0]:>24}{cells[1]:>24}{cells[2]:>24}{cells[3]:>22}{row['onset_chance_mean']:>7.2f}"
              f"{row['loudness_contour_distance_db_between_films']:>9.2f}{'' if floor is None else f'{floor:.2f}':>6}")
    fit = results["theme/full"]
    print(f"theme/full fitted controls: note starts on cuts {fit['fitted_note_starts_on_cuts']['matched']:.2f} matched "
          f"/ {fit['fitted_note_starts_on_cuts']['mismatched']:.2f} mismatched, hits caught "
          f"{fit['fitted_hits_caught_share']:.2f}, tempo {fit['fitted_tempo_bpm_range'][0]:.0f}-"
          f"{fit['fitted_tempo_bpm_range'][1]:.0f} BPM, tempo distance between films "
          f"{fit['fitted_tempo_distance_oct_between_films']:.3f} oct (audio: "
          f"{fit['audio_tempo_distance_oct_between_films']:.3f}, seed floor "
          f"{fit['seed_noise_floor']['audio_tempo_distance_oct_same_film']:.3f})")


if __name__ == "__main__":
    main()
