"""`build_corpus`: the corpus build loop. Parallel (a process pool), resumable, stoppable at a number of hours.

Work order: works are grouped (bach, palestrina, folk, other composers), each group shuffled with the build seed,
and the groups are visited round-robin (`GROUP_WEIGHTS` jobs each per round, for similar hours per group) so the
first hour already holds every group. A *job* is (work, pass):
pass p of a work renders up to `MAX_CLIPS_PER_JOB` of its clips with a variant drawn from (work, p): a transposition in -5..+6
semitones, a tempo scale in 0.8..1.25, an orchestration. Small groups are revisited with new passes (at most
`MAX_PASSES`), so their share does not vanish under the ~13,000 folk tunes.

Resuming: `jobs.jsonl` logs every finished job (with its clip count or error); a restarted build skips logged
jobs and clip ids already in the index, and parsed scores come from the parse cache (`parsed/`).

Versions: `version=1` renders v1 clips (`clip.py`: 16 kHz mono, one file); `version=2` renders v2 clips
(`clip_v2.py`: stems + stereo mix at `sample_rate`, labels; `orchestration_v2.py`). The job order, clip plan and
variants are the same rule for both; `corpus.json` records the version, rate and SoundFont of a corpus, and a
resumed build must ask for the same ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FilmscoreError
from .arrange import ClipSpec, base_qpm, plan_clips
from .index import DEFAULT_CORPUS_DIR, INDEX_NAME, CorpusError, append_records, iter_index
from .music21_source import ParseCache, ParsedScore, Work, iter_works
from .orchestration import ORCHESTRATIONS
from .orchestration_v2 import ORCHESTRATIONS_V2

log = logging.getLogger(__name__)

GROUPS = ("bach", "palestrina", "folk")  # every other master falls in the group "other"
# Jobs per group per round, so that each round adds similar hours per group: a folk tune gives ~1 clip, a
# chorale ~2, a mass movement, motet, madrigal or quartet movement ~5-6 (measured on the first builds).
GROUP_WEIGHTS = {"bach": 3, "palestrina": 1, "folk": 6, "other": 1}
MAX_PASSES = 4
TRANSPOSE_RANGE = (-5, 6)
TEMPO_SCALE_RANGE = (0.8, 1.25)
MAX_CLIPS_PER_JOB = 6  # a long work gives 6 clips per pass, a different stretch of it on each pass
MIN_MELODY_COVERAGE = 0.4  # a clip whose leading voice sounds less than this share of the time is skipped
JOBS_LOG = "jobs.jsonl"
FAIL_FAST_JOBS = 8  # this many failed jobs and no success: the setup is broken, stop with the first error
TINY_WORKS_PER_GROUP = 2
CORPUS_CONFIG = "corpus.json"
V2_SAMPLE_RATE = 24_000  # docs/dataset.md, "Corpus v2": content to 12 kHz; 32 kHz adds < -40 dB of energy


@dataclass(frozen=True)
class BuildConfig:
    """out_dir: corpus directory; hours: stop once the index holds this much audio; workers: processes;
    composers: masters to use (None: all); tiny: a few clips of two bach and two folk works (tests, smoke
    runs); seed: work order and variants; features: encode each clip's film with the film encoder as it is built
    (else `filmscore data features` does it later); version: 1 or 2 (module docstring); sample_rate and
    soundfont: v2's audio (None: `V2_SAMPLE_RATE` and MuseScore_General.sf3 when installed, else the GM font)."""

    out_dir: Path = DEFAULT_CORPUS_DIR
    hours: float = 70.0
    workers: int = 2
    composers: tuple[str, ...] | None = None
    tiny: bool = False
    seed: int = 0
    features: bool = False
    version: int = 1
    sample_rate: int | None = None
    soundfont: str | None = None

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise CorpusError(f"--version must be 1 or 2, got {self.version}")
        if self.version == 1 and (self.sample_rate is not None or self.soundfont is not None):
            raise CorpusError("--sample-rate and --soundfont apply to corpus version 2 only (v1 is 16 kHz FluidR3)")
        if self.sample_rate is not None and self.sample_rate not in (24_000, 32_000, 44_100, 48_000):
            raise CorpusError(f"--sample-rate must be 24000, 32000, 44100 or 48000, got {self.sample_rate}")
        if not self.hours > 0:
            raise CorpusError(f"--hours must be > 0, got {self.hours}")
        if not 1 <= self.workers <= 64:
            raise CorpusError(f"--workers must be in 1..64, got {self.workers}")


@dataclass(frozen=True)
class Job:
    work: Work
    pass_index: int

    @property
    def key(self) -> str:
        return f"{self.work.work_id}#{self.pass_index}"


@dataclass
class BuildSummary:
    corpus_dir: Path
    clips: int = 0
    seconds: float = 0.0
    new_clips: int = 0
    new_seconds: float = 0.0
    failed_jobs: int = 0
    wall_s: float = 0.0
    first_errors: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def to_json(self) -> dict[str, Any]:
        return {"corpus_dir": str(self.corpus_dir), "clips": self.clips, "hours": round(self.hours, 4),
                "new_clips": self.new_clips, "new_hours": round(self.new_seconds / 3600, 4),
                "failed_jobs": self.failed_jobs, "wall_s": round(self.wall_s, 1),
                "audio_s_per_wall_s": round(self.new_seconds / self.wall_s, 3) if self.wall_s else None,
                "first_errors": self.first_errors}


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from the parts' text (sha1): the same clip id gives the same seed on every machine and run."""
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode()).digest()[:4], "big")


def plan_jobs(works: list[Work], seed: int = 0, tiny: bool = False) -> Iterator[Job]:
    """Jobs in build order (module docstring): groups round-robin, each group shuffled by `seed`."""
    groups: dict[str, list[Work]] = {}
    for w in works:
        groups.setdefault(w.master if w.master in GROUPS else "other", []).append(w)
    rng = np.random.default_rng(seed)
    order = [g for g in (*GROUPS, "other") if g in groups]
    for g in order:
        rng.shuffle(groups[g])
        if tiny:
            groups[g] = groups[g][:TINY_WORKS_PER_GROUP]
    passes = 1 if tiny else MAX_PASSES
    weights = {g: 1 if tiny else GROUP_WEIGHTS[g] for g in order}
    taken = dict.fromkeys(order, 0)
    while True:
        active = False
        for g in order:
            ws = groups[g]
            for _ in range(weights[g]):
                p = taken[g] // len(ws)
                if p >= passes:
                    break
                active = True
                yield Job(ws[taken[g] % len(ws)], p)
                taken[g] += 1
        if not active:
            return


def variant(job: Job, n_orchestrations: int = len(ORCHESTRATIONS)) -> tuple[int, float, int, np.random.Generator]:
    """(transpose, tempo_scale, orchestration index, rng for the clip plan) of a job, from its work and pass."""
    rng = np.random.default_rng(stable_seed(job.work.work_id, job.pass_index))
    transpose = int(rng.integers(TRANSPOSE_RANGE[0], TRANSPOSE_RANGE[1] + 1))
    scale = float(np.exp(rng.uniform(np.log(TEMPO_SCALE_RANGE[0]), np.log(TEMPO_SCALE_RANGE[1]))))
    orch = (stable_seed(job.work.work_id) + job.pass_index) % n_orchestrations
    return transpose, scale, orch, rng


@dataclass(frozen=True)
class AudioSpec:
    """What a job renders: corpus `version`, and for v2 its `sample_rate`, the `soundfont` file FluidSynth loads
    (an .sf3 expanded to SoundFont 2 once, `soundfont.expanded_sf2`) and `soundfont_name`, the font as installed."""

    version: int = 1
    sample_rate: int | None = None
    soundfont: str | None = None
    soundfont_name: str | None = None


def resolve_audio(cfg: BuildConfig) -> AudioSpec:
    """The build's `AudioSpec` with v2's defaults filled in (raises `CorpusError` for a missing SoundFont)."""
    if cfg.version == 1:
        return AudioSpec(1)
    from ..audio.fluidsynth import MUSESCORE_SOUNDFONT, SynthError, find_soundfont

    from .soundfont import SoundFontError, expanded_sf2

    try:
        font = find_soundfont(cfg.soundfont or (MUSESCORE_SOUNDFONT if MUSESCORE_SOUNDFONT.is_file() else None))
        loaded = expanded_sf2(font)  # once, in the main process, before the workers fork
    except (SynthError, SoundFontError) as e:
        raise CorpusError(str(e)) from e
    return AudioSpec(2, cfg.sample_rate or V2_SAMPLE_RATE, str(loaded), font.resolve().name)


def check_corpus_config(corpus_dir: Path, audio: AudioSpec) -> None:
    """Write `corpus.json` on a new corpus; on an existing one, refuse a build that asks for other audio."""
    path = corpus_dir / CORPUS_CONFIG
    want = {"version": audio.version, "sample_rate": audio.sample_rate, "soundfont": audio.soundfont_name}
    if path.is_file():
        have = json.loads(path.read_text())
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            raise CorpusError(f"corpus {corpus_dir} was built with {have}; this build asks for "
                              f"{', '.join(f'{k}={v[1]}' for k, v in diff.items())}: use another --out")
        return
    if (corpus_dir / INDEX_NAME).is_file():  # a v1 corpus built before corpus.json existed
        if audio.version != 1:
            raise CorpusError(f"corpus {corpus_dir} holds v1 clips; a version {audio.version} build needs another --out")
        return
    path.write_text(json.dumps(want, indent=1) + "\n")


def _coverage(parsed: ParsedScore, a_ql: float, b_ql: float) -> float:
    n = parsed.melody.notes
    on = np.clip(n[:, 0], a_ql, b_ql)
    off = np.clip(n[:, 0] + n[:, 1], a_ql, b_ql)
    return float((off - on).sum() / max(b_ql - a_ql, 1e-9))


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (FluidSynth), for build cost per clip."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system  # FluidSynth runs as a child process


def run_job(job: Job, corpus_dir: Path, done_ids: frozenset[str], max_clips: int | None = None,
            features: bool = False, audio: AudioSpec = AudioSpec()) -> tuple[str, list[dict[str, Any]], str | None, float]:
    """Parse (or load from the cache) one work and render the clips of one pass. Returns (job key, records,
    error, CPU seconds used); a user-level error (unparseable score, failed render) is returned, not raised, so
    one bad score does not stop a long build."""
    cpu0 = cpu_seconds()
    key, records, error = _run_job(job, corpus_dir, done_ids, max_clips, features, audio)
    return key, records, error, cpu_seconds() - cpu0


def _run_job(job: Job, corpus_dir: Path, done_ids: frozenset[str], max_clips: int | None, features: bool,
             audio: AudioSpec = AudioSpec()) -> tuple[str, list[dict[str, Any]], str | None]:
    from .clip import render_clip

    try:
        parsed = ParseCache(corpus_dir / "parsed").get(job.work)
        table = ORCHESTRATIONS if audio.version == 1 else ORCHESTRATIONS_V2
        transpose, scale, orch, rng = variant(job, len(table))
        qpm = base_qpm(parsed) * scale
        records = []
        edges = np.append(parsed.bars, parsed.end_ql)
        windows = plan_clips(parsed, qpm, rng)
        take = min(len(windows), max_clips or MAX_CLIPS_PER_JOB)
        first = (job.pass_index * MAX_CLIPS_PER_JOB) % max(len(windows), 1)
        for k in sorted((first + i) % len(windows) for i in range(take)):
            a, b = windows[k]
            clip_id = f"{job.work.work_id.split('/', 1)[1]}.p{job.pass_index}.c{k}"
            if clip_id in done_ids or _coverage(parsed, edges[a], edges[b]) < MIN_MELODY_COVERAGE:
                continue
            if audio.version == 1:
                spec = ClipSpec(a, b, transpose, qpm, scale, ORCHESTRATIONS[orch], stable_seed(clip_id))
                records.append(render_clip(parsed, spec, clip_id, corpus_dir, features=features))
            else:
                from .arrange_v2 import ClipSpecV2
                from .clip_v2 import render_clip_v2

                spec2 = ClipSpecV2(a, b, transpose, qpm, scale, ORCHESTRATIONS_V2[orch], stable_seed(clip_id))
                records.append(render_clip_v2(parsed, spec2, clip_id, corpus_dir, audio.sample_rate, audio.soundfont,
                                              features=features, soundfont_name=audio.soundfont_name))
        return job.key, records, None
    except FilmscoreError as e:
        return job.key, [], f"{type(e).__name__}: {e}"
    except Exception as e:  # a music21 or numeric corner case in one score must not end a many-hour build
        log.debug("job %s failed", job.key, exc_info=True)
        return job.key, [], f"{type(e).__name__}: {e}"


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool's terminate() ends a worker at once


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _preload(features: bool = False, version: int = 1) -> None:
    """Import what every job needs before the pool forks, so workers share it instead of each paying ~10-30 s
    of imports (librosa's pitch module, scipy.signal, music21, PyAV) on a busy machine."""
    import av
    import librosa.core.pitch
    import music21.converter
    import scipy.signal
    import soundfile

    from . import clip

    if version == 2:
        from . import clip_v2
    if features:
        from ..film import encoder


def _read_state(corpus_dir: Path) -> tuple[set[str], float, set[str]]:
    ids, seconds, jobs = set(), 0.0, set()
    if (corpus_dir / INDEX_NAME).is_file():
        for r in iter_index(corpus_dir):
            ids.add(r["id"])
            seconds += float(r["duration_s"])
    if (corpus_dir / JOBS_LOG).is_file():
        for line in (corpus_dir / JOBS_LOG).read_text().splitlines():
            try:
                jobs.add(json.loads(line)["job"])
            except (ValueError, KeyError):
                continue  # a torn last line: that job runs again
    return ids, seconds, jobs


def build_corpus(cfg: BuildConfig, on_progress: Callable[[BuildSummary], None] | None = None) -> BuildSummary:
    """Build (or resume) the corpus in `cfg.out_dir` until it holds `cfg.hours` of audio or the jobs run out."""
    corpus_dir = Path(cfg.out_dir).expanduser()
    corpus_dir.mkdir(parents=True, exist_ok=True)
    audio = resolve_audio(cfg)
    check_corpus_config(corpus_dir, audio)
    ids, seconds, done_jobs = _read_state(corpus_dir)
    for stale in corpus_dir.glob("clips/*/.tmp-*"):  # clips a killed build left half-written
        shutil.rmtree(stale, ignore_errors=True)
    summary = BuildSummary(corpus_dir, len(ids), seconds)
    composers = cfg.composers or (("bach", "folk") if cfg.tiny else None)
    works = list(iter_works(composers))
    if not works:
        raise CorpusError(f"no music21 works for composers {composers}")
    jobs = (j for j in plan_jobs(works, cfg.seed, cfg.tiny) if j.key not in done_jobs)
    target_s = cfg.hours * 3600.0
    max_clips = 1 if cfg.tiny else None
    frozen = frozenset(ids)
    t0 = time.monotonic()

    def finish(key: str, records: list[dict[str, Any]], error: str | None, cpu_s: float) -> None:
        append_records(corpus_dir, records)
        with open(corpus_dir / JOBS_LOG, "a") as f:
            f.write(json.dumps({"job": key, "clips": len(records), "error": error, "cpu_s": round(cpu_s, 2),
                                "audio_s": round(sum(float(r["duration_s"]) for r in records), 2),
                                "time": round(time.time(), 1)}) + "\n")
        dur = sum(float(r["duration_s"]) for r in records)
        summary.clips += len(records)
        summary.new_clips += len(records)
        summary.seconds += dur
        summary.new_seconds += dur
        if error:
            summary.failed_jobs += 1
            if len(summary.first_errors) < 5:
                summary.first_errors.append(f"{key}: {error}")
            log.info("job %s failed: %s", key, error)
            if summary.failed_jobs >= FAIL_FAST_JOBS and summary.new_clips == 0:
                raise CorpusError(f"the first {summary.failed_jobs} jobs all failed; first: {summary.first_errors[0]}")
        summary.wall_s = time.monotonic() - t0
        if on_progress:
            on_progress(summary)

    if on_progress:
        on_progress(summary)
    if cfg.workers == 1:
        for job in jobs:
            if summary.seconds >= target_s:
                break
            finish(*run_job(job, corpus_dir, frozen, max_clips, cfg.features, audio))
    else:
        _preload(cfg.features, cfg.version)
        ex = ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("fork"), initializer=_init_worker)
        inflight: set[Future] = set()
        # A background build (`nohup ... &`) ignores SIGINT: SIGTERM stops it the same way, workers included.
        previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() \
            else None
        try:
            while True:
                while len(inflight) < 2 * cfg.workers and summary.seconds < target_s:
                    job = next(jobs, None)
                    if job is None:
                        break
                    inflight.add(ex.submit(run_job, job, corpus_dir, frozen, max_clips, cfg.features, audio))
                if not inflight:
                    break
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    finish(*fut.result())
        except KeyboardInterrupt:
            # Ctrl-C: stop now rather than after the jobs in flight (up to a minute each). Finished jobs are already
            # in the index and jobs.jsonl; the ones cut off rerun on resume, their temp folders removed at start.
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                proc.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    summary.wall_s = time.monotonic() - t0
    return summary
