"""The editor's-loop jobs a worker runs (issue 20, docs/editor_loop.md): `regenerate` (a new take of a range of a
cue), `conform` (scored cues following a changed edit) and the publishing of a render's takes (`variations`).

The server checked every path when it queued the job (bridge/server/app.py `_on_regenerate`, `_on_conform`); the
worker re-checks the output folder before writing (worker.open_output_dir) and publishes as it publishes a render:
everything under the job's partial names, renamed to the final ones with the WAVs last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.request import CancelFn, ProgressFn

from ..journal import partial_path


class ConformFailed(FilmscoreError):
    """A conform job in which some cue of the new edit could not be delivered (the others are in the folder)."""

    ename = "ConformFailed"


def run_regenerate(job_id: str, output: Path, job: dict[str, Any], progress: ProgressFn,
                   should_cancel: CancelFn) -> Any:
    """Regenerate the job's range of its source cue into the job's partial output (`engine.regenerate`); returns the
    engine's `RenderResult` for the worker to publish."""
    from filmscore.engine import sidecar
    from filmscore.engine.preflight import sidecar_paths
    from filmscore.engine.regenerate import Regeneration, regenerate_cue

    from ..timelines.region_picture import picture_of_cue_json

    source = Path(job["source"])
    meta_path = sidecar_paths(source)["metadata"]
    film = picture_of_cue_json(sidecar.load(sidecar.CUE, meta_path), meta_path)  # a scored cue's region, again
    regen = Regeneration(source, partial_path(output, job_id), float(job["start_s"]), float(job["end_s"]),
                         job.get("seed"), film)
    return regenerate_cue(regen, progress=progress, should_cancel=should_cancel)


def run_conform(job: dict[str, Any], progress: ProgressFn, should_cancel: CancelFn) -> dict[str, Any]:
    """Conform the job's scored folder from its old edit to its new one into its outdir, as `filmscore conform`
    does (default cue markers); returns the conform's summary (`ConformResult.to_json`), or raises
    `ConformFailed` naming the cues that failed."""
    from filmscore.bridge.timelines.conform import conform_scored
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.files import read_timeline

    old, new = (read_cues(read_timeline(Path(job[k]))) for k in ("old", "new"))
    outdir = Path(job["outdir"])  # made by the worker, after checking its parent is still under an output root
    result = conform_scored(old, new, Path(job["scored"]), outdir, progress=progress, should_cancel=should_cancel)
    summary = result.to_json()
    if not result.ok:
        failed = [f"{o.name}: {o.message}" for o in result.outcomes if o.action == "failed"]
        raise ConformFailed(f"conform into {outdir}: {len(failed)} cue(s) failed ({'; '.join(failed)[:400]}); the "
                            "others were delivered")
    return summary


def take_wavs(output: Path, job_id: str, takes: int) -> list[Path]:
    """The partial WAVs a render of `takes` takes writes (`engine.render.take_path` of the partial output)."""
    from filmscore.engine.render import take_path

    part = partial_path(output, job_id)
    return [part] if takes <= 1 else [take_path(part, k + 1) for k in range(takes)]


def final_takes(output: Path, takes: int) -> list[Path]:
    """The published names of a render's takes: OUT.wav, or OUT.take1.wav ... OUT.takeN.wav."""
    from filmscore.engine.render import take_path

    return [output] if takes <= 1 else [take_path(output, k + 1) for k in range(takes)]


__all__ = ["ConformFailed", "final_takes", "run_conform", "run_regenerate", "take_wavs"]
