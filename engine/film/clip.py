"""A CLIP image encoder from a local directory (Hugging Face transformers format) as the semantic backbone.

HPM's semantic branch reads CLIP image features. None ship with filmscore; a user who has a CLIP checkpoint on disk
(a `CLIPModel` or `CLIPVisionModelWithProjection` saved with `save_pretrained`, plus its `preprocessor_config.json`)
names its directory and gets, per frame, the image embedding CLIP's contrastive loss was trained on:
`visual_projection(post_layernorm(CLS))`, `(B, projection_dim)`, not normalised. Nothing is ever downloaded
(`local_files_only=True`). `transformers` is the optional extra `filmscore[clip]`. The open_clip format is not
read (see docs/film_encoder.md).

Preprocessing is the directory's own image processor (CLIP's: bicubic resize of the short side, centre crop,
rescale, normalise with its mean/std), so the encoder sees frames as it was trained to.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import onnx_io
from ..errors import BackendError
from .backbone import OnnxBackbone, TorchEmbedder

logger = logging.getLogger(__name__)

_CLIP_TYPES = ("clip", "clip_vision_model")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


@dataclass(frozen=True)
class ClipDirectory:
    """What a CLIP directory holds, read from its JSON files without loading weights.

    `image_size`: the processor's crop (pixels, square); `patch_size`: the ViT's patch (pixels); `weights_hash`:
    sha256 of the config, processor config and weight files (weights sampled past 8 MiB, see cache.media_hash);
    `name`: the backbone name written into the feature layout, e.g. `clip-p32-0123456789ab@224`. It names the
    weights, not the path, so the same checkpoint in another folder gives the same layout.
    """

    path: Path
    image_size: int
    patch_size: int
    weights_hash: str

    @property
    def name(self) -> str:
        return f"clip-p{self.patch_size}-{self.weights_hash[:12]}@{self.image_size}"


def _fail(path: Path, why: str) -> BackendError:
    return BackendError(f"semantic backbone {path}: {why}")


def inspect_clip_dir(path: str | Path) -> ClipDirectory:
    """Check that `path` holds a transformers CLIP image encoder and its image processor; raise BackendError (one
    line naming the directory) otherwise."""
    import hashlib

    from .cache import media_hash

    path = Path(path).expanduser()
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "no such directory"
        raise _fail(path, f"{what} (expected a CLIP image encoder saved by transformers)")
    config_file = path / "config.json"
    if not config_file.is_file():
        if (path / "open_clip_config.json").is_file():
            raise _fail(path, "is in open_clip format, which filmscore does not read; save it in transformers "
                              "format (CLIPModel.save_pretrained)")
        raise _fail(path, "is not a CLIP image encoder directory (no config.json)")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"config.json is not readable JSON ({e})") from e
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in _CLIP_TYPES:
        raise _fail(path, f"config.json describes a {model_type!r} model, not a CLIP image encoder "
                          f"(model_type must be one of {', '.join(_CLIP_TYPES)})")
    vision = (config.get("vision_config") or {}) if model_type == "clip" else config
    proc_file = path / "preprocessor_config.json"
    if not proc_file.is_file():
        raise _fail(path, "has no preprocessor_config.json (CLIP's image mean/std and crop size)")
    try:
        proc = json.loads(proc_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"preprocessor_config.json is not readable JSON ({e})") from e
    weights = sorted({p for pat in _WEIGHT_PATTERNS for p in path.glob(pat)})
    if not weights:
        raise _fail(path, "holds no weights (model.safetensors or pytorch_model.bin)")
    crop = proc.get("crop_size", vision.get("image_size", 224))
    image_size = int(crop.get("height", 224) if isinstance(crop, dict) else crop)
    h = hashlib.sha256(config_file.read_bytes() + proc_file.read_bytes())
    for w in weights:
        h.update(f"{w.name}={media_hash(w)};".encode())
    return ClipDirectory(path, image_size, int(vision.get("patch_size", 32)), h.hexdigest())


def _transformers(path: Path):
    try:
        import transformers
    except ImportError as e:
        raise _fail(path, "needs the transformers package (pip install 'filmscore[clip]')") from e
    return transformers


def load_processor(info: ClipDirectory):
    """The directory's image processor, PIL backend (no torchvision needed)."""
    tf = _transformers(info.path)
    cls = getattr(tf, "CLIPImageProcessorPil", None) or tf.CLIPImageProcessor
    try:
        return cls.from_pretrained(str(info.path), local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, ...
        raise _fail(info.path, f"cannot read its image processor ({_one_line(e)})") from e


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def clip_preprocess(processor, rgb: np.ndarray) -> np.ndarray:
    """`(B, H, W, 3)` uint8 -> `(B, 3, S, S)` float32 `pixel_values`, as the processor makes them."""
    out = processor(images=[np.ascontiguousarray(f) for f in rgb], return_tensors="np")["pixel_values"]
    return np.ascontiguousarray(out, dtype=np.float32)


def _vision_config(tf, path: Path):
    """The vision tower's config. From a whole CLIPModel's config the projection width is the top-level
    `projection_dim` (transformers would otherwise take the vision sub-config's default, 512)."""
    try:
        config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # see load_processor
        raise _fail(path, f"cannot read config.json as a transformers config ({_one_line(e)})") from e
    if isinstance(config, tf.CLIPConfig):
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return vision
    return config


class ClipImageBackbone(TorchEmbedder):
    """A transformers `CLIPVisionModelWithProjection` in PyTorch: the reference, the ONNX export source and the
    fallback runtime. `embed`: `(B, H, W, 3)` uint8 -> `(B, projection_dim)` float32."""

    def __init__(self, path: str | Path):
        import torch

        self.info = inspect_clip_dir(path)
        self.name = self.info.name
        tf = _transformers(self.info.path)
        self.processor = load_processor(self.info)
        tf_log = tf.utils.logging
        bars, verbosity = tf_log.is_progress_bar_enabled(), tf_log.get_verbosity()
        tf_log.disable_progress_bar()  # no "Loading weights" bar in the CLI's output
        tf_log.set_verbosity_error()  # nor a load report listing a whole CLIPModel's text weights as unused
        try:
            model, loading = tf.CLIPVisionModelWithProjection.from_pretrained(
                str(self.info.path), config=_vision_config(tf, self.info.path), local_files_only=True,
                output_loading_info=True)
        except Exception as e:  # see load_processor; a mismatched size is a RuntimeError
            raise _fail(self.info.path, f"cannot load a CLIP image encoder ({_one_line(e)})") from e
        finally:
            tf_log.set_verbosity(verbosity)
            if bars:
                tf_log.enable_progress_bar()
        missing = [k for k in loading.get("missing_keys", ()) if not k.endswith("position_ids")]
        if missing:
            # e.g. a CLIPVisionModel saved without its projection: transformers would fill it with random weights
            raise _fail(self.info.path, f"weights lack {len(missing)} tensors of the image encoder "
                                        f"({', '.join(sorted(missing)[:3])}{', ...' if len(missing) > 3 else ''})")
        self.model = model.eval()
        self.dim = int(self.model.visual_projection.out_features)

        class ImageEmbeds(torch.nn.Module):
            """`(B, 3, S, S)` pixel_values -> `(B, projection_dim)` image embeddings."""

            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, pixel_values):
                return self.model(pixel_values=pixel_values).image_embeds

        self.module = ImageEmbeds(self.model).eval()

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return clip_preprocess(self.processor, rgb)


def export_clip_onnx(backbone: ClipImageBackbone, folder: str | Path) -> Path:
    """Export the image-embedding module (engine/onnx_io.py) into `folder` (`model.onnx` + its external weights
    `model.onnx.data`): input `frames` `(B, 3, S, S)` pixel_values, output `features` `(B, dim)`, dynamic batch.
    Returns the .onnx path."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = backbone.info.image_size
    onnx_io.export_onnx(backbone.module, {"frames": torch.zeros(2, 3, s, s)}, folder / "model.onnx",
                        outputs=["features"], dynamic_shapes={"pixel_values": {0: onnx_io.batch_dim()}},
                        what=f"semantic backbone {backbone.name}", external_data=True)
    return folder / "model.onnx"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]", "_", text)


def load_clip_backbone(path: str | Path, *, onnx_cache: str | Path | None = None):
    """The CLIP image encoder in `path`: through ONNX Runtime from `<onnx_cache>/<name>-opset<OPSET>/` (exported there
    the first time; later loads need no torch model) when `onnx_cache` is given, else (or if the export fails) in
    PyTorch."""
    import os
    import shutil

    info = inspect_clip_dir(path)
    if onnx_cache is not None:
        folder = Path(onnx_cache) / _safe(f"{info.name}-opset{onnx_io.OPSET}")
        try:
            if not (folder / "model.onnx").is_file():
                torch_bb = ClipImageBackbone(info.path)
                tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                export_clip_onnx(torch_bb, tmp)
                try:
                    os.replace(tmp, folder)  # atomic: corpus workers may export at the same time
                except OSError:
                    if not (folder / "model.onnx").is_file():
                        raise
                    shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
            processor = load_processor(info)
            ort_bb = OnnxBackbone(folder / "model.onnx", info.name, 0, info.image_size,
                                  preprocess=lambda rgb: clip_preprocess(processor, rgb))
            ort_bb.dim = int(ort_bb.session.get_outputs()[0].shape[1])
            return ort_bb
        except (OSError, RuntimeError, onnx_io.OnnxExportError) as e:
            logger.warning("semantic backbone %s: ONNX Runtime path unavailable, using PyTorch (%s)", info.path, e)
        except BackendError as e:
            if "ONNX Runtime" not in str(e):
                raise  # the directory itself is at fault: say so rather than fall back
            logger.warning("semantic backbone %s: %s; using PyTorch", info.path, e)
    return ClipImageBackbone(info.path)
