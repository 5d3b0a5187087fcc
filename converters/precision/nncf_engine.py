"""NNCF's ONNX post-training quantization as an INT8 engine (`--int8-engine nncf`, extra `edgevision[nncf]`).

NNCF (Intel's Neural Network Compression Framework, Apache-2.0) is the quantizer behind
Ultralytics' OpenVINO INT8 export, the peer a CPU user picks. Here it quantizes our own FP32
graph, so the output stays one plain ONNX file with explicit Q/DQ and the in-graph
post-processing, judged by the same gate as any INT8 graph:
- the TensorRT graph: preset PERFORMANCE (symmetric activations and weights), activations
  forced signed (int8, zero point 0: TensorRT reads no uint8 Q/DQ), weights int8 per channel,
  bias float (NNCF's ONNX backend does not quantize it);
- the CPU twin: preset MIXED (asymmetric uint8 activations, symmetric int8 weights), what ONNX
  Runtime's x86 integer kernels want. Built on an x86 CPU without VNNI its weights use half the
  int8 range (NNCF's overflow fix on every Conv / ConvTranspose / MatMul, -64..63; depthwise
  convolutions keep the full range, NNCF's choice), so ONNX Runtime's fast u8 x s8 kernels sum them
  exactly (cpu_int8.default_weight_bits explains why); with 8-bit weights such a CPU runs the file on
  exact but slower u8u8 kernels. OpenVINO's INT8 transformations miscompute this Q/DQ graph (the
  gate rejects it there): openvino_int8.py writes the file for OpenVINO.
Both keep float what our own builder keeps float: the post-processing region (decode, NMS,
masks: regions.find_regions) and the layers the caller names (the stem and final layers).
NNCF places Q/DQ by its own hardware pattern table (inputs of Conv, MatMul, Add, Concat, ...,
with Conv + SiLU fused), and runs fast bias correction (per layer, a bias shift that undoes
the mean error quantization adds) and, on request, SmoothQuant.

Its statistics run the model in ONNX Runtime on the calibration frames, after the runtime's own
pre-processing (calibration.preprocess_batches), batch 1.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .calibration import graph_feeds, preprocess_batches
from .quiet import quiet_logging

_log = logging.getLogger(__name__)

PRESETS = ("performance", "mixed")


@dataclass
class NncfOptions:
    """preset: "performance" (symmetric: the TensorRT graph) or "mixed" (asymmetric activations: the
    CPU twin). fast_bias_correction: NNCF's default bias correction (False: its slower full one).
    smooth_quant: SmoothQuant alpha for MatMul layers (None: off; convolution-only graphs have none).
    signed_activations: force int8 activations (TensorRT needs them; MIXED's uint8 ones are ORT's).
    weight_bits: 8, or 7 (weights on half the int8 range: NNCF's OverflowFix.ENABLE)."""

    preset: str = "performance"
    fast_bias_correction: bool = True
    smooth_quant: float | None = None
    signed_activations: bool = True
    target_device: str = "ANY"
    weight_bits: int = 8


def trt_options() -> NncfOptions:
    return NncfOptions(preset="performance", signed_activations=True)


def cpu_options(weight_bits: int = 8) -> NncfOptions:
    return NncfOptions(preset="mixed", signed_activations=False, weight_bits=weight_bits)


def quantize_nncf(
    fp32_path: str | Path, manifest: Manifest, calib: Sequence[np.ndarray], out_path: str | Path,
    keep_float: Iterable[str], opts: NncfOptions, log: Callable[[str], None] = _log.info,
) -> Path:
    """Quantize fp32_path with NNCF on `calib` frames (uint8[H, W, 3] BGR), nodes in keep_float left
    float; write out_path. Returns out_path."""
    if opts.preset not in PRESETS:
        raise EdgeVisionError(f"NNCF preset {opts.preset!r}: choose one of {', '.join(PRESETS)}")
    if opts.weight_bits not in (7, 8):
        raise EdgeVisionError(f"NNCF weight_bits must be 7 or 8, not {opts.weight_bits}")
    nncf = lazy_import("nncf")
    onnx = lazy_import("onnx")
    from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    model = onnx.load(str(fp32_path))
    run = nncf_inputs(fp32_path, manifest, calib, [i.name for i in model.graph.input],
                      {n.name for n in model.graph.node}, keep_float)
    sq = opts.smooth_quant
    # NNCF's own signedness_to_force clashes with its hardware table (Add inputs, measured): it
    # quantizes non-negative tensors (after SiLU) to uint8 with zero point 0, and to_signed() then
    # rewrites those as int8 (what TensorRT reads), one bit coarser, as TensorRT's own int8 would be.
    # 7-bit weights: every weight quantizer on half the range (NNCF's default fixes the first layer only).
    overflow = {"overflow_fix": OverflowFix.ENABLE} if opts.weight_bits == 7 else {}
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=sq if sq is not None else -1.0), **overflow,
    )
    log(f"NNCF {opts.preset} on {len(run.feeds)} frames, {opts.weight_bits}-bit weights, {len(run.ignored)} nodes "
        f"float ({'fast' if opts.fast_bias_correction else 'full'} bias correction"
        f"{f', SmoothQuant {sq}' if sq is not None else ''})")
    with quiet_logging():  # NNCF logs every ignored node and a progress bar per pass
        quantized = nncf.quantize(
            model, nncf.Dataset(run.feeds), preset=nncf.QuantizationPreset(opts.preset),
            subset_size=len(run.feeds), fast_bias_correction=opts.fast_bias_correction,
            ignored_scope=run.ignored_scope(), advanced_parameters=advanced,
            target_device=nncf.TargetDevice(opts.target_device),
        )
    _keep_metadata(quantized, model)
    if opts.signed_activations:
        changed = to_signed(quantized)
        log(f"NNCF: {changed} uint8 symmetric quantizers rewritten as int8 (TensorRT reads no uint8)")
    onnx.save(quantized, str(out_path))
    return Path(out_path)


@dataclass
class NncfInputs:
    """What every nncf.quantize call here takes from our side: the calibration feeds (one dict of
    input name -> array per frame, batch 1, after the runtime's own pre-processing) and the names
    of the graph's nodes to leave float."""

    feeds: list[dict[str, np.ndarray]]
    ignored: list[str]

    def ignored_scope(self) -> Any:
        # validate=False: a name the graph lacks is not an error (a family without a stem layer).
        return lazy_import("nncf").IgnoredScope(names=self.ignored, validate=False)


def nncf_inputs(fp32_path: str | Path, manifest: Manifest, calib: Sequence[np.ndarray], inputs: list[str],
                node_names: set[str], keep_float: Iterable[str]) -> NncfInputs:
    """Feeds for the graph's `inputs` from `calib` frames (uint8[H, W, 3] BGR) and the `keep_float`
    names the graph has (`node_names`: ONNX node names, or OpenVINO friendly names, which keep them)."""
    feeds = [graph_feeds(manifest, x, inputs) for x in preprocess_batches(fp32_path, calib, batch=1)]
    if not feeds:
        raise EdgeVisionError(f"{fp32_path}: no calibration frames for NNCF")
    return NncfInputs(feeds, sorted(set(keep_float) & node_names))


def _keep_metadata(quantized: Any, model: Any) -> None:
    """Keep the FP32 graph's manifest (metadata_props) on the quantized copy: NNCF's ONNX backend
    rebuilds the model and may drop or extend them."""
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)


def to_signed(model: Any) -> int:
    """Rewrite every uint8 quantizer with zero point 0 (range [0, 255 * s]) as int8 with zero point
    0 and scale 255 * s / 127 (the same range, [-127, 127] levels), in place. Q and DQ share their
    scale / zero-point initializers in NNCF's graphs, so the pair stays consistent. Asymmetric uint8
    quantizers (zero point != 0, preset MIXED) are left alone. Returns how many zero points were rewritten."""
    onnx = lazy_import("onnx")
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    quantizers: list[tuple[Any, Any]] = [
        (inits[n.input[1]], inits[n.input[2]]) for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) >= 3
        and n.input[1] in inits and n.input[2] in inits]
    done = {z.name for _, z in quantizers
            if z.data_type == onnx.TensorProto.UINT8 and not numpy_helper.to_array(z).any()}
    # Every quantizer reading a rewritten zero point gets its scale rewritten once, whether Q and DQ
    # share the scale initializer or not; a scale also read by a quantizer left alone cannot change.
    scales = {s.name: s for s, z in quantizers if z.name in done}
    shared = set(scales) & {s.name for s, z in quantizers if z.name not in done}
    if shared:
        raise EdgeVisionError(f"NNCF graph: scale(s) {sorted(shared)[:3]} serve both a symmetric uint8 quantizer "
                              "(rewritten as int8) and another one: cannot rewrite one without the other")
    for scale in scales.values():
        new_scale = numpy_helper.to_array(scale).astype(np.float32) * np.float32(255.0 / 127.0)
        scale.CopyFrom(numpy_helper.from_array(new_scale, scale.name))
    for name in done:
        zp = inits[name]
        zp.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(zp), np.int8), zp.name))
    # The rewritten quantizers' outputs are int8 now: say so where the graph declares their type.
    q_out = {n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
             and n.input[2] in done}
    for vi in model.graph.value_info:  # NNCF declares the zero points' types there too
        if vi.name in q_out or vi.name in done:
            vi.type.tensor_type.elem_type = onnx.TensorProto.INT8
    return len(done)


def signed_only(model: Any) -> bool:
    """True when every QuantizeLinear in `model` has an int8 zero point (TensorRT reads no uint8)."""
    onnx = lazy_import("onnx")
    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2:
            zp = inits.get(n.input[2])
            if zp is not None and zp.data_type != onnx.TensorProto.INT8:
                return False
    return True
