"""FP16 graph for strongly typed TensorRT (11, RTX): precision written into the ONNX file.

Converted with ONNX Runtime's float16 converter (onnxruntime.transformers.float16, the
same code as onnxconverter-common; no extra dependency). Kept in FP32:
- graph inputs and outputs (the runtime feeds and reads float32, as for every artifact);
- the decode and post-processing (regions.find_regions: box coordinates reach 640 and
  IoU products 640^2 = 409600, beyond half's 65504; NMS compares need the bits);
- numerically sensitive ops anywhere (regions.FP32_OPS: Softmax, Exp, reductions ...).
Casts sit at the borders. The converter also types every tensor between two FP32 nodes as half
and routes it through a Cast-to-FP16 / Cast-to-FP32 pair: the kept nodes computed in FP32 but their
results were rounded to half in between (box coordinates to 0.125 px steps, the rotated NMS's
products overflowing 65504: an OBB graph kept 4x the detections). drop_round_trips() removes those
pairs, so what is kept in FP32 stays FP32 end to end.
TensorRT 8.6 / 10 can take the FP32 graph with the FP16 builder flag instead (edgevision.build);
this file is for builders without that flag.
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
    drop_round_trips(half)
    toposort(half.graph)  # the converter appends its Casts at the end of the node list
    onnx.save(half, str(out_path))
    return Path(out_path), keep


def drop_round_trips(model: Any) -> int:
    """Bypass every Cast(to FP32) of a Cast(to FP16) of an FP32 tensor (a lossy no-op), in place:
    consumers read the FP32 tensor itself (a graph output becomes its Identity), and Casts nobody
    reads any more are removed. Returns the number of pairs bypassed."""
    onnx = lazy_import("onnx")
    from onnx import TensorProto, helper

    g = model.graph
    typed = onnx.shape_inference.infer_shapes(model).graph
    elem = {v.name: v.type.tensor_type.elem_type for v in [*typed.value_info, *typed.input, *typed.output]}
    elem.update({i.name: i.data_type for i in g.initializer})
    producer = {o: n for n in g.node for o in n.output}

    def cast_to(n: Any) -> int | None:
        return next((int(a.i) for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    bypass: dict[str, str] = {}  # the round trip's FP32 result -> the FP32 tensor it started from
    for n in g.node:
        first = producer.get(n.input[0]) if cast_to(n) == TensorProto.FLOAT else None
        if first is not None and cast_to(first) == TensorProto.FLOAT16 and elem.get(first.input[0]) == TensorProto.FLOAT:
            bypass[n.output[0]] = first.input[0]
    outputs = {o.name for o in g.output}
    for n in g.node:
        for i, name in enumerate(n.input):
            if name in bypass:
                n.input[i] = bypass[name]
    nodes = []
    for n in g.node:
        if n.output and n.output[0] in bypass and n.output[0] in outputs:  # keep the output's name
            n = helper.make_node("Identity", [bypass[n.output[0]]], [n.output[0]], name=n.name)
        nodes.append(n)
    while True:  # drop Casts whose results nobody reads
        read = {i for n in nodes for i in n.input} | outputs
        keep = [n for n in nodes if n.op_type != "Cast" or any(o in read for o in n.output)]
        if len(keep) == len(nodes):
            break
        nodes = keep
    del g.node[:]
    g.node.extend(nodes)
    return len(bypass)
