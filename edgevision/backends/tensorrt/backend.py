"""TensorRT backend: a serialized engine run through the v3 (tensor-name) API.

Same contract as the ONNX Runtime backend: {input name: array} in, {output name: array}
out, plus the manifest (from the engine's JSON sidecar). Per instance: one execution
context, one CUDA stream, device and pinned host buffers allocated once for the
profile's largest shapes, and a CUDA graph per input shape after its first run.
Instances of the same engine file share one deserialized ICudaEngine (its weights), so
one model per camera costs a context and activations, not another copy of the weights.

Before TensorRT is touched: no GPU -> a sentence saying so; an engine built for another
TensorRT version or GPU -> a sentence saying which (never a deserialization crash).
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...cuda import CudaError, CudaGraph, DeviceBuffer, PinnedBuffer, Stream
from ...cuda.device import DeviceInfo, set_current, use_device
from ...device import gpu_status
from ...errors import EdgeVisionError, GpuPreprocessUnavailable
from ...kernels.gpu_letterbox import GpuLetterbox, supports
from ...manifest import IN_IMAGES, Manifest
from ...preprocess import Letterbox
from ..base import Backend
from .compat import check_compatible
from .io_specs import TensorSpec, check_feeds, check_shape, numpy_dtype
from .logger import LogRecord, make_logger
from .sidecar import EngineSidecar, read_sidecar
from .target import DeviceTarget, find_flavor

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # CUDA graphs kept per instance (one per distinct input shape)
# (input shapes, inputs the GPU fills itself): one CUDA graph per distinct key
_GraphKey = tuple[tuple[tuple[str, tuple[int, ...]], ...], frozenset[str]]


@dataclass
class _Shared:
    """One deserialized engine and the runtime that owns it, shared by instances."""

    key: tuple[str, int, int, int]
    runtime: trt.Runtime
    engine: trt.ICudaEngine
    logger: Any
    record: LogRecord
    users: int = 0


class _EngineRegistry:
    """Engines by (real path, device, size, mtime): a rebuilt file gets a fresh engine."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _engines: ClassVar[dict[tuple[str, int, int, int], _Shared]] = {}

    @classmethod
    def acquire(cls, path: Path, device: int, trt_module: ModuleType, verbose: bool, plan_sha256: str) -> _Shared:
        """The shared engine of `path`, deserialized on first use only after its bytes match
        the sidecar's checksum (read and hashed once per engine, not once per instance)."""
        if TYPE_CHECKING:
            import tensorrt as trt
        else:
            trt = trt_module
        st = path.stat()
        key = (str(path.resolve()), device, st.st_size, st.st_mtime_ns)
        with cls._lock:
            shared = cls._engines.get(key)
            if shared is None:
                record = LogRecord()
                logger = make_logger(trt_module, record, verbose)
                blob = path.read_bytes()
                if hashlib.sha256(blob).hexdigest() != plan_sha256:
                    raise EdgeVisionError(
                        f"{path.name} does not match its sidecar (plan checksum differs): the file was replaced or "
                        "damaged. Rebuild it with edgevision build"
                    )
                runtime = trt.Runtime(logger)
                # None (and a logged error) on a plan TensorRT rejects; the stubs omit the None.
                engine: trt.ICudaEngine | None = runtime.deserialize_cuda_engine(blob)
                if engine is None:
                    errs = "; ".join(e.strip()[:300] for e in record.errors[-3:]) or "no error logged"
                    raise EdgeVisionError(f"TensorRT could not load {path.name}: {errs}")
                shared = cls._engines[key] = _Shared(key, runtime, engine, logger, record)
            shared.users += 1
            return shared

    @classmethod
    def release(cls, shared: _Shared) -> None:
        with cls._lock:
            shared.users -= 1
            if shared.users <= 0:
                cls._engines.pop(shared.key, None)


def _dims(d: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in d)


class TensorRTBackend(Backend):
    """A TensorRT engine file (with its `<engine>.json` sidecar) on an NVIDIA GPU.

    device: CUDA device index. cuda_graphs: capture a CUDA graph per input shape after its
    first run and replay it (False: always enqueue). Not thread-safe per instance (calls are
    serialised by a lock): give each camera thread its own instance; they share the engine.
    """

    name = "tensorrt"
    # One execution context runs one inference at a time (calls are serialised by a lock);
    # for concurrency, open one instance per thread: they share the engine's weights.
    thread_safe = False
    takes_gpu_frames = True  # infer_frames: letterbox, colour order and scaling on the GPU

    def __init__(self, path: str | Path, device: int = 0, cuda_graphs: bool = True, verbose: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() == ".onnx":
            raise EdgeVisionError(
                f"the tensorrt backend runs engines, and {self.path.name} is ONNX; build an engine on this device: "
                f"edgevision build {self.path}"
            )
        self.sidecar: EngineSidecar = read_sidecar(self.path)
        self.manifest = self.sidecar.manifest
        spec = self.sidecar.build.spec
        status = gpu_status()
        if not status.available:
            raise EdgeVisionError(
                f"{self.path.name} is a TensorRT engine and needs an NVIDIA GPU, but there is none here "
                f"({status.reason}). Run its ONNX artifact ({self.sidecar.build.onnx_file}) with the onnxruntime backend instead"
            )
        self.flavor, trt_module = find_flavor(spec.trt_module)
        self.device: DeviceInfo = use_device(device)
        self._check_plan(trt_module)
        self._shared = _EngineRegistry.acquire(self.path, device, trt_module, verbose, self.sidecar.build.plan_sha256)
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._setup(trt_module, cuda_graphs)
        except BaseException:
            _EngineRegistry.release(self._shared)
            raise

    # -- load-time checks --------------------------------------------------------------
    def _check_plan(self, trt_module: ModuleType) -> None:
        """Refuse, in words, an engine that is not the one its sidecar describes or not for this device."""
        if TYPE_CHECKING:
            import tensorrt as trt
        else:
            trt = trt_module
        build = self.sidecar.build
        # Size here; the checksum where the bytes are read for deserializing (_EngineRegistry).
        if self.path.stat().st_size != build.plan_bytes:
            raise EdgeVisionError(
                f"{self.path.name} does not match its sidecar (plan size differs): the file was replaced or "
                f"damaged. Rebuild it: edgevision build {build.onnx_file}"
            )
        dla_cores = 0
        if build.spec.dla_core is not None:
            record = LogRecord()
            dla_cores = trt.Runtime(make_logger(trt_module, record)).num_DLA_cores
        here = DeviceTarget(self.flavor, self.device.name, self.device.compute_capability, dla_cores)
        verdict = check_compatible(build.spec, here)
        if not verdict.ok:
            raise EdgeVisionError(
                f"{self.path.name} cannot run here. {verdict.message()} Rebuild it on this device: "
                f"edgevision build {build.onnx_file} --precision {build.spec.precision}"
            )
        for w in verdict.warnings:
            log.warning("%s: %s", self.path.name, w)

    # -- buffers, context, stream ----------------------------------------------------------
    def _setup(self, trt_module: ModuleType, cuda_graphs: bool) -> None:
        if TYPE_CHECKING:
            import tensorrt as trt
        else:
            trt = trt_module
        engine = self._shared.engine
        context: trt.IExecutionContext | None = engine.create_execution_context()
        if context is None:
            raise EdgeVisionError(f"TensorRT could not create an execution context for {self.path.name} (out of GPU memory?)")
        self.context: trt.IExecutionContext = context
        specs: list[TensorSpec] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = _dims(engine.get_tensor_shape(name))
            lo, hi = shape, shape
            if is_input and -1 in shape:
                lo, _opt, hi = (_dims(d) for d in engine.get_tensor_profile_shape(name, 0))
            dtype = numpy_dtype(engine.get_tensor_dtype(name).name, name)
            specs.append(TensorSpec(name, is_input, dtype, shape, lo, hi))
        # Output sizes at the largest inputs: set those shapes, then ask the context.
        for s in specs:
            if s.is_input and not self.context.set_input_shape(s.name, s.max_shape):
                raise EdgeVisionError(f"TensorRT rejected the profile's max shape {s.max_shape} for {s.name!r}")
        resolved = []
        for s in specs:
            if not s.is_input:
                out_shape = _dims(self.context.get_tensor_shape(s.name))
                if any(d < 0 for d in out_shape):
                    raise EdgeVisionError(
                        f"output {s.name!r} has a data-dependent shape {out_shape} (an NMS or NonZero layer?); "
                        "edgevision engines need fixed-size outputs: convert with edgevision convert"
                    )
                s = TensorSpec(s.name, False, s.dtype, s.shape, out_shape, out_shape)
            resolved.append(s)
        self.specs: tuple[TensorSpec, ...] = tuple(resolved)
        self.inputs = tuple(s.as_input() for s in self.specs if s.is_input)
        self.output_names = tuple(s.name for s in self.specs if not s.is_input)
        self.stream = Stream()
        self._device_buf: dict[str, DeviceBuffer] = {}
        self._host_buf: dict[str, PinnedBuffer] = {}
        for s in self.specs:
            self._device_buf[s.name] = DeviceBuffer(s.max_nbytes)
            self._host_buf[s.name] = PinnedBuffer(s.max_nbytes)
            # Addresses never change, so they are bound once (and stay valid inside CUDA graphs).
            if not self.context.set_tensor_address(s.name, self._device_buf[s.name].ptr):
                raise EdgeVisionError(f"TensorRT rejected the device buffer of {s.name!r}")
        self._spec = {s.name: s for s in self.specs}
        self._bound: tuple[tuple[str, tuple[int, ...]], ...] = ()
        self._out_shapes: dict[str, tuple[int, ...]] = {}
        self.cuda_graphs = cuda_graphs
        self.graph_note = ""
        self._graphs: dict[_GraphKey, CudaGraph] = {}
        self._last_key: _GraphKey | None = None
        self._letterbox: GpuLetterbox | None = None  # compiled on the first infer_frames()
        self._gpu_pre_note = ""  # why frames cannot be letterboxed on the GPU, once known

    # -- inference -----------------------------------------------------------------------
    def _bind_shapes(self, shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        key = tuple(sorted(shapes.items()))
        if key != self._bound:
            for name, shape in shapes.items():
                if not self.context.set_input_shape(name, shape):
                    raise EdgeVisionError(f"TensorRT rejected shape {shape} for input {name!r}")
            self._out_shapes = {n: _dims(self.context.get_tensor_shape(n)) for n in self.output_names}
            self._bound = key
        return key

    def _enqueue(self, stream: Stream, shapes: dict[str, tuple[int, ...]], on_device: frozenset[str] = frozenset()) -> None:
        """Copies in (except inputs already on the device), the engine, copies out: all queued
        on `stream` (or captured into a graph)."""
        for name, shape in shapes.items():
            if name not in on_device:
                stream.copy_to_device(self._device_buf[name], self._host_buf[name], self._spec[name].nbytes(shape))
        if not self.context.execute_async_v3(stream.handle):
            errs = "; ".join(e.strip()[:200] for e in self._shared.record.errors[-3:])
            raise EdgeVisionError(f"TensorRT execution failed on {self.path.name}: {errs or 'no error logged'}")
        for name in self.output_names:
            stream.copy_to_host(self._host_buf[name], self._device_buf[name], self._spec[name].nbytes(self._out_shapes[name]))

    def validate(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds checked against the profile: a batch above the engine's max names --max-batch."""
        return check_feeds(self.specs, feeds)

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{input: array} -> {output: array} (new arrays; the pinned buffers are reused)."""
        return self._run(feeds, {}, None)

    def infer_frames(
        self, frames: Sequence[np.ndarray], feeds: dict[str, np.ndarray], manifest: Manifest
    ) -> tuple[dict[str, np.ndarray], list[Letterbox]]:
        """uint8 BGR frames -> outputs, with the letterbox, colour order and scaling done on the
        GPU (kernels/letterbox.cu) straight into the input buffer. feeds: the other inputs.
        Raises GpuPreprocessUnavailable (before queuing anything) where the kernel cannot serve."""
        if self._gpu_pre_note:
            raise GpuPreprocessUnavailable(self._gpu_pre_note)
        spec = self._spec[IN_IMAGES]
        self._gpu_pre_note = supports(manifest.preprocess, spec.dtype)
        if self._gpu_pre_note:
            raise GpuPreprocessUnavailable(self._gpu_pre_note)
        shape = (len(frames), 3, *manifest.input_hw)
        check_shape(spec, shape)
        arrays = check_feeds([s for s in self.specs if s.name != IN_IMAGES], feeds)
        geos: list[Letterbox] = []

        def upload(stream: Stream) -> None:
            if self._letterbox is None:
                try:
                    self._letterbox = GpuLetterbox(self.device.compute_capability)
                except EdgeVisionError as exc:
                    self._gpu_pre_note = f"GPU letterbox unavailable: {exc}"
                    raise GpuPreprocessUnavailable(self._gpu_pre_note) from exc
            base, plane = self._device_buf[IN_IMAGES].ptr, spec.dtype.itemsize * 3 * manifest.input_hw[0] * manifest.input_hw[1]
            geos.extend(
                self._letterbox.enqueue(f, i, base + i * plane, manifest.input_hw, manifest.preprocess, stream)
                for i, f in enumerate(frames)
            )

        return self._run(arrays, {IN_IMAGES: shape}, upload), geos

    def _run(
        self, arrays: dict[str, np.ndarray], on_device: dict[str, tuple[int, ...]], before: Callable[[Stream], None] | None
    ) -> dict[str, np.ndarray]:
        """Host inputs -> pinned buffers; `before` queues work that fills the on-device inputs;
        then the engine (plain, or a captured CUDA graph of it) and the copies back."""
        with self._lock:
            if self._closed:
                raise EdgeVisionError(f"the TensorRT backend for {self.path.name} is closed")
            # Every call: pipeline threads start with no current context (the driver API, used
            # by the letterbox kernel, needs one) or on another device.
            set_current(self.device.index)
            shapes = {n: tuple(int(d) for d in a.shape) for n, a in arrays.items()} | on_device
            for name, arr in arrays.items():
                np.copyto(self._host_buf[name].view(arr.dtype, arr.shape), arr)
            fed = frozenset(on_device)
            key = (self._bind_shapes(shapes), fed)
            # After an input-shape change TensorRT must run once plainly before a graph of the
            # new shape is captured or replayed, so graphs serve only repeats of the last key.
            repeat = key == self._last_key
            self._last_key = key
            try:
                if before is not None:
                    before(self.stream)  # kernels stay outside the graph: their arguments change per frame
                graph = self._graphs.get(key) if repeat else None
                if graph is None and repeat and self.cuda_graphs and len(self._graphs) < MAX_GRAPHS:
                    graph = self._capture(key, shapes, fed)
                if graph is not None:
                    graph.launch(self.stream)
                else:
                    self._enqueue(self.stream, shapes, fed)
            finally:
                self.stream.synchronize()  # nothing queued may still read the staging buffers
            return {
                n: self._host_buf[n].view(self._spec[n].dtype, self._out_shapes[n]).copy() for n in self.output_names
            }

    def _capture(self, key: _GraphKey, shapes: dict[str, tuple[int, ...]], fed: frozenset[str]) -> CudaGraph | None:
        try:
            graph = CudaGraph.capture(self.stream, lambda s: self._enqueue(s, shapes, fed))
        except (CudaError, EdgeVisionError) as exc:
            # Some engines cannot be captured (data-dependent control flow, plugins that sync).
            self.cuda_graphs = False
            self.graph_note = f"CUDA graphs off: capture failed ({exc})"
            log.warning("%s: %s", self.path.name, self.graph_note)
            return None
        self._graphs[key] = graph
        return graph

    # -- contract ------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        build = self.sidecar.build
        return {
            "backend": self.name,
            "engine": str(self.path),
            "tensorrt": self.flavor.label,
            "gpu": f"{self.device.name} (sm_{self.device.compute_capability[0]}{self.device.compute_capability[1]})",
            "precision": build.spec.precision,
            "dla_core": build.spec.dla_core,
            "profiles": [p.describe() for p in build.spec.profiles],
            "inputs": {s.name: [str(s.dtype), list(s.shape)] for s in self.specs if s.is_input},
            "outputs": {s.name: [str(s.dtype), list(s.shape)] for s in self.specs if not s.is_input},
            "cuda_graphs": {"enabled": self.cuda_graphs, "captured": len(self._graphs), "note": self.graph_note},
            "instances_sharing_engine": self._shared.users,
        }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for g in self._graphs.values():
                g.close()
            self._graphs.clear()
            self.stream.synchronize()  # before freeing anything queued work may touch
            if self._letterbox is not None:
                self._letterbox.close()
            del self.context  # before the engine it came from
            for dev in self._device_buf.values():
                dev.free()
            for host in self._host_buf.values():
                host.free()
            self.stream.close()
            _EngineRegistry.release(self._shared)

