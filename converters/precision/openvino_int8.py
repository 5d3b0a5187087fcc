"""The OpenVINO INT8 artifact (`--int8-engine nncf`, OpenVINO installed): <stem>.int8-ov.xml/.bin.

Why an OpenVINO IR beside the ONNX files, when every other artifact is plain ONNX: OpenVINO's
low-precision transformations miscompute our Q/DQ ONNX graphs (README: "An OpenVINO bug we route
around"; NNCF's own MIXED Q/DQ twin gave no detections at all with them on, measured on the AVX2
EPYC), so an ONNX twin runs on OpenVINO only with its INT8 emulated in float, slower than FP32.
NNCF's OpenVINO backend instead quantizes the model OpenVINO reads from our FP32 ONNX and writes
FakeQuantize ops that OpenVINO's kernels run right; the result is the one file that gets OpenVINO's
integer speed out of our graph (in-graph post-processing included). TensorRT and ONNX Runtime
keep their ONNX files (int8, int8-cpu).

Steps:
- read the FP32 ONNX with OpenVINO (its manifest comes along in rt_info, which the backend reads);
- OpenVINO's MOC fusions first, so SiLU's Sigmoid * Mul becomes one Swish: NNCF's pattern table
  knows Conv -> Swish as one unit. On the raw ONNX import it quantizes the Sigmoid outputs and the
  pre-activation sums too (318 FakeQuantize vs 123), which keeps OpenVINO from fusing them into
  the convolutions: the INT8 network then ran as slowly as FP32 (115.9 vs 110.4 ms, 2 threads,
  640x640, yolo11n-seg; with the fusions 73.6 ms, Ultralytics' NNCF IR 70.9 ms);
- NNCF MIXED (asymmetric activations, symmetric per-channel weights), fast bias correction, the
  same layers float as the other INT8 files (post-processing region, stem, final layers: OpenVINO
  keeps the ONNX node names as its operations' friendly names);
- 8-bit weights with NNCF's default overflow fix (half the range on the first quantized layer only,
  as Ultralytics' export has it), on every CPU. Measured on the AVX2 EPYC (no VNNI), calibrated on
  256 vtest frames, F1 / pooled AP50-95 vs FP32: Megamind 0.927 / 0.942, photos 0.917 / 0.914,
  vtest held out 0.973 / 0.978; with 7-bit weights everywhere (what ONNX Runtime's u8s8 kernels
  need there, cpu_int8.default_weight_bits) 0.856 / 0.872, 0.852 / 0.906, 0.968 / 0.977. So the
  ONNX Runtime rule does not carry over: OpenVINO's kernels run this file's 8-bit weights right.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import METADATA_KEY, Manifest

from .calibration import graph_feeds, preprocess_batches

_log = logging.getLogger(__name__)


def ir_files(xml: Path) -> tuple[Path, Path]:
    """An IR is two files: the graph (.xml) and its weights (.bin, same stem, found by OpenVINO by name)."""
    return xml, xml.with_suffix(".bin")


def quantize_openvino(
    fp32_path: str | Path, manifest: Manifest, calib: Sequence[np.ndarray], out_xml: str | Path,
    keep_float: Iterable[str], weight_bits: int, log: Callable[[str], None] = _log.info,
) -> Path:
    """Quantize fp32_path (ONNX) with NNCF's OpenVINO backend on `calib` frames (uint8[H, W, 3] BGR),
    the named ONNX nodes left float; write the IR to out_xml (+ .bin). Returns out_xml.
    weight_bits: 8 (NNCF's default, what the pipeline writes) or 7 (half range on every layer)."""
    if weight_bits not in (7, 8):
        raise EdgeVisionError(f"OpenVINO INT8 weight_bits must be 7 or 8, not {weight_bits}")
    ov = lazy_import("openvino")
    nncf = lazy_import("nncf")
    from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from openvino._offline_transformations import apply_moc_transformations  # type: ignore[import-untyped]

    t0 = time.perf_counter()
    model = ov.Core().read_model(str(fp32_path))
    apply_moc_transformations(model, cf=False)  # Sigmoid * Mul -> Swish (see the module docstring)
    inputs = [i.get_any_name() for i in model.inputs]
    feeds = [graph_feeds(manifest, x, inputs) for x in preprocess_batches(fp32_path, calib, batch=1)]
    if not feeds:
        raise EdgeVisionError(f"{fp32_path}: no calibration frames for NNCF")
    names = {op.get_friendly_name() for op in model.get_ordered_ops()}
    ignored = sorted(set(keep_float) & names)
    overflow = {"overflow_fix": OverflowFix.ENABLE} if weight_bits == 7 else {}
    log(f"NNCF mixed (OpenVINO backend) on {len(feeds)} frames, {weight_bits}-bit weights, {len(ignored)} operations float")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # NNCF logs every ignored node
    try:
        quantized = nncf.quantize(
            model, nncf.Dataset(feeds), preset=nncf.QuantizationPreset.MIXED, subset_size=len(feeds),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
            advanced_parameters=AdvancedQuantizationParameters(**overflow),
        )
    finally:
        logging.disable(previous)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    log(f"OpenVINO INT8 IR written in {time.perf_counter() - t0:.0f} s: {Path(out_xml).name}")
    return Path(out_xml)


def write_ir_manifest(xml: str | Path, manifest: Manifest) -> None:
    """Store `manifest` where OpenVINO keeps an ONNX file's metadata (rt_info["framework"]), which is
    where edgevision's OpenVINO backend reads it from: the IR carries it like the ONNX files do."""
    ov = lazy_import("openvino")
    model: Any = ov.Core().read_model(str(xml))
    model.set_rt_info(manifest.to_json(), ["framework", METADATA_KEY])
    tmp = Path(xml).with_name(Path(xml).stem + ".stamp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    for src, dst in zip(ir_files(tmp), ir_files(Path(xml))):
        src.replace(dst)


def move_ir(src: Path, dst: Path) -> None:
    """Rename an IR (both files)."""
    for a, b in zip(ir_files(src), ir_files(dst)):
        a.replace(b)


def remove_ir(xml: Path) -> None:
    for p in ir_files(xml):
        p.unlink(missing_ok=True)
