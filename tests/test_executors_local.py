"""The executor interface through `LocalExecutor` (the engine in this process): events in order, one terminal event
per task, a failing cue does not stop the next, cancelling stops the render in flight and the rest; and the pieces
every executor shares (segments that travel, hit merging, path rebasing, longest-first order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executors_fixture import make_reel

from filmscore.bridge.executors import ExecutorError, SegmentSpec, make_executor
from filmscore.bridge.executors.base import CueTask, longest_first, rebase_paths
from filmscore.bridge.timelines.render_cue import merge_hits
from filmscore.bridge.executors.local import LocalExecutor
from filmscore.bridge.timelines.batch import ScoreOptions, cue_task
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.files import read_timeline
from filmscore.engine.request import RenderRequest


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from filmscore.engine.bundle_testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0)


@pytest.fixture(scope="module")
def cues(tmp_path_factory):
    return read_cues(read_timeline(make_reel(tmp_path_factory.mktemp("reel"))))


def test_segments_travel_as_plain_values_and_come_back_the_same(cues):
    import pickle

    for cue in cues.cues:
        for seg in cue.picture:
            spec = pickle.loads(pickle.dumps(SegmentSpec.of(seg)))  # OTIO's own times do not pickle
            assert spec.to_segment() == seg
    seg = cues.cues[0].picture[0]
    moved = SegmentSpec.of(seg).to_segment({str(seg.media_path): "/elsewhere/a.mp4"})
    assert moved.media_path == Path("/elsewhere/a.mp4") and moved.record_range == seg.record_range


def test_shared_pieces():
    assert merge_hits([0.5, 2.0, 9.0], [0.52, 1.0, -0.1], 3.0) == (0.5, 1.0, 2.0)
    assert rebase_paths({"a": ["/w/x/1.wav", "media offline: /w/x/2.mp4 not found"], "n": 3},
                        {"/w/x/": "/out/"}) == {"a": ["/out/1.wav", "media offline: /out/2.mp4 not found"], "n": 3}
    tasks = [CueTask(n, RenderRequest(Path(f"{n}.wav"), duration_s=d), cost_s=d)
             for n, d in (("a", 2.0), ("b", 5.0), ("c", 2.0), ("d", 3.0))]
    assert [t.task_id for t in longest_first(tasks)] == ["b", "d", "a", "c"]
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        make_executor("dask")


@pytest.mark.slow
def test_events_failures_and_cancel(tmp_path, cues, bundle):
    opts = ScoreOptions(seed=3, steps=2, bundle=bundle)
    first, second = cues.cues[0], cues.cues[2]
    ok = cue_task(first, opts, tmp_path / "a", "reel")
    bad = CueTask("bad", RenderRequest(tmp_path / "b" / "bad.wav", duration_s=2.0, midi=tmp_path / "none.mid",
                                       bundle=bundle), cost_s=2.0)
    ok2 = cue_task(second, opts, tmp_path / "c", "reel")
    for t in (ok, bad, ok2):
        Path(t.request.output).parent.mkdir(parents=True)
    events = list(LocalExecutor().run([ok, bad, ok2]))
    kinds = [(e.kind, e.task_id) for e in events if e.kind != "progress"]
    assert kinds == [("start", ok.task_id), ("done", ok.task_id), ("start", "bad"), ("failed", "bad"),
                     ("start", ok2.task_id), ("done", ok2.task_id)]
    stages = {e.stage for e in events if e.kind == "progress" and e.task_id == ok.task_id}
    assert {"controls", "denoise", "deliver"} <= stages
    failed = next(e for e in events if e.kind == "failed")
    assert failed.ename == "RequestError" and "none.mid" in failed.message and "\n" not in failed.message
    done = next(e for e in events if e.kind == "done")
    assert done.output.result.output == Path(ok.request.output) and Path(ok.request.output).is_file()
    assert done.output.timings_s["picture"] > 0 and done.output.missing_picture == []

    # Cancel while the first cue renders: it stops at its next denoising step, the next one never starts.
    from filmscore.engine.render import render_cue

    stop = {"now": False}

    def render(request, **kw):
        stop["now"] = True  # the user cancels while this cue is in flight
        return render_cue(request, **kw)

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    run = [(e.kind, e.task_id) for e in LocalExecutor(render=render).run(
        [cue_task(first, opts, tmp_path / "x", "reel"), cue_task(second, opts, tmp_path / "y", "reel")],
        should_cancel=lambda: stop["now"]) if e.kind != "progress"]
    assert run == [("start", first.file_stem), ("cancelled", first.file_stem), ("cancelled", second.file_stem)]
    assert not (tmp_path / "x" / f"{first.file_stem}.wav").exists()
