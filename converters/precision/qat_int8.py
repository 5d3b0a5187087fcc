"""`--qat` inside the INT8 pipeline: after post-training INT8 decided the ranges and which layers
stay float, distil the PyTorch model with that exact placement (qat.py), export it, and write
the TensorRT Q/DQ graph and the CPU twin again from the fine-tuned weights. The FP32 artifact
and the gate's reference stay the original model."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .calibration import float_tensors
from .cpu_int8 import build_cpu_int8
from .int8 import Int8Build, Int8Options, calibrate, cpu_float_nodes, final_layers, write_trt_graph
from .qat import QatOptions, QatProgress, QatResult, qat_exportable, qat_ranges, run_qat
from .regions import find_regions


def qat_int8(
    model_path: Path, export_opts: Any, fp32: Path, manifest: Manifest, build: Int8Build, calib: Sequence[np.ndarray],
    opts: Int8Options, qopts: QatOptions, log: Callable[[str], None],
    progress: Callable[[QatProgress], None] | None = None,
) -> QatResult:
    """Fine-tune model_path against itself on `calib` with build's placement, then rewrite
    build.trt_path and build.cpu_path from the fine-tuned weights. The TensorRT graph uses the
    ranges the student was trained with (the calibration's, or the learned ones); the CPU twin's
    ranges (which also cover conv outputs and SiLUs) are measured again on the fine-tuned model."""
    onnx = lazy_import("onnx")
    from dataclasses import replace

    original = onnx.load(str(fp32))
    regions = build.regions
    kept = set(build.kept_float)
    nodes = {n.name: n for n in original.graph.node}
    # Activation x activation MatMuls are not torch modules: they stay without fake quantization.
    quantized = [la for la in regions.layers if la.name not in kept and la.weight is not None]
    inputs = {la.name: nodes[la.name].input[la.activations[0]] for la in quantized}
    final = final_layers(original, regions)
    ex = qat_exportable(Path(model_path), replace(export_opts, imgsz=tuple(manifest.input_hw)))
    qat_path = fp32.parent / f".{fp32.stem}.qat.onnx"
    try:
        qopts = replace(qopts, opset=export_opts.opset)  # the FP32 artifact's opset: same node names
        result = run_qat(ex, manifest, quantized, inputs, final, build.ranges, calib, qat_path, qopts, progress, log)
        tuned = onnx.load(str(qat_path))
        # The network's node names match the original's; the float post-processing may be laid
        # out differently (constants folded or not), so the regions are found again.
        tuned_regions = find_regions(tuned, manifest.family, manifest.extra)
        if [la.name for la in tuned_regions.layers] != [la.name for la in regions.layers]:
            raise EdgeVisionError("--qat: the fine-tuned model's ONNX export has other layers than the original")
        regions = tuned_regions
        ranges = qat_ranges(build.ranges, result.scales) if result.scales else build.ranges
        # build_int8 already kept float every layer without a range: one missing now is an error
        skipped = write_trt_graph(tuned, regions, build.kept_float, ranges, build.trt_path)
        if skipped:
            raise EdgeVisionError(f"--qat: no range for {skipped}")
        if build.cpu_path is not None:
            tensors = float_tensors(tuned, regions.network_nodes)
            _, cpu_ranges = calibrate(qat_path, manifest, tensors, calib, opts, log)
            build_cpu_int8(qat_path, build.cpu_path, cpu_ranges, cpu_float_nodes(regions, build.cpu_kept_float, tuned),
                           build.cpu_weight_bits, opts.cpu_ops)
    finally:
        qat_path.unlink(missing_ok=True)  # the FP32 artifact stays the original model
    return result
