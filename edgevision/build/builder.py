"""The TensorRT calls of a build: parse the ONNX, configure, build a serialized plan.

Thin on purpose: every decision arrives already made (PrecisionPlan, ShapeProfiles,
DLA core) and is only applied here. Written against TensorRT 10's API (type-checked
with its stubs) and run unchanged with tensorrt 8.5-11 and tensorrt_rtx; where a
feature is missing (IProgressMonitor before 10, timing cache in RTX) it is skipped.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..backends.tensorrt.logger import LogRecord, make_logger
from ..backends.tensorrt.spec import ShapeProfile
from ..errors import EdgeVisionError
from .dla import DlaReport, LayerPlacement, summarize
from .precision import PrecisionPlan
from .progress import BuildProgress
from .progress_monitor import make_progress_monitor

if TYPE_CHECKING:
    import tensorrt as trt


@dataclass
class BuildRequest:
    """workspace_mb: cap on TensorRT's scratch memory (None: TensorRT's default, all of it).
    timing_cache: file to load and update (None: no persistent cache)."""

    onnx_path: Path
    plan: PrecisionPlan
    profiles: tuple[ShapeProfile, ...]
    workspace_mb: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = True
    timing_cache: Path | None = None
    progress: BuildProgress | None = None
    verbose: bool = False


@dataclass
class BuildOutput:
    """plan: the serialized engine. inputs / outputs: name -> shape as TensorRT parsed them (-1 dynamic)."""

    plan: bytes
    layers: int
    seconds: float
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    dla: DlaReport | None = None
    notes: list[str] = field(default_factory=list)


def parse_errors(parser: trt.OnnxParser, path: Path) -> str:
    """One line per parser error: the ONNX node, its operator, and what TensorRT said."""
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        desc = e.desc().strip().splitlines()[-1][:300]
        # node_name / node_operator arrived in TensorRT 10; 8.x gives the node index only.
        name = e.node_name() if hasattr(e, "node_name") else ""
        op = e.node_operator() if hasattr(e, "node_operator") else ""
        lines.append(f"node #{e.node()} {name or '(unnamed)'} ({op or '?'}): {desc}")
    return f"TensorRT cannot parse {path.name}:\n  " + "\n  ".join(lines or ["(no parser error recorded)"])


def blame_layers(network: trt.INetworkDefinition, errors: list[str]) -> list[str]:
    """Layers whose names appear in the build errors, with their TensorRT layer type."""
    text = "\n".join(errors)
    hits = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        # Whole names only: layer "nms" must not match inside "nms_63".
        if layer.name and re.search(rf"(?<![\w./]){re.escape(layer.name)}(?![\w./])", text):
            hits.append(f"{layer.name} ({str(layer.type).split('.')[-1]})")
    return hits[:5]


def _probe_dla(config: trt.IBuilderConfig, network: trt.INetworkDefinition, core: int) -> DlaReport:
    placements = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        placements.append(LayerPlacement(i, layer.name, str(layer.type).split(".")[-1], config.can_run_on_DLA(layer)))
    return summarize(core, placements)


def _load_timing_cache(config: trt.IBuilderConfig, path: Path, notes: list[str]) -> trt.ITimingCache:
    blob = path.read_bytes() if path.is_file() else b""
    # A damaged blob may give None rather than raise; the stubs omit the None.
    loaded: trt.ITimingCache | None = config.create_timing_cache(blob)
    cache = loaded if loaded is not None else config.create_timing_cache(b"")
    if loaded is None or not config.set_timing_cache(cache, False):
        notes.append(f"timing cache {path} does not match this TensorRT/GPU; starting a fresh one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    elif blob:
        notes.append(f"timing cache: reused {path} ({len(blob)} bytes)")
    return cache


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    data = memoryview(config.get_timing_cache().serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _shape(dims: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def build_serialized(trt_module: ModuleType, req: BuildRequest) -> BuildOutput:
    """Parse + build; raises EdgeVisionError naming the node or layer that failed."""
    if TYPE_CHECKING:
        import tensorrt as trt
    else:
        trt = trt_module
    is_rtx = trt_module.__name__.startswith("tensorrt_rtx")
    started = time.monotonic()
    notes: list[str] = []
    record = LogRecord()
    logger = make_logger(trt_module, record, req.verbose)
    builder = trt.Builder(logger)

    net_flags = 0
    for name in req.plan.network_flags:
        net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.__members__[name])
    network = builder.create_network(net_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(req.onnx_path)):
        raise EdgeVisionError(parse_errors(parser, req.onnx_path))

    config = builder.create_builder_config()
    for name in req.plan.builder_flags:
        config.set_flag(trt.BuilderFlag.__members__[name])
    if req.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    if req.profiles:
        profile = builder.create_optimization_profile()
        for p in req.profiles:
            profile.set_shape(p.name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max)))
        config.add_optimization_profile(profile)

    dla: DlaReport | None = None
    if req.dla_core is not None:
        if req.dla_core >= builder.num_DLA_cores:
            raise EdgeVisionError(
                f"--dla-core {req.dla_core}: this device has {builder.num_DLA_cores} DLA core(s) "
                "(DLA exists on Jetson AGX Orin, Orin NX and Xavier)"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = req.dla_core
        if req.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        dla = _probe_dla(config, network, req.dla_core)
        if dla.fallback and not req.gpu_fallback:
            raise EdgeVisionError(
                "\n".join([f"{len(dla.fallback)} layer(s) cannot run on DLA and --no-gpu-fallback forbids the GPU:",
                           *dla.lines()])
            )

    cache: trt.ITimingCache | None = None
    if req.timing_cache is not None:
        if is_rtx:
            notes.append("timing cache skipped: TensorRT-RTX has none (its kernels compile at run time)")
        else:
            cache = _load_timing_cache(config, req.timing_cache, notes)

    monitor = make_progress_monitor(trt_module, req.progress) if req.progress else None
    if monitor is not None:
        config.progress_monitor = monitor  # must outlive the build: `monitor` stays referenced below

    plan = _build_in_thread(builder, network, config, req.progress)
    # `monitor` stays referenced (a local) until this function returns, after `config` is done with it.
    if plan is None:
        if req.progress is not None and req.progress.cancelled:
            raise KeyboardInterrupt
        culprits = blame_layers(network, record.errors)
        where = f" (failing layer: {'; '.join(culprits)})" if culprits else ""
        errs = "\n  ".join(e.strip()[:400] for e in record.errors[-5:]) or "(TensorRT logged no error)"
        raise EdgeVisionError(f"TensorRT could not build {req.onnx_path.name}{where}:\n  {errs}")
    if cache is not None and req.timing_cache is not None:
        _save_timing_cache(config, req.timing_cache)

    inputs = {network.get_input(i).name: _shape(network.get_input(i).shape) for i in range(network.num_inputs)}
    outputs = {network.get_output(i).name: _shape(network.get_output(i).shape) for i in range(network.num_outputs)}
    return BuildOutput(
        bytes(memoryview(plan)), network.num_layers, time.monotonic() - started, inputs, outputs, dla, notes
    )


def _build_in_thread(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig, progress: BuildProgress | None
) -> trt.IHostMemory | None:
    """build_serialized_network in a worker thread (TensorRT releases the GIL), so this
    thread can print progress and turn Ctrl-C into a clean cancel via the monitor."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["plan"] = builder.build_serialized_network(network, config)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, name="tensorrt-build", daemon=True)
    started = time.monotonic()
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.25)
            if progress is not None:
                progress.tick()
    except KeyboardInterrupt:
        if progress is not None:
            progress.cancel()  # the monitor's step_complete now answers False: TensorRT stops
        # With a monitor TensorRT stops at its next step; without one (TensorRT < 10) it
        # cannot be stopped, so leave the daemon thread to die with the process.
        worker.join(timeout=30)
        raise
    if "error" in result:
        raise EdgeVisionError(f"TensorRT failed after {time.monotonic() - started:.1f} s: {result['error']}")
    plan: trt.IHostMemory | None = result.get("plan")
    return plan
