"""Backends chosen from a table, not an if-chain. Each is one file, imported on use."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._lazy import available
from ..errors import EdgeVisionError, closest
from .base import Backend


@dataclass(frozen=True)
class BackendEntry:
    """module:class to import, the files it loads, and the modules it needs to be usable."""

    target: str
    suffixes: tuple[str, ...]
    requires: tuple[str, ...]


BACKENDS: dict[str, BackendEntry] = {
    # Engines only (by suffix): the backend itself says so when there is no GPU.
    "tensorrt": BackendEntry("edgevision.backends.tensorrt:TensorRTBackend", (".engine", ".plan"), ("tensorrt", "cuda.bindings")),
    "onnxruntime": BackendEntry("edgevision.backends.onnxruntime:OnnxRuntimeBackend", (".onnx",), ("onnxruntime",)),
    # The same .onnx files on Intel CPUs / GPUs / NPUs; chosen by name, or by a convert folder's speed report.
    "openvino": BackendEntry("edgevision.backends.openvino:OpenVinoBackend", (".onnx",), ("openvino",)),
}


def usable_backends() -> list[str]:
    """Backends whose dependencies import on this machine."""
    return [name for name, e in BACKENDS.items() if all(available(m) for m in e.requires)]


def onnx_backends() -> list[str]:
    """Usable backends that run .onnx files, in table order (ONNX Runtime first)."""
    return [n for n in usable_backends() if ".onnx" in BACKENDS[n].suffixes]


def choose_backend(path: Path, requested: str | None = None) -> str:
    """The backend for an artifact: the requested one, else the first in the table that fits the file."""
    if requested:
        if requested not in BACKENDS:
            raise EdgeVisionError(f"unknown backend {requested!r}{closest(requested, BACKENDS)}; choose from {', '.join(BACKENDS)}")
        return requested
    fits = [n for n, e in BACKENDS.items() if path.suffix.lower() in e.suffixes]
    if not fits:
        kinds = sorted({s for e in BACKENDS.values() for s in e.suffixes})
        raise EdgeVisionError(f"{path} is not an artifact edgevision can run (expected one of {', '.join(kinds)})")
    ready = [n for n in fits if n in usable_backends()]
    return (ready or fits)[0]


def open_backend(path: str | Path, requested: str | None = None, **options: Any) -> Backend:
    """Instantiate the chosen backend on `path`."""
    path = Path(path)
    if not path.exists():
        raise EdgeVisionError(f"model file not found: {path}")
    name = choose_backend(path, requested)
    module, _, cls = BACKENDS[name].target.partition(":")
    backend: Backend = getattr(importlib.import_module(module), cls)(path, **options)
    return backend
