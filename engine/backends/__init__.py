"""Runtime backends: the pipeline's model stages on PyTorch, ONNX Runtime (CPU / CUDA / TensorRT EP) or TensorRT,
behind one interface (`Backend`). `load_backend(name, bundle)` loads one; "auto" picks the fastest measured."""

from .base import Backend
from .select import NAMES, load_backend, measured_speeds

__all__ = ["NAMES", "Backend", "load_backend", "measured_speeds"]
