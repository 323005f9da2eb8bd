"""A cue's final latent, kept beside it as OUT.latent.npy (a sidecar: `preflight.sidecar_paths`), and the record in
its JSON that ties it to the cue's samples. `render_cue` writes it; `regenerate` and conform hold it fixed while they
inpaint, instead of running the cue's request again (engine/regenerate.py, docs/editor_loop.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import RequestError
from .preflight import sidecar_paths


def latent_path(output: Path) -> Path:
    """OUT.latent.npy: the final latent of a rendered or regenerated cue (float32 `(1, C, L)`)."""
    return sidecar_paths(output)["latent"]


def pcm_sha256(pcm: np.ndarray) -> str:
    """sha256 of a cue's samples as engine/regenerate.py reads them (int32 24-bit values): what a stored latent
    belongs to, whatever chunks around them change (conform rewrites a copied cue's bext time reference)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(pcm, "<i4").tobytes()).hexdigest()


def wav_pcm_sha256(path: Path) -> str:
    """`pcm_sha256` of the samples of the WAV at `path`, read a block at a time: a render hashes the cue it has
    just written, and a 10-minute cue's samples are 115 MB as int32 (three such copies made the render's peak memory
    grow with the cue's length)."""
    import hashlib

    import soundfile as sf

    h = hashlib.sha256()
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=1 << 16, dtype="int32", always_2d=True):
                h.update(np.ascontiguousarray(block >> 8, "<i4").tobytes())
    except (RuntimeError, OSError) as e:
        raise RequestError(f"{path}: cannot read ({e})") from None
    return h.hexdigest()


def save_latent(latents: torch.Tensor, path: Path, wav: Path) -> dict:
    """Write a cue's final latent to `path` (float32 .npy) and return its JSON record: the file and the sha256 of
    the samples of `wav` (written before) it belongs to."""
    from .atomic import write_atomically

    def write(p: Path) -> None:
        with open(p, "wb") as f:  # closed here: a full disk fails here
            np.save(f, latents.detach().cpu().numpy().astype(np.float32))

    write_atomically(path, write)
    return {"file": str(path), "pcm_sha256": wav_pcm_sha256(wav)}
