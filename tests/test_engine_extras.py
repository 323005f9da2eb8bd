"""engine/extras.py: a missing optional package is one named error that says which extra to install."""

from __future__ import annotations

import sys

import pytest

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.extras import MissingExtraError, require


def test_present_module_is_returned():
    import json

    assert require("json", "eval", "anything") is json


def test_missing_module_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"--plot needs no_such_pkg_xyz, .*pip install 'filmscore\[plot\]'"):
        require("no_such_pkg_xyz.pyplot", "plot", "--plot")
    assert issubclass(MissingExtraError, FilmscoreError)  # the CLI prints it as one line and exits 2


def test_a_broken_installed_package_keeps_its_own_error(tmp_path, monkeypatch):
    """A package that is there but fails on one of its own imports is not reported as a missing extra."""
    (tmp_path / "half_installed_pkg").mkdir()
    (tmp_path / "half_installed_pkg" / "__init__.py").write_text("import its_missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "half_installed_pkg", raising=False)
    with pytest.raises(ModuleNotFoundError, match="its_missing_dependency_xyz") as caught:
        require("half_installed_pkg", "eval", "x")
    assert not isinstance(caught.value, MissingExtraError)
