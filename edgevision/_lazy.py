"""One place that imports optional heavy dependencies, lazily.

The runtime needs numpy alone at import time; onnxruntime, OpenCV, TensorRT and
cuda-python are imported on first use. A missing one raises EdgeVisionError naming
the pip extra that provides it. Nothing is ever installed at run time.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import EdgeVisionError

# module -> (pip extra or package, what it is for)
_EXTRAS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("edgevision[ort]", "running ONNX models on ONNX Runtime"),
    "openvino": ("edgevision[openvino]", "running ONNX models on OpenVINO"),
    "cv2": ("edgevision[video]", "reading and writing video and images"),
    "onnx": ("edgevision[convert]", "reading and editing ONNX graphs"),
    "yaml": ("edgevision[convert]", "reading --describe spec files"),
    "torch": ("edgevision[convert]", "converting PyTorch models"),
    "converters": ("edgevision[convert]", "converting PyTorch models (the build side)"),
    "ultralytics": ("edgevision[yolo]", "loading Ultralytics YOLO checkpoints"),
    "rfdetr": ("rfdetr", "loading Roboflow RF-DETR checkpoints"),
    "tensorrt": ("tensorrt (JetPack ships it; desktop: pip install tensorrt)", "building and running TensorRT engines"),
    "tensorrt_rtx": ("tensorrt-rtx-cu12", "building TensorRT-RTX engines"),
    "cuda": ("edgevision[trt] (cuda-python)", "CUDA memory and streams"),
    "scipy": ("edgevision[track]", "tracking (--track: ByteTrack's assignment)"),
    "nncf": ("edgevision[nncf]", "quantizing with NNCF (--int8-engine nncf)"),
}


def install_hint(name: str) -> str:
    """"pip install '<extra>'" for module `name` (TensorRT: where it comes from)."""
    top = name.split(".")[0]
    return f"pip install '{_EXTRAS.get(top, (top, ''))[0]}'"


def missing(name: str, exc: BaseException) -> str:
    """The sentence for a module that cannot be imported: what it is for and the pip extra."""
    top = name.split(".")[0]
    why = _EXTRAS.get(top, (top, "this feature"))[1]
    return f"{top} is needed for {why} but cannot be imported ({exc}). Install it with: {install_hint(name)}"


def lazy_import(name: str) -> ModuleType:
    """Import `name` or raise EdgeVisionError saying which extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise EdgeVisionError(missing(name, exc)) from exc


def available(name: str) -> bool:
    """True when `name` imports here (used to list backends, never to install)."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as unavailable
        return False
    return True
