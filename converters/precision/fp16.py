"""FP16 graph for strongly typed TensorRT (11, RTX): precision written into the ONNX file.

Converted with ONNX Runtime's float16 converter (onnxruntime.transformers.float16, the
same code as onnxconverter-common; no extra dependency). Kept in FP32:
- graph inputs and outputs (the runtime feeds and reads float32, as for every artifact);
- the decode and post-processing (regions.find_regions: box coordinates reach 640 and
  IoU products 640^2 = 409600, beyond half's 65504; NMS compares need the bits);
- numerically sensitive ops anywhere (regions.FP32_OPS: Softmax, Exp, reductions ...).
Casts sit at the borders. TensorRT 8.6 / 10 can take the FP32 graph with the FP16 builder
flag instead (edgevision.build); this file is for builders without that flag.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import

from .graph import toposort
from .regions import FP32_OPS, Regions


def fp32_nodes(model: Any, regions: Regions) -> set[str]:
    """Nodes the FP16 graph keeps in FP32 (see the module docstring)."""
    return set(regions.float_nodes) | {n.name for n in model.graph.node if n.op_type in FP32_OPS}


def build_fp16(model: Any, regions: Regions, out_path: str | Path) -> tuple[Path, list[str]]:
    """Write the FP16 graph; returns (path, names of nodes kept in FP32)."""
    onnx = lazy_import("onnx")
    f16 = lazy_import("onnxruntime.transformers.float16")
    keep = sorted(fp32_nodes(model, regions))
    half = f16.convert_float_to_float16(
        model, keep_io_types=True, node_block_list=keep, op_block_list=f16.DEFAULT_OP_BLOCK_LIST,
    )
    toposort(half.graph)  # the converter appends its Casts at the end of the node list
    onnx.save(half, str(out_path))
    return Path(out_path), keep
