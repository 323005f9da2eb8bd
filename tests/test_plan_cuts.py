"""Same-palette cuts (shot / reverse-shot in one room: the same colours, a new texture and structure): generated
H.264 edits with known cuts, flashes and fast motion; the film encoder's timing must find the cuts (recall and
precision >= 0.95 at +-1 frame of the 10/s grid, `cut_eval.match`) and nothing at the flashes or in the fast
pans. The edits and their scoring: engine/film/palette_edits.py."""

from __future__ import annotations

from filmscore.engine.film.palette_edits import score_edits


def test_same_palette_cuts_found_flashes_and_pans_ignored(tmp_path):
    r = score_edits(range(4), tmp_path)
    print("same-palette edits:", r)
    assert r["recall"] >= 0.95 and r["precision"] >= 0.95
