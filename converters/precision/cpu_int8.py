"""The CPU twin of the INT8 artifact: same calibration, a layout ONNX Runtime fuses into integer kernels.

Why the TensorRT Q/DQ graph is slower than FP32 on ONNX Runtime's CPU provider (measured,
yolo11n-seg 640x640, 2 cores, AVX-512 VNNI, ORT 1.32, kernel time per frame):
- TensorRT needs int8 *signed, symmetric* activations. On x86-64, ORT fuses
  DQ -> Conv -> Q into QLinearConv only for uint8 activations (its
  `session.qdqisint8allowed` is off on x86 because MLAS has no fast s8s8 convolution:
  forcing it on made the convolutions 420 ms instead of 43 ms). So every Conv runs in
  float, behind 300+ QuantizeLinear and 600+ DequantizeLinear nodes (~90 ms), and without
  the FP32 graph's NCHWc layout and fused SiLU: 333 ms vs 173 ms for FP32.
- With TensorRT's placement (no Q on conv outputs), there is no DQ -> Conv -> Q group to fuse
  at all, whatever the activation type.
This twin uses what ORT's x86 kernels want: uint8 asymmetric activations, int8 symmetric
per-channel weights, int32 bias. Q/DQ go around every op ORT has an integer kernel for
(Conv, Sigmoid and Mul of SiLU, Add, Concat, MaxPool, Resize), so whole blocks run as
QLinearConv / QLinearSigmoid / QLinearMul: 119 ms vs 173 ms. That rounds every SiLU, Add and
Concat to uint8 too, which the TensorRT graph does not, and on scenes calibration never saw it
falls behind it. Quantizing Conv alone (op_types=("Conv",), Int8Options.cpu_ops; DQ -> Conv -> Q
still fuses into QLinearConv, SiLU / Add / Concat run in float) recovers part of that (F1 / pooled
AP50-95 vs FP32, Megamind 0.882 / 0.927 vs 0.861 / 0.889, photos 0.865 / 0.890 vs 0.833 / 0.864)
but costs the speed (1.16x FP32 end to end vs 1.44x on the 2-core AVX2 EPYC, below the 1.3x the
twin exists for), so it is an option, not the default: benchmarks/results/int8_peers.md. Made by onnxruntime.quantization
from the same measured ranges; the decode and post-processing stay float exactly as in the
TensorRT graph. TensorRT cannot use it (uint8 zero points), hence two artifacts.

On x86 CPUs without VNNI (AVX2 only) ORT's fast u8s8 kernels add pairs of u8 x s8 products in a
saturating int16, which 8-bit weights overflow (measured, AMD EPYC AVX2, ORT 1.32, yolo11n-seg,
16 calibration / 16 held-out frames, every layer INT8, 1 thread): F1 0.849 / AP50-95 0.949 vs FP32
at 146 ms. edgevision's sessions there switch ORT to exact u8u8 kernels (u8s8_saturates):
F1 0.965 / AP50-95 0.975 but 203 ms, barely faster than FP32 (215 ms). 7-bit weights fit the
fast kernel exactly: F1 0.957 / AP50-95 0.973 at 145 ms. So the twin gets 7-bit weights when
it is built on such a CPU (default_weight_bits; the manifest records weight_bits) and 8-bit ones
elsewhere; an 8-bit file that meets a CPU without VNNI still runs exactly, on u8u8.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import
from edgevision.device import u8s8_saturates

from .calibration import Ranges, save_ort_cache
from .quiet import quiet_logging

# The ops the twin quantizes (ORT's op_types_to_quantize); None: every op ORT has an integer kernel for.
CPU_OPS: tuple[str, ...] | None = None


def default_weight_bits() -> int:
    """7 where the build CPU's fast u8s8 kernels would saturate 8-bit weights (x86 without VNNI), else 8."""
    return 7 if u8s8_saturates() else 8


def build_cpu_int8(
    fp32_path: str | Path, out_path: str | Path, ranges: Ranges, keep_float: Iterable[str], weight_bits: int = 8,
    op_types: Sequence[str] | None = CPU_OPS,
) -> Path:
    """Quantize fp32_path for ONNX Runtime on x86/ARM CPUs; nodes in keep_float stay float.
    weight_bits: 8, or 7 (weights in -64..64: ORT's reduce_range), exact on u8s8 kernels without VNNI.
    op_types: the op types to quantize (None: every one ORT has an integer kernel for)."""
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, not {weight_bits}")
    quant = lazy_import("onnxruntime.quantization")
    with tempfile.TemporaryDirectory(prefix="edgevision-int8-") as tmp, quiet_logging():
        cache = save_ort_cache(ranges, Path(tmp) / "ranges.json")
        quant.quantize_static(
            str(fp32_path), str(out_path), None,
            quant_format=quant.QuantFormat.QDQ,
            per_channel=True,
            reduce_range=weight_bits == 7,
            activation_type=quant.QuantType.QUInt8,
            weight_type=quant.QuantType.QInt8,
            nodes_to_exclude=sorted(keep_float),
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=quant.CalibrationMethod.MinMax,  # the cache holds our ranges as (min, max)
            calibration_cache_path=str(cache),
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    onnx = lazy_import("onnx")
    model = onnx.load(str(out_path))
    if float_inputs(model, set(keep_float)):
        onnx.save(model, str(out_path))
    return Path(out_path)


def float_inputs(model: Any, keep_float: set[str]) -> int:
    """Give the nodes in keep_float their float inputs back, in place; returns how many inputs changed.

    quantize_static quantizes a quantized layer's *output* whoever reads it, so a node left
    float still reads 8-bit data: a classifier's Softmax read logits rounded to 1/255 of their
    range, and its top-k tied (measured: top-5 set agreement 0.62 on the test classifier). A
    QuantizeLinear -> DequantizeLinear pair on an activation feeding such a node is bypassed for
    that node (the producer's float tensor goes in), and dropped when nobody else reads it. The
    producer then runs DQ -> Conv in float rather than fused (the last layers before
    post-processing only)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    outputs = {o.name for o in g.output}
    changed = 0
    for n in g.node:
        if n.name not in keep_float or n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for k, t in enumerate(n.input):
            dq = producer.get(t)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or q.input[0] in inits:
                continue  # a weight's DQ (a float node with an int8 constant is not ours to touch)
            n.input[k] = q.input[0]
            changed += 1
    if changed:  # drop Q/DQ nodes nobody reads any more (repeat: a DQ's removal frees its Q)
        while True:
            used = {i for n in g.node for i in n.input} | outputs
            dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                    and not any(o in used for o in n.output)]
            if not dead:
                break
            for n in dead:
                g.node.remove(n)
    return changed
