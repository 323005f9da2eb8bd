"""The shipped maestro library: size, contents, seeded choice, errors, and that the build script reproduces it."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from filmscore.engine.controls.fit import fit_theme
from filmscore.engine.controls.maestros import LIBRARY_DIR, MaestroError, load_theme, master_names, masters


def test_library_is_small_and_complete():
    files = sorted(LIBRARY_DIR.glob("*.json"))
    assert sum(f.stat().st_size for f in files) < 5 * 2**20
    lib = masters()
    assert len(lib) >= 6
    for m in lib:
        assert len(m.themes) >= 20, m.name
        assert len({t.id for t in m.themes}) == len(m.themes)
        for t in m.themes:
            assert t.n_notes >= 6 and 40 <= t.tempo_bpm <= 200 and t.source.startswith("music21 corpus: ")
            assert t.key and "/" in t.meter and t.duration_s > 1.0


@pytest.mark.parametrize("name", master_names())
def test_every_theme_loads_and_fits(name):
    for info in next(m for m in masters() if m.name == name).themes:
        th = load_theme(name, info.id)
        assert th.length_s == pytest.approx(info.duration_s)
        assert th.meta["master"] == name and th.meta["key"] == info.key
        c = fit_theme(th, 20.0).controls()
        assert c.n_frames == 2000 and c.melody_present and c.melody.sum() > 0.5 * 2000 * 0.3


def test_seeded_choice_and_ids():
    a, b = load_theme("bach", seed=1), load_theme("bach", seed=1)
    assert a.name == b.name
    names = {load_theme("bach", seed=s).name for s in range(12)}
    assert len(names) > 3
    assert load_theme("BACH", "7").name == load_theme("bach", "bach-07").name


def test_unknown_master_and_theme():
    with pytest.raises(MaestroError, match="unknown maestro 'wagner'; choose one of bach"):
        load_theme("wagner")
    with pytest.raises(MaestroError, match="maestro bach has no theme '99'; themes are bach-01..bach-24"):
        load_theme("bach", "99")


def test_damaged_library_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(MaestroError, match="broken.json: cannot read"):
        load_theme("broken", directory=tmp_path)
    (tmp_path / "old.json").write_text(json.dumps({"format": 0, "themes": []}))
    with pytest.raises(MaestroError, match="not a format-1 library"):
        load_theme("old", directory=tmp_path)


@pytest.mark.slow
def test_build_script_reproduces_a_shipped_theme():
    spec = importlib.util.spec_from_file_location("maestro_build", LIBRARY_DIR / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules["maestro_build"] = build  # dataclasses look their module up
    spec.loader.exec_module(build)
    celtic = next(m for m in build.MASTERS if m.name == "celtic")
    one = build.Master(celtic.name, celtic.display, celtic.era, celtic.default_bpm, celtic.sources[:1])
    rebuilt = build.build_master(one)["themes"][0]
    shipped = json.loads((LIBRARY_DIR / "celtic.json").read_text())["themes"][0]
    assert rebuilt == shipped
    assert np.isclose(build.beat_factor(6, 8), 1.5) and build.beat_factor(2, 2) == 2.0
