"""engine/preflight.py: which fields are inputs, when two paths are one file, the output folder probe, the space
check, and that a request's problems are found without the model (real files; the CLI's behaviour is in
test_cli_render_safety.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from filmscore.engine.controls.maestros import MaestroError
from filmscore.engine.errors import RequestError
from filmscore.engine.preflight import (OutputError, check_request, check_space, input_paths, output_paths,
                                        probe_writable, same_file)
from filmscore.engine.request import RenderRequest


def test_inputs_are_the_path_fields_only(tmp_path):
    req = RenderRequest(output=tmp_path / "x.wav", video="clip.mp4",  # type: ignore[arg-type] (a str path)
                        maestro="bach", theme="3", scheduler="ddim", bundle=tmp_path / "b")
    assert input_paths(req) == {"video": Path("clip.mp4")}  # no str option, no bundle
    assert [p.name for p in output_paths(tmp_path / "cue.wav")] == ["cue.wav", "cue.controls.npz", "cue.json",
                                                                   "cue.theme.mid", "cue.latent.npy"]


def test_same_file_sees_through_spellings_and_links(tmp_path, monkeypatch):
    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    os.link(f, tmp_path / "hard.wav")
    (tmp_path / "soft.wav").symlink_to(f)
    monkeypatch.chdir(tmp_path)
    for other in (Path("a.wav"), tmp_path / "sub" / ".." / "a.wav", tmp_path / "hard.wav", tmp_path / "soft.wav"):
        assert same_file(f, other), other
    assert not same_file(f, tmp_path / "b.wav")  # a path that does not exist yet is not the file


def test_probe_leaves_nothing_behind_and_names_a_missing_folder(tmp_path):
    probe_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="does not exist"):
        probe_writable(tmp_path / "nope")


def test_space_check_names_free_and_needed(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_space(tmp_path, 1000)
    with pytest.raises(OutputError, match=r"MB free, the cue and its sidecars need about"):
        check_space(tmp_path, free + 1)


def test_problems_are_found_without_the_model(tmp_path):
    """check_request reads no weights: a bundle whose weight files are gone passes it (load_bundle would not), and
    the request's own faults are named."""
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny", feature_dim=8, feature_layout="test")
    for f in bundle.glob("*.safetensors"):
        f.unlink()
    checked = check_request(RenderRequest(output=tmp_path / "cue.wav", duration_s=3.0, maestro="bach", seed=5,
                                          bundle=bundle))
    assert checked.duration_s == 3.0 and checked.theme.meta["master"] == "bach"
    with pytest.raises(MaestroError, match="maestro bach has no theme '99'"):
        check_request(RenderRequest(output=tmp_path / "cue.wav", duration_s=3.0, maestro="bach", theme="99",
                                    bundle=bundle))
    with pytest.raises(RequestError, match="must end in .wav"):
        check_request(RenderRequest(output=tmp_path / "cue.mp3", duration_s=3.0, bundle=bundle))
