"""TensorRT engines: built on the device from a converted ONNX artifact, described by a
JSON sidecar, cached by what they were built from and for.

    from edgevision.engine import BuildOptions, build_engine
    result = build_engine("yolo11n.onnx", options=BuildOptions(precision="fp16"))

Decisions are pure Python and unit-tested without a GPU: precision path (precision.py),
optimization profiles (profiles.py), cache keys and compatibility (cache.py, compat.py),
the sidecar (sidecar.py). TensorRT calls live in builder.py only. Nothing here imports
TensorRT, onnx or CUDA at import time.
"""
from .build import BuildOptions, BuildResult, build_engine, default_engine_path
from .profiles import BatchRange
from .sidecar import EngineSidecar, read_sidecar, sidecar_path

__all__ = [
    "BatchRange", "BuildOptions", "BuildResult", "EngineSidecar",
    "build_engine", "default_engine_path", "read_sidecar", "sidecar_path",
]
