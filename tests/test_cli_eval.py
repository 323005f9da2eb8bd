"""`filmscore eval`: a tiny run without the corpus, JSON on stdout, the report on disk, errors in one line."""

from __future__ import annotations

import json

import pytest

from filmscore.bridge.cli import main
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.metrics.testing import make_tiny_corpus, make_tiny_set


@pytest.mark.slow
def test_eval_json_and_report(tmp_path, capsys):
    bundle = make_tiny_bundle(tmp_path / "b")
    s = make_tiny_set(tmp_path / "set", with_video=False)
    rc = main(["eval", "--set", str(s), "-o", str(tmp_path / "r"), "--bundle", str(bundle), "--steps", "2",
               "--systems", "model,ground_truth,shuffled,plan", "--no-reference", "--backend", "torch", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["systems"]) == {"model", "ground_truth", "shuffled", "plan"}
    assert out["systems"]["ground_truth"]["melody_accuracy_pooled"] == pytest.approx(1.0)
    assert out["reference"] == {"missing": "--no-reference given"}
    assert (tmp_path / "r" / "report.md").is_file() and (tmp_path / "r" / "plots" / "summary.png").is_file()
    # plan adherence beside the other metrics: every cue measured against its item's plan, in JSON and Markdown
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    n_items = len(json.loads((s / "set.json").read_text())["items"])
    plan_cues = [c for c in report["cues"] if c["system"] == "plan"]
    assert len(plan_cues) == n_items and report["systems"]["plan"]["n_plan_cues"] == n_items
    for c in report["cues"]:
        assert c["plan_tempo_matches"] in (True, False) and c["plan_mode_matches"] in (True, False)
        assert c["plan_pulse_on_beats"] is None or c["plan_pulse_on_beats"] > 0
    for system in out["systems"].values():
        assert 0.0 <= system["plan_tempo_matches"] <= 1.0 and 0.0 <= system["plan_mode_matches"] <= 1.0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "plan: audio tempo = plan's" in md and "model rendering the item's plan" in md


def test_make_set_from_a_corpus_without_films_is_refused(tmp_path, capsys):
    corpus = make_tiny_corpus(tmp_path / "c", works_per_master=1, duration_s=1.0)
    rc = main(["eval", "--make-set", str(tmp_path / "s"), "--corpus", str(corpus), "--duration", "1"])
    assert rc == 2
    assert "no held-out clip" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["eval", "--set", "/nonexistent/set", "-o", "OUT"], "no set.json"),
    (["eval", "--set", "default"], "-o REPORT_DIR"),
    (["eval", "--set", "SET", "-o", "OUT", "--systems", "model,oracle"], "unknown system"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, match):
    s = make_tiny_set(tmp_path / "set", with_video=False)
    argv = [str(s) if a == "SET" else str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and "Traceback" not in err
