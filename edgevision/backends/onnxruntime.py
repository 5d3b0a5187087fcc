"""ONNX Runtime backend: the CPU default, and CUDA/TensorRT providers where they really load."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy import lazy_import
from ..device import restricted_threads, u8s8_saturates
from ..errors import EdgeVisionError
from ..manifest import METADATA_KEY, Manifest
from .base import Backend
from .feeds import InputSpec

# Best first. A provider counts only if the session really uses it after creation:
# onnxruntime-gpu lists CUDA/TensorRT on machines where they then fail to load.
PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CPU_ONLY = ("CPUExecutionProvider",)


# ONNX Runtime's switch from uint8 x int8 to uint8 x uint8 integer kernels on x86 (weights shifted by 128).
X64_QUANT_PRECISION = "session.x64quantprecision"


def session_options(threads: int | None = None, profile_prefix: str | None = None) -> Any:
    """The SessionOptions every edgevision session uses (see make_session)."""
    ort = lazy_import("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    threads = threads or restricted_threads()  # a process on fewer cores than the machine: that many
    if threads:
        opts.intra_op_num_threads = threads
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if u8s8_saturates():
        # Exact INT8 on x86 without VNNI: ORT converts int8 weights that do not fit in 7 bits
        # to uint8 and runs u8u8 kernels: no int16 saturation, but slower than u8s8 (yolo11n-seg,
        # 1 thread: 203 vs 146 ms, FP32 215 ms; why twins built on such CPUs get 7-bit weights,
        # which ORT leaves on u8s8). Graphs without integer kernels are unaffected.
        opts.add_session_config_entry(X64_QUANT_PRECISION, "1")
    return opts


def make_session(
    model: str | os.PathLike[str] | bytes,
    threads: int | None = None,
    providers: Sequence[str] = CPU_ONLY,
    profile_prefix: str | None = None,
) -> Any:
    """An ONNX Runtime InferenceSession: the one place sessions are made, so every user (the
    backend, calibration, the layer search, timing) runs a graph the same way.

    model: a path, or a serialized ModelProto (graphs edited in memory). threads: intra-op
    threads (None: ONNX Runtime's choice, all physical cores; in a process pinned to fewer cores,
    one per core it may use). providers: best first.
    profile_prefix: turn ORT's profiler on, writing `<prefix>_<date>.json`.
    Every graph optimization on; ORT's own warnings off (they repeat what edgevision says);
    on x86 CPUs without VNNI, INT8 runs on exact u8u8 kernels (u8s8_saturates()).
    """
    ort = lazy_import("onnxruntime")
    opts = session_options(threads, profile_prefix)
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types per failure
        what = f"a {len(model)}-byte graph" if isinstance(model, bytes) else str(model)
        raise EdgeVisionError(f"ONNX Runtime cannot load {what}: {str(exc).strip()[:500]}") from exc


# ONNX Runtime's type names -> numpy (those a detector's inputs use; others are not checked)
ORT_DTYPES: dict[str, np.dtype] = {
    f"tensor({name})": np.dtype(dtype) for name, dtype in (
        ("float", np.float32), ("float16", np.float16), ("double", np.float64), ("int64", np.int64),
        ("int32", np.int32), ("int8", np.int8), ("uint8", np.uint8), ("bool", np.bool_),
    )
}


def input_spec(node: Any) -> InputSpec:
    """An ONNX Runtime NodeArg -> InputSpec (symbolic or unknown dimensions are dynamic)."""
    shape = None if node.shape is None else tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return InputSpec(node.name, ORT_DTYPES.get(node.type), shape)


def read_manifest(session: Any, path: Path) -> Manifest:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise EdgeVisionError(
            f"{path} has no edgevision manifest in its metadata: it was not made by `edgevision convert`; "
            "convert the source checkpoint: edgevision convert MODEL.pt"
        )
    return Manifest.from_json(meta[METADATA_KEY])


class OnnxRuntimeBackend(Backend):
    """An InferenceSession over a converted ONNX file.

    threads: intra-op threads (default: ONNX Runtime's choice, all physical cores).
    """

    name = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads at once

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        ort = lazy_import("onnxruntime")
        self.path = Path(path)
        wanted = providers or [p for p in PREFERRED if p in ort.get_available_providers()]
        self.session = make_session(self.path, threads, wanted)
        self.providers = tuple(self.session.get_providers())
        self.manifest = read_manifest(self.session, self.path)
        self.inputs = tuple(input_spec(i) for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = self.session.run(self.output_names, feeds)
        except Exception as exc:  # noqa: BLE001
            shapes = {k: tuple(v.shape) for k, v in feeds.items()}
            raise EdgeVisionError(f"ONNX Runtime failed on inputs {shapes}: {str(exc).strip()[:300]}") from exc
        return dict(zip(self.output_names, outs))

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "providers": list(self.providers),
            "inputs": {i.name: [i.type, i.shape] for i in self.session.get_inputs()},
            "outputs": {o.name: [o.type, o.shape] for o in self.session.get_outputs()},
        }

    def close(self) -> None:
        self.session = None
