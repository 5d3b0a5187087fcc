"""FP16 and INT8 artifacts that keep their accuracy, proven on the CPU (issue #4).

Precision lives in the ONNX graph (explicit Q/DQ, FP16 with FP32 islands), so ONNX Runtime
checks it here and TensorRT 8.6, 10 and 11 read the same file. Modules, one job each:

    regions      which nodes are "the network" and which stay float (decode, NMS)
    calibration  frames -> runtime pre-processing -> activation ranges
    qdq          TensorRT-style explicit Q/DQ (and its gated twin for sensitivity)
    sensitivity  measure each layer group's effect; keep the worst float until the budget holds
    cpu_int8     the same calibration laid out for ONNX Runtime's x86/ARM integer kernels
    fp16         FP16 graph for strongly typed TensorRT
    evaluate     detections and agreement vs FP32; budget: the minimums; gate: both together
    speed        interleaved latency; report: JSON + Markdown; pipeline: the convert flow

Nothing here imports torch.
"""
from __future__ import annotations

from .budget import Budget, parse_budget
from .pipeline import apply_precision

__all__ = ["Budget", "apply_precision", "parse_budget"]
