"""Optional dependencies. The core install (`pip install filmscore`) renders and serves; the lab's libraries come
with extras (pyproject.toml lists what each brings):

| extra | for |
|---|---|
| `reference` | a reference recording as the controls' source (chroma, tuning, beat tracking: librosa) |
| `plot` | the `--plot` PNGs of `controls` and `encode` (matplotlib) |
| `clip` | a CLIP image encoder as the film encoder's semantic backbone (transformers) |
| `train` | corpus building and training (music21, librosa, peft) |
| `eval` | `filmscore eval` and `train evaluate` (mir_eval, librosa, matplotlib, basic-pitch's needs) |
| `gpu` | ONNX Runtime's CUDA build and TensorRT |

A command that needs a package the install left out fails with one line naming the extra to install, never with
a bare ImportError from deep inside a library.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import FilmscoreError


class MissingExtraError(FilmscoreError):
    """A feature whose optional dependency is not installed; names the extra that brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`module` imported, or MissingExtraError saying that `feature` needs `pip install 'filmscore[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports failed: that is its error, not a missing extra
        raise MissingExtraError(f"{feature} needs {top}, which the core install leaves out: "
                                f"pip install 'filmscore[{extra}]'") from e
