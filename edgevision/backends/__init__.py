"""Backends chosen from a table, not an if-chain. Each is one module, imported on use, subclassing
base.Backend (feeds checked there, capabilities declared); TensorRT's sits in tensorrt/ beside
what loading an engine needs (its sidecar, key and compatibility rules)."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._lazy import available
from ..errors import EdgeVisionError, closest
from .base import Backend


# (threads per inference, inferences at once) -> the backend's options for that.
RunOptions = Callable[[int, int], dict[str, Any]]


@dataclass(frozen=True)
class BackendEntry:
    """module:class to import, the files it loads, the modules it needs to be usable, and how
    it is told to run `n` single-or-few-threaded inferences at once (None: it decides itself)."""

    target: str
    suffixes: tuple[str, ...]
    requires: tuple[str, ...]
    run_options: RunOptions | None = None


BACKENDS: dict[str, BackendEntry] = {
    # Engines only (by suffix): the backend itself says so when there is no GPU.
    "tensorrt": BackendEntry("edgevision.backends.tensorrt.backend:TensorRTBackend", (".engine", ".plan"), ("tensorrt", "cuda.bindings")),
    "onnxruntime": BackendEntry("edgevision.backends.onnxruntime:OnnxRuntimeBackend", (".onnx",), ("onnxruntime",),
                                lambda threads, n: {"threads": threads}),
    # The same .onnx files on Intel CPUs / GPUs / NPUs; chosen by name, or by a convert folder's speed report.
    # .xml: the OpenVINO IR `convert --int8-engine nncf` writes (converters/precision/openvino_int8.py).
    "openvino": BackendEntry("edgevision.backends.openvino:OpenVinoBackend", (".onnx", ".xml"), ("openvino",),
                             lambda threads, n: {"threads": threads, "streams": n}),
}


def run_options(backend: str, threads: int, concurrent: int = 1) -> dict[str, Any]:
    """Options that make `backend` run `concurrent` inferences of `threads` threads each ({}: its own choice)."""
    entry = BACKENDS.get(backend)
    return entry.run_options(threads, concurrent) if entry is not None and entry.run_options else {}


def backend_class(name: str) -> type:
    module, _, cls = BACKENDS[name].target.partition(":")
    klass: type = getattr(importlib.import_module(module), cls)
    return klass


def accepted_options(name: str) -> set[str]:
    """Keyword options the backend's constructor takes (beyond the artifact path)."""
    params = inspect.signature(backend_class(name).__init__).parameters
    return {p for p in params if p not in ("self", "path")}


def check_options(name: str, options: dict[str, Any]) -> None:
    """A clear error for options the backend does not take (not a TypeError from its constructor)."""
    takes = accepted_options(name)
    unknown = sorted(set(options) - takes)
    if unknown:
        others = [b for b in BACKENDS if b != name and set(unknown) <= accepted_options(b)]
        raise EdgeVisionError(
            f"the {name} backend takes no option {', '.join(repr(u) for u in unknown)}"
            + (f" (that is for {', '.join(others)})" if others else "") + f"; it takes: {', '.join(sorted(takes)) or 'none'}"
        )


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
    check_options(name, options)
    backend: Backend = backend_class(name)(path, **options)
    return backend
