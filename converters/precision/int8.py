"""INT8: calibrate once, decide which layers stay float, write the TensorRT and the CPU graphs."""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .budget import Budget
from .calibration import Ranges, collect_ranges_multi, float_tensors
from .cpu_int8 import build_cpu_int8
from .evaluate import prepare
from .qdq import insert_qdq
from .regions import Regions, find_regions
from .sensitivity import GatedRunner, Protection, protect


@dataclass
class Int8Options:
    """keep_float: "auto" (measure, protect the worst groups), "none", or regexes of layer names.
    percentile / cpu_percentile: of |x| per tensor, the activation clipping point of the TensorRT
    graph / the CPU twin. Measured on vtest's held-out frames (64 calibration frames): TensorRT's
    placement (int8 only at conv inputs) lost score at 99.99 (mean matched score -0.039, recall
    0.950) and kept it at 99.999 (-0.006, F1 0.971); the CPU twin, which also quantizes conv
    outputs and SiLU, gained score at 99.999 (precision 0.955) and balanced at 99.99 (F1 0.972).
    tune_frames: calibration frames
    the protection search scores on. max_fraction: most layers protection may keep float."""

    keep_float: str = "auto"
    percentile: float = 99.999
    cpu_percentile: float = 99.99
    tune_frames: int = 12
    margin: float = 0.01
    max_fraction: float = 0.5
    cpu_variant: bool = True


@dataclass
class Int8Build:
    """What build_int8 wrote. kept_float: layer names left in FP32 (besides the float region)."""

    trt_path: Path
    cpu_path: Path | None
    regions: Regions
    ranges: Ranges
    kept_float: list[str]
    protection: Protection | None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_ranges: Ranges | None = None

    def layer_summary(self) -> dict[str, Any]:
        return {
            "quantized_layers": len(self.regions.layers) - len(self.kept_float),
            "layers": len(self.regions.layers),
            "kept_float": self.kept_float,
            "float_region_nodes": len(self.regions.float_nodes),
        }


def evenly(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    if n >= len(frames):
        return list(frames)
    return [frames[int(k * len(frames) / n)] for k in range(n)]


def build_int8(
    fp32_path: Path, manifest: Manifest, calib: Sequence[np.ndarray], trt_path: Path, cpu_path: Path | None,
    budget: Budget, opts: Int8Options, log: Callable[[str], None] = print,
) -> Int8Build:
    """Calibrate on `calib` frames, protect sensitive layers, write trt_path (and cpu_path)."""
    onnx = lazy_import("onnx")
    model = onnx.load(str(fp32_path))
    regions = find_regions(model, manifest.family, manifest.extra)
    if not regions.layers:
        raise EdgeVisionError(f"{fp32_path}: found no Conv / MatMul layers to quantize")
    t0 = time.perf_counter()
    tensors = float_tensors(model, regions.network_nodes)
    log(f"calibrating {len(tensors)} tensors on {len(calib)} frames (percentiles {opts.percentile}, "
        f"{opts.cpu_percentile} of |x|)")
    by_pct = collect_ranges_multi(fp32_path, manifest, tensors, calib, (opts.percentile, opts.cpu_percentile))
    ranges, cpu_ranges = by_pct[opts.percentile], by_pct[opts.cpu_percentile]
    seconds = {"calibration": time.perf_counter() - t0}

    t0 = time.perf_counter()
    protection = None
    mode = opts.keep_float.strip()
    if mode == "auto":
        tune = prepare(fp32_path, evenly(calib, opts.tune_frames))
        protection = protect(model, regions, ranges, manifest, tune, budget, opts.margin, opts.max_fraction, log)
        kept = [name for g in protection.protected for name in regions.groups[g]]
    elif mode in ("none", ""):
        kept = []
    else:
        patterns = [re.compile(p) for p in mode.split(",") if p]
        kept = [layer.name for layer in regions.layers if any(p.search(layer.name) for p in patterns)]
        if not kept:
            names = ", ".join(sorted(regions.groups)[:6])
            raise EdgeVisionError(f"--keep-float {mode!r} matches no layer (layer groups: {names}, ...)")
    seconds["protection"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    quantized = [layer for layer in regions.layers if layer.name not in set(kept)]
    qdq, skipped = insert_qdq(model, quantized, ranges)
    if skipped:
        kept += skipped  # no range measured: left float rather than guessed
    onnx.save(qdq, str(trt_path))
    if cpu_path is not None:
        build_cpu_int8(fp32_path, cpu_path, cpu_ranges, regions.float_nodes | set(kept))
    seconds["graphs"] = time.perf_counter() - t0
    return Int8Build(trt_path, cpu_path, regions, ranges, kept, protection, seconds, cpu_ranges)


def explain(
    fp32_path: Path, manifest: Manifest, build: Int8Build, frames: Sequence[np.ndarray], top: int = 5,
) -> list[tuple[str, float]]:
    """The layer groups that hurt most, measured one at a time (reuses the protection search's
    measurement when it ran; otherwise measures now on `frames`)."""
    from .evaluate import soft_loss

    p = build.protection
    if p is not None and p.group_loss:
        return p.worst(top)
    onnx = lazy_import("onnx")
    model = onnx.load(str(fp32_path))
    quantized = [layer for layer in build.regions.layers if layer.name not in set(build.kept_float)]
    if not quantized:
        return []
    runner = GatedRunner(model, quantized, build.ranges, manifest)
    tune = prepare(fp32_path, frames)
    ref = runner.run(tune, set())
    losses = {g: soft_loss(runner.run(tune, {g}), ref, manifest.conf_threshold) for g in runner.groups}
    return sorted(losses.items(), key=lambda kv: -kv[1])[:top]
