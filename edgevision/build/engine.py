"""`build_engine`: converted ONNX -> TensorRT engine + sidecar, rebuilt only when stale.

The order of work: read the graph (manifest, precision held, input shapes), find the
TensorRT and the GPU, decide the precision path and the profiles, compute the cache
key, skip if the existing engine has that key, else build and write plan + sidecar.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..backends.tensorrt.sidecar import BuildInfo, EngineSidecar, read_sidecar, sidecar_path, write_sidecar
from ..backends.tensorrt.spec import BuildSpec, changed_fields
from ..backends.tensorrt.target import DeviceTarget, Flavor, device_target, find_flavor
from ..device import GpuStatus, gpu_status
from ..errors import EdgeVisionError
from ..manifest import sha256_file
from .builder import BuildRequest, build_serialized
from .dla import DlaReport
from .nms_strip import strip_nms
from .onnx_graph import OnnxGraph, inspect_onnx
from .precision import plan_precision
from .profiles import BatchRange, derive_profiles
from .progress import BuildProgress
from .requirements import Need, head_needs, manifest_needs, op_needs, version_warnings
from .timing_cache import timing_cache_path


_log = logging.getLogger(__name__)


class BuildUnavailable(EdgeVisionError):
    """No TensorRT, or no GPU, here: the engine has to be built on the device."""

    def __init__(self, message: str, no_tensorrt: bool, no_gpu: bool) -> None:
        super().__init__(message)
        self.no_tensorrt = no_tensorrt
        self.no_gpu = no_gpu


@dataclass(frozen=True)
class BuildOptions:
    """precision: None builds what the graph holds (int8 with Q/DQ nodes, fp16 with float16 weights, else fp32).
    timing_cache: "auto" (one file per TensorRT version and GPU in the cache dir), a path, or None.
    target: "tensorrt" / "tensorrt_rtx" (None: whichever is installed, tensorrt first).
    check_only: parse and build in memory, write nothing, need no GPU (CI with TensorRT-RTX).
    for_tensorrt: the TensorRT version the graph's known needs are checked against (e.g. "10.3" for
    JetPack 6, from a machine that builds with another); None: the TensorRT building here.
    strict: refuse to build where that version has a known issue with the graph (default: warn).
    """

    precision: str | None = None
    batch: BatchRange = field(default_factory=BatchRange)
    workspace_mb: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = True
    timing_cache: str | None = "auto"
    target: str | None = None
    force: bool = False
    check_only: bool = False
    progress: bool = True
    verbose: bool = False
    for_tensorrt: str | None = None
    strict: bool = False


@dataclass
class BuildResult:
    """built: False when the existing engine was up to date. reason: why it was (re)built or skipped."""

    engine_path: Path | None
    sidecar: EngineSidecar | None
    built: bool
    reason: str
    layers: int = 0
    seconds: float = 0.0
    plan_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    dla: DlaReport | None = None
    network_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    network_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)


def default_engine_path(onnx_path: str | Path, precision: str, dla_core: int | None = None) -> Path:
    """`dir/model.onnx` -> `dir/model.fp16.engine` (`.dla0` added for DLA builds)."""
    onnx_path = Path(onnx_path)
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}{dla}.engine")


def why_stale(engine: Path, spec: BuildSpec) -> str | None:
    """None when `engine` was built from exactly `spec`; otherwise the reason to rebuild."""
    if not engine.is_file():
        return "no engine yet"
    if not sidecar_path(engine).is_file():
        return f"{engine.name} has no sidecar"
    try:
        old = read_sidecar(engine)
    except EdgeVisionError as exc:
        return f"its sidecar is unusable ({exc})"
    if engine.stat().st_size != old.build.plan_bytes or sha256_file(engine) != old.build.plan_sha256:
        return "the engine file does not match its sidecar"
    if old.build.key != spec.key():
        return "changed: " + "; ".join(changed_fields(old.build.spec, spec))
    return None


def _find_tensorrt(options: BuildOptions) -> tuple[Flavor, ModuleType, GpuStatus]:
    """The TensorRT and the GPU to build with, or BuildUnavailable saying what is missing."""
    gpu = gpu_status()
    try:
        flavor, module = find_flavor(options.target)
    except EdgeVisionError as exc:
        missing_gpu = "" if gpu.available else f" There is no GPU here either ({gpu.reason})."
        raise BuildUnavailable(f"{exc}.{missing_gpu}", True, not gpu.available) from exc
    # TensorRT tunes kernels on the GPU it builds for; TensorRT-RTX can build ahead of
    # time without one, but only when asked for by name (its engines suit RTX PCs only).
    aot = flavor.is_rtx and options.target == "tensorrt_rtx"
    if not gpu.available and not options.check_only and not aot:
        if flavor.is_rtx:
            installed = (f"Only {flavor.label} is installed: `--target tensorrt_rtx` builds an engine for RTX PCs "
                         "ahead of time without a GPU; a Jetson or desktop engine is built on that device.")
        else:
            installed = f"{flavor.label} is installed, but it tunes the engine on the GPU that will run it."
        raise BuildUnavailable(f"no GPU here ({gpu.reason}). {installed}", False, True)
    return flavor, module, gpu


def build_engine(
    onnx_path: str | Path,
    output: str | Path | None = None,
    options: BuildOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build (or reuse) the engine for a converted ONNX artifact. See BuildOptions.

    log: where the build's lines go (what it builds, the precision path, profiles, notes);
    default: this module's logger at INFO, which the `edgevision` command line shows."""
    options = options or BuildOptions()
    say = log or _log.info
    onnx_path = Path(onnx_path)
    graph = inspect_onnx(onnx_path)
    manifest = graph.require_manifest()
    variant = manifest.extra.get("precision", {})
    if isinstance(variant, dict) and variant.get("targets") and "tensorrt" not in variant["targets"]:
        sibling = onnx_path.name.replace(f".{variant.get('variant', '')}.", f".{manifest.precision}.")
        raise EdgeVisionError(
            f"{onnx_path.name} is the {variant.get('variant')} variant, made for {', '.join(variant['targets'])} only; "
            f"TensorRT cannot read it. Build the TensorRT graph from the same calibration instead: edgevision build {sibling}"
        )
    flavor, module, gpu = _find_tensorrt(options)

    precision = options.precision or graph.precision.name  # what the graph holds, Q/DQ or float16
    dla = options.dla_core is not None
    plan = plan_precision(precision, flavor.module, flavor.major, graph.precision, dla)
    profiles, profile_notes = derive_profiles(graph.inputs, options.batch, dla)
    target = device_target(flavor, gpu)
    flags = plan.network_flags + plan.builder_flags + (("GPU_FALLBACK",) if dla and options.gpu_fallback else ())
    spec = BuildSpec.for_target(
        target, onnx_sha256=graph.sha256, precision=precision, profiles=profiles, flags=flags,
        dla_core=options.dla_core, workspace_mb=options.workspace_mb,
    )
    engine = Path(output) if output else default_engine_path(onnx_path, precision, options.dla_core)
    reason = "check only: nothing is written" if options.check_only else "forced" if options.force else why_stale(engine, spec)
    if reason is None:
        return BuildResult(engine, read_sidecar(engine), False, f"{engine} is up to date (key {spec.key()[:12]})")

    if graph.nms_ops and flavor.is_rtx and not options.check_only:
        raise EdgeVisionError(_nms_message(graph))
    version_warns, version_notes = _version_check(graph, precision, flavor, options)  # before the long build
    notes = [*plan.notes, *profile_notes, *version_notes]
    gpu_text = f"{gpu.name} ({target.sm})" if gpu.available else "no GPU (ahead-of-time build)"
    say(f"building {engine.name if not options.check_only else onnx_path.name} with {flavor.label} on {gpu_text}: {reason}")
    for w in version_warns:
        say(f"  warning   {w}")
    say(f"  precision {plan.describe()}")
    for p in profiles:
        say(f"  profile   {p.describe()}")
    for n in notes:
        say(f"  note      {n}")
    notes += version_warns  # kept in the sidecar's notes too

    with tempfile.TemporaryDirectory(prefix="edgevision-build-") as tmp:
        source = onnx_path
        if graph.nms_ops and flavor.is_rtx:
            stripped = strip_nms(onnx_path, Path(tmp) / onnx_path.name)
            source = stripped.path
            notes.append(stripped.describe())
            say(f"  note      {stripped.describe()}")
        request = BuildRequest(
            source, plan, profiles, options.workspace_mb, options.dla_core, options.gpu_fallback,
            _timing_cache(options, target), BuildProgress() if options.progress else None, options.verbose,
        )
        out = build_serialized(module, request)
    notes += out.notes
    if out.dla is not None:
        for line in out.dla.lines():
            say(f"  {line}")
    summary = f"{out.layers} layers, {len(out.plan) / 1e6:.1f} MB plan, {out.seconds:.1f} s"
    if request.progress is not None:
        request.progress.finish(f"built: {summary}")
    io = {"network_inputs": out.inputs, "network_outputs": out.outputs}
    if options.check_only:
        return BuildResult(None, None, True, reason, out.layers, out.seconds, len(out.plan), notes, out.dla, **io)

    engine.parent.mkdir(parents=True, exist_ok=True)
    partial = engine.with_name(engine.name + ".partial")
    partial.write_bytes(out.plan)
    os.replace(partial, engine)
    from .. import __version__

    info = BuildInfo(
        spec, onnx_path.name, hashlib.sha256(out.plan).hexdigest(), len(out.plan), out.layers, out.seconds,
        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), __version__, tuple(notes),
    )
    sidecar = EngineSidecar(manifest.replace(precision=precision), info)
    write_sidecar(engine, sidecar)
    return BuildResult(engine, sidecar, True, reason, out.layers, out.seconds, len(out.plan), notes, out.dla, **io)


def graph_needs(graph: OnnxGraph, precision: str) -> list[Need]:
    """The TensorRT versions `graph` is known to need (requirements.py): its manifest's record, its
    head's (for artifacts converted before the manifest carried them), its ops'."""
    extra = graph.manifest.extra if graph.manifest is not None else {}
    made = manifest_needs(extra) + manifest_needs({"min_tensorrt": head_needs(extra.get("head"), precision)})
    needs = {n.what: n for n in made}
    return list(needs.values()) + op_needs(graph.op_counts)


def _version_check(graph: OnnxGraph, precision: str, flavor: Flavor,
                   options: BuildOptions) -> tuple[list[str], list[str]]:
    """(warnings, notes). Warnings: the needs the TensorRT version does not meet (EdgeVisionError
    instead with options.strict). TensorRT-RTX numbers its releases apart from TensorRT (1.x): its
    version is not compared; the needs become notes for the device build, unless options.for_tensorrt
    names a version to check."""
    needs = graph_needs(graph, precision)
    if not needs:
        return [], []
    if options.for_tensorrt:
        warnings = version_warnings(options.for_tensorrt, needs, "the target's TensorRT")
    elif flavor.is_rtx:
        return [], [f"{n.what}: on a device, build with TensorRT " + (f">= {n.needs}" if n.needs else
                    f"< {n.broken_from}") + " (JetPack 6 has 10.3; check with --for-tensorrt VERSION)" for n in needs]
    else:
        warnings = version_warnings(flavor.version, needs, flavor.label.rsplit(" ", 1)[0])
    if warnings and options.strict:
        raise EdgeVisionError(f"not building {graph.path.name} (--strict): " + " ".join(warnings))
    return warnings, []


def _timing_cache(options: BuildOptions, target: DeviceTarget) -> Path | None:
    if options.timing_cache is None:
        return None
    if options.timing_cache == "auto":
        return timing_cache_path(target)
    return Path(options.timing_cache)


def _nms_message(graph: OnnxGraph) -> str:
    return (
        f"{graph.path.name} ends in {', '.join(graph.nms_ops)}, which TensorRT-RTX cannot build. "
        "edgevision convert puts NMS in the graph as TopK/Gather/MatMul instead: convert the checkpoint with it"
    )
