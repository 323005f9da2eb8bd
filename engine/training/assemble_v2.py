"""Bundle v2 from its training checkpoints (`train_v2.py`): the VAE the LDM trained on (`ldm/vae_frozen.pt`), the
EMA weights of the LDM side (UNet, ControlNet, film head, global conditions) and of the vocoder, the stereo side
gains measured on the corpus's stems (`stereo_v2.side_gains`), and provenance: each stage's steps, hours and
sessions (v1's `stage_provenance`) and the corpus as it stands (`corpus.json`, clips and hours per split); and the
data manifest (engine/data/data_manifest.py: every source, its licence as installed, its hours; the weights'
licence), which `filmscore bundle info` prints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends.cache import cpu_name
from ..bundle_v2 import save_bundle_v2
from ..data.data_manifest import corpus_data_manifest
from ..data.index import corpus_summary
from ..errors import FilmscoreError
from ..models import VocosVocoder
from ..stereo_v2 import side_gains
from .assemble import stage_provenance, trained_vae
from .corpus_v2 import CorpusV2
from .loop import Run
from .train_v2 import MODEL_CLASSES_V2

SIDE_GAIN_CLIPS = 64  # stems per kind the side gains are measured on


def measure_side_gains(corpus: CorpusV2, n_clips: int = SIDE_GAIN_CLIPS, seed: int = 0) -> dict[str, float]:
    """`stereo_v2.side_gains` over up to `n_clips` train clips drawn with `seed`, stems with notes only."""
    rng = np.random.default_rng(seed)
    clips = [corpus.clips[i] for i in sorted(rng.permutation(len(corpus.clips))[:n_clips])]
    return side_gains({s: [c.stem_paths[s] for c in clips if c.present.get(s, True)] for s in corpus.stems})


def assemble_bundle_v2(train_dir: Path, out: Path, corpus: CorpusV2, *, fp16: bool = True,
                       name: str = "filmscore-v2", version: str | None = None) -> dict[str, Any]:
    ldm = Run("ldm", train_dir)
    state = ldm.load()
    if state is None:
        raise FilmscoreError(f"{ldm.dir}: no v2 LDM checkpoint; run `filmscore train ldm --corpus-version 2` first")
    if not (train_dir / "ldm" / "vae_frozen.pt").is_file():
        raise FilmscoreError(f"{train_dir / 'ldm' / 'vae_frozen.pt'}: missing; the LDM run freezes its VAE there")
    models: dict[str, torch.nn.Module] = {"vae": trained_vae(train_dir, None)}
    for cname, cls in MODEL_CLASSES_V2.items():
        m = cls.from_config(state["configs"][cname])
        m.load_state_dict(state["ema"][cname])
        models[cname] = m.eval()
    provenance: dict[str, Any] = {"hardware": f"{cpu_name()} ({os.cpu_count()} cores)", "torch": torch.__version__,
                                  "stages": {"ldm": stage_provenance(ldm)}}
    provenance["stages"]["ldm"]["model_size"] = ldm.extra.get("model_size")
    for stage in ("vae", "vocoder"):
        run = Run(stage, train_dir)
        st = run.load()
        if st is None:
            continue
        provenance["stages"][stage] = stage_provenance(run)
        provenance["stages"][stage]["model_size"] = run.extra.get("model_size")
        if stage == "vocoder":
            voc = VocosVocoder.from_config(st["configs"]["vocoder"])
            voc.load_state_dict(st["ema"]["vocoder"])
            models["vocoder"] = voc.eval()
    if "vocoder" not in models:
        raise FilmscoreError(f"{train_dir / 'vocoder'}: no v2 vocoder checkpoint; bundle v2 renders through it")
    gains = measure_side_gains(corpus)
    provenance["corpus"] = {"path": str(corpus.root), **corpus_summary(corpus.root),
                            **json.loads((corpus.root / "corpus.json").read_text())}
    provenance["stereo_side_gains_from"] = f"{min(SIDE_GAIN_CLIPS, len(corpus.clips))} train clips"
    steps = provenance["stages"]
    version = version or f"2.0.{steps['ldm']['steps']}+voc.{steps['vocoder']['steps']}"
    data = corpus_data_manifest(corpus.root)  # every source, its licence as installed, its hours
    save_bundle_v2(out, models, name=name, version=version, mel=corpus.mel, stems=corpus.stems, side_gains=gains,
                   film_layout=models["film_head"].config.feature_layout, provenance=provenance,
                   dtype=torch.float16 if fp16 else torch.float32, data=data)
    size = sum(f.stat().st_size for f in Path(out).iterdir() if f.is_file()) / 1e6
    return {"bundle": str(out), "version": version, "size_mb": round(size, 2), "components": sorted(models),
            "side_gains": gains, "provenance": provenance, "data": data}

