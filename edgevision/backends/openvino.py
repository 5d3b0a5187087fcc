"""OpenVINO backend: the same converted ONNX file on Intel CPUs (and Intel GPUs / NPUs).

Same contract as the other backends: {input name: array} in, {output name: array} out,
plus the manifest (read from the ONNX metadata OpenVINO keeps in the model's rt_info).

Precision is an accuracy decision, not a speed knob: OpenVINO's CPU plugin computes in
bf16 by default on AMX/AVX-512-BF16 CPUs, which moves detections. edgevision asks for f32
unless told otherwise (`precision="bf16"`), and `edgevision convert --precision ...` gates
bf16 against FP32 like any other precision. INT8 comes from the Q/DQ graph itself.

INT8 graphs: the CPU placement (`*.int8-cpu.onnx`) runs on OpenVINO's integer kernels. The
TensorRT placement (`*.int8.onnx`: symmetric int8 activations, Q/DQ on layer inputs only) is
miscomputed by OpenVINO 2026.4's low-precision transformations (no detections at all on
yolo11n-seg; reduced to Conv -> SiLU -> Concat -> Q/DQ -> Conv, 18% off a numpy emulation of
the graph while ONNX Runtime matches it), so for it those transformations are turned off and
the quantization is emulated in float: ONNX Runtime's numbers, at float speed.

Each batch size gets its own model compiled with a static shape (batch 1 at load time,
others on first use): OpenVINO's CPU plugin picks faster kernels and fewer layout reorders for
static shapes (yolo11n-seg, one thread: 49.9 -> 41.6 ms for the CPU INT8 file, 43.3 -> 40.9 ms at
bf16). Compiled models are cached on disk (CACHE_DIR), so a second start skips compilation.
"""
from __future__ import annotations

import os
import queue
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy import lazy_import
from ..device import restricted_threads, u8s8_saturates
from ..errors import EdgeVisionError, closest
from ..manifest import IN_IMAGES, METADATA_KEY, Manifest
from .base import Backend
from .feeds import InputSpec

log = logging.getLogger(__name__)

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}


def default_cache_dir() -> Path:
    """Where compiled models are cached: $EDGEVISION_CACHE/openvino, else ~/.cache/edgevision/openvino."""
    base = os.environ.get("EDGEVISION_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgevision")
    return Path(base) / "openvino"


def read_manifest(model: Any, path: Path) -> Manifest:
    """The edgevision manifest from an OpenVINO model read from ONNX (metadata_props land in
    rt_info["framework"])."""
    try:
        value = model.get_rt_info()["framework"][METADATA_KEY]
    except (KeyError, TypeError, RuntimeError, AttributeError):  # no metadata at all: rt_info has no "framework"
        raise EdgeVisionError(
            f"{path} has no edgevision manifest in its metadata: it was not made by `edgevision convert`; "
            "convert the source checkpoint: edgevision convert MODEL.pt"
        ) from None
    return Manifest.from_json(value.astype(str) if hasattr(value, "astype") else str(value))


def input_spec(port: Any) -> InputSpec:
    """An OpenVINO model input -> InputSpec, named as in the ONNX file (dynamic dimensions -1)."""
    try:
        dtype: np.dtype | None = np.dtype(port.get_element_type().to_dtype())
    except (RuntimeError, TypeError):  # a type numpy has no name for: not checked
        dtype = None
    dims = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else -1 for d in dims) if dims.rank.is_static else None
    return InputSpec(port.get_any_name(), dtype, shape)


def allows_int8_kernels(manifest: Manifest, device: str = "CPU") -> bool:
    """May OpenVINO run this artifact's Q/DQ on its integer kernels? Not the TensorRT placement,
    and not 8-bit weights of our ONNX files on x86 CPUs without VNNI, where those kernels saturate
    their sums (edgevision.device.u8s8_saturates): the quantization is then emulated in float,
    exactly. Always the OpenVINO IR (int8-ov): NNCF quantized it for these kernels, its overflow
    fix included, and it is gated on them (converters/precision/openvino_int8.py has the numbers)."""
    found = manifest.extra.get("precision")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    variant = meta.get("variant")
    if variant == "int8-ov":
        return True
    if device.split(".")[0] in ("CPU", "AUTO", "MULTI", "HETERO") and u8s8_saturates() and meta.get("weight_bits") != 7:
        return False  # 7-bit weights (built on such a CPU) fit the int16 sums: 255 * 64 * 2 < 32767
    return variant != "int8"


def compile_config(precision: str, threads: int | None, streams: int | None, low_precision: bool = True,
                   cpu: bool = True) -> dict[str, str]:
    """OpenVINO properties for one compiled model.

    threads: CPU threads per inference; streams: inferences that may run at once (one per
    pipeline worker; without threads OpenVINO splits the cores between them). Neither:
    OpenVINO's latency preset (one inference with every core). low_precision: False turns
    OpenVINO's INT8 transformations off (Q/DQ emulated in float). cpu: False leaves out the
    CPU plugin's own properties (threads, transformations) for other devices.
    """
    if precision not in PRECISIONS:
        raise EdgeVisionError(f"unknown OpenVINO precision {precision!r}{closest(precision, PRECISIONS)}; "
                              f"choose from f32, bf16, f16")
    config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}
    if threads or streams:
        n = max(1, streams or 1)
        config["NUM_STREAMS"] = str(n)
        if threads and cpu:
            config["INFERENCE_NUM_THREADS"] = str(threads * n)
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
        pinned = restricted_threads()
        if pinned and cpu:  # a process on fewer cores than the machine: one thread per core it may use
            config["INFERENCE_NUM_THREADS"] = str(pinned)
    if not low_precision and cpu:
        config["LP_TRANSFORMS_MODE"] = "NO"
    return config


class OpenVinoBackend(Backend):
    """A converted ONNX file (or the OpenVINO IR .xml that `convert --int8-engine nncf` writes)
    compiled by OpenVINO.

    device: "CPU" (default), "GPU", "NPU", "AUTO", ... as OpenVINO names them. precision:
    "f32" (default: the same numbers as FP32 elsewhere) or "bf16" / "f16" (faster where the
    hardware has them; gate them first). threads / streams: see compile_config. cache_dir:
    compiled-model cache (None: default_cache_dir(); "" turns caching off). int8_kernels:
    None decides per artifact (not for the TensorRT placement); True/False forces it.
    """

    name = "openvino"
    thread_safe = True  # callers borrow infer requests from a pool (one per stream)

    def __init__(self, path: str | Path, device: str = "CPU", precision: str = "f32", threads: int | None = None,
                 streams: int | None = None, cache_dir: str | Path | None = None,
                 int8_kernels: bool | None = None) -> None:
        ov = lazy_import("openvino")
        self.path = Path(path)
        if self.path.suffix.lower() in (".engine", ".plan"):
            raise EdgeVisionError(f"the openvino backend runs converted .onnx files; {self.path.name} is a TensorRT engine")
        core = ov.Core()
        devices = list(core.available_devices)  # several of a kind are listed as GPU.0, GPU.1
        kinds = {d.split(".")[0] for d in devices}
        if device.split(":")[0] not in {*devices, *kinds, "AUTO", "MULTI", "HETERO"}:
            raise EdgeVisionError(f"OpenVINO device {device!r} is not here{closest(device, devices)}; "
                                  f"available: {', '.join(devices) or 'none'}")
        cache = default_cache_dir() if cache_dir is None else (Path(cache_dir) if str(cache_dir) else None)
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache)})
            except (OSError, RuntimeError) as exc:  # the cache only saves start-up time: run without it
                log.warning("OpenVINO model cache off (%s: %s)", cache, exc)
                cache = None
        try:
            model = core.read_model(os.fspath(self.path))
            self.manifest = read_manifest(model, self.path)
            # None: decided by the artifact (see the module docstring); True/False forces it.
            self.int8_kernels = allows_int8_kernels(self.manifest, device) if int8_kernels is None else int8_kernels
            self.config = compile_config(precision, threads, streams, low_precision=self.int8_kernels,
                                         cpu=device.split(".")[0] == "CPU")
        except EdgeVisionError:
            raise
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with its own text
            raise EdgeVisionError(f"OpenVINO cannot load {self.path}: {str(exc).strip()[:500]}") from exc
        self.device = device
        self.precision = PRECISIONS[precision]
        self.cache_dir = cache
        # The ONNX names, as read: a compiled output may answer first to an internal tensor name.
        self.inputs = tuple(input_spec(i) for i in model.inputs)
        self.output_names = tuple(o.get_any_name() for o in model.outputs)
        self._core, self._model = core, model
        self._compiled: dict[int, Any] = {}
        self._pools: dict[int, queue.Queue[Any]] = {}
        self._pool_size = max(1, streams or 1)
        self._compile_lock = threading.Lock()
        self._closed = False
        self.compiled = self._compiled_for(1)  # at load time: a model OpenVINO cannot compile fails here

    def _compiled_for(self, batch: int) -> Any:
        """The model compiled for `batch` images (static shapes), compiled on first use."""
        compiled = self._compiled.get(batch)
        if compiled is None:
            with self._compile_lock:
                compiled = self._compiled.get(batch)
                if compiled is None:
                    model = self._model.clone()
                    dims = model.input(IN_IMAGES).get_partial_shape()
                    if dims.rank.is_static and dims[0].is_dynamic:
                        model.reshape({IN_IMAGES: [batch, *(int(str(d)) for d in list(dims)[1:])]})
                    try:
                        compiled = self._core.compile_model(model, self.device, self.config)
                    except Exception as exc:  # noqa: BLE001
                        raise EdgeVisionError(f"OpenVINO cannot compile {self.path.name} for batch {batch}: "
                                              f"{str(exc).strip()[:500]}") from exc
                    self._compiled[batch] = compiled
        return compiled

    def _requests(self, batch: int) -> queue.Queue[Any]:
        """The pool of infer requests for `batch`: one per stream, made once, up front; callers
        borrow one and give it back (OpenVINO's own pattern), never create them concurrently."""
        pool = self._pools.get(batch)
        if pool is None:
            compiled = self._compiled_for(batch)
            with self._compile_lock:
                pool = self._pools.get(batch)
                if pool is None:
                    pool = queue.Queue()
                    for _ in range(self._pool_size):
                        pool.put(compiled.create_infer_request())
                    self._pools[batch] = pool
        return pool

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise EdgeVisionError(f"the OpenVINO backend for {self.path.name} is closed")
        images = feeds.get(IN_IMAGES)
        pool = self._requests(int(images.shape[0]) if images is not None and images.ndim == 4 else 1)
        request = pool.get()
        try:
            return self._infer_on(request, feeds)
        finally:
            pool.put(request)

    def _infer_on(self, request: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            request.infer(feeds)
        except Exception as exc:  # noqa: BLE001
            shapes = {k: tuple(v.shape) for k, v in feeds.items()}
            raise EdgeVisionError(f"OpenVINO failed on inputs {shapes}: {str(exc).strip()[:300]}") from exc
        # Copies: the request's output tensors are overwritten by its next inference.
        return {name: np.array(request.get_tensor(name).data) for name in self.output_names}

    def _property(self, name: str) -> Any:
        """A compiled-model property, or None where the device does not report it (AUTO, MULTI)."""
        try:
            return self.compiled.get_property(name) if self.compiled is not None else None
        except RuntimeError:
            return None

    def describe(self) -> dict[str, object]:
        streams = self._property("NUM_STREAMS")
        return {
            "backend": self.name,
            "device": self.device,
            "execution_devices": list(self._property("EXECUTION_DEVICES") or []),
            "precision_hint": self.precision,
            "int8": ("integer kernels" if self.int8_kernels else "emulated in float (TensorRT placement)")
                    if self.manifest.precision == "int8" else None,
            "streams": int(streams) if streams is not None else None,
            "compiled_batches": sorted(self._compiled),
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "inputs": {n: [str(i.get_element_type()), str(i.get_partial_shape())]
                       for n, i in zip(self.input_names, self.compiled.inputs)},
            "outputs": {n: [str(o.get_element_type()), str(o.get_partial_shape())]
                        for n, o in zip(self.output_names, self.compiled.outputs)},
        }

    def close(self) -> None:
        self._closed = True
        self._pools.clear()
        self._compiled.clear()
        self.compiled = None
