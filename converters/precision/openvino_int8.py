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

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.manifest import Manifest

from .nncf_engine import nncf_inputs
from .quiet import quiet_logging

_log = logging.getLogger(__name__)


def quantize_openvino(
    fp32_path: str | Path, manifest: Manifest, calib: Sequence[np.ndarray], out_xml: str | Path,
    keep_float: Iterable[str], log: Callable[[str], None] = _log.info,
) -> Path:
    """Quantize fp32_path (ONNX) with NNCF's OpenVINO backend on `calib` frames (uint8[H, W, 3] BGR),
    the named ONNX nodes left float, 8-bit weights; write the IR to out_xml (+ .bin). Returns out_xml."""
    ov = lazy_import("openvino")
    nncf = lazy_import("nncf")
    from openvino._offline_transformations import apply_moc_transformations  # type: ignore[import-untyped]

    t0 = time.perf_counter()
    model = ov.Core().read_model(str(fp32_path))
    apply_moc_transformations(model, cf=False)  # Sigmoid * Mul -> Swish (see the module docstring)
    run = nncf_inputs(fp32_path, manifest, calib, [i.get_any_name() for i in model.inputs],
                      {op.get_friendly_name() for op in model.get_ordered_ops()}, keep_float)
    log(f"NNCF mixed (OpenVINO backend) on {len(run.feeds)} frames, {len(run.ignored)} operations float")
    with quiet_logging():  # NNCF logs every ignored node
        quantized = nncf.quantize(model, nncf.Dataset(run.feeds), preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(run.feeds), ignored_scope=run.ignored_scope())
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    log(f"OpenVINO INT8 IR written in {time.perf_counter() - t0:.0f} s: {Path(out_xml).name}")
    return Path(out_xml)
