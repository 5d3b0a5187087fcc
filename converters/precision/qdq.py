"""Explicit INT8 Q/DQ placement the way TensorRT wants it (8.6, 10 and strongly typed 11 / RTX).

Per quantized layer (Conv, ConvTranspose, MatMul of the network region):
- its activation input(s): QuantizeLinear -> DequantizeLinear, int8, symmetric (zero
  point 0), per tensor, scale = calibrated amax / 127;
- its weight: an int8 initializer, symmetric per output channel, -> DequantizeLinear(axis);
- its bias stays float (TensorRT's parser rejects an int32-bias DequantizeLinear), and its
  output is not quantized: TensorRT fuses DQ -> Conv and the next layer's Q itself, and
  every op we did not mark runs in float.

Q/DQ pairs are dedicated to one consumer, so "layer L stays float" means exactly that:
no other layer's quantization leaks into L's inputs.

gated=True builds the sensitivity twin instead: each quantized input becomes
If(gate_g, DQ(Q(x)), x) with one bool input per layer group, so one ONNX Runtime
session evaluates any combination of quantized groups (see sensitivity.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import

from .calibration import Ranges
from .regions import Layer

QMAX = 127.0  # narrow symmetric range [-127, 127]: what TensorRT uses for int8
GATE_PREFIX = "qgate:"


def weight_qdq(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 weight -> (int8 weight, float32[C] per-channel scale along `axis`)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)  # a zero scale is invalid
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, scale


def gate_name(group: str) -> str:
    return GATE_PREFIX + group


def insert_qdq(model: Any, layers: Sequence[Layer], ranges: Ranges, gated: bool = False) -> tuple[Any, list[str]]:
    """A copy of `model` with `layers` quantized. Returns (model, names of layers skipped
    because calibration has no range for one of their activations)."""
    onnx = lazy_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    nodes = {n.name: n for n in g.node}
    new_inits: list[Any] = [numpy_helper.from_array(np.array(0, np.int8), "qdq:zp")]
    new_nodes: dict[str, list[Any]] = {}  # consumer name -> nodes to insert before it
    act_scales: dict[str, str] = {}
    weights_done: dict[str, str] = {}
    gates: set[str] = set()
    skipped: list[str] = []

    for layer in layers:
        node = nodes[layer.name]
        if any(node.input[i] not in ranges.tensors for i in layer.activations):
            skipped.append(layer.name)
            continue
        before: list[Any] = []
        gate = gate_name(layer.group)
        gates.add(gate)
        for i in layer.activations:
            t = node.input[i]
            if t not in act_scales:
                act_scales[t] = f"qdq:{t}:scale"
                new_inits.append(numpy_helper.from_array(np.array(ranges.amax(t) / QMAX, np.float32), act_scales[t]))
            q, dq = f"qdq:{layer.name}:{i}:q", f"qdq:{layer.name}:{i}:dq"
            pair = [
                helper.make_node("QuantizeLinear", [t, act_scales[t], "qdq:zp"], [q], name=q),
                helper.make_node("DequantizeLinear", [q, act_scales[t], "qdq:zp"], [dq], name=dq),
            ]
            node.input[i] = _gate(before, gate, pair, dq, t) if gated else dq
            if not gated:
                before += pair
        if layer.weight is not None:
            i, axis = layer.weight
            w = node.input[i]
            if w not in weights_done:
                wq, scale = weight_qdq(numpy_helper.to_array(inits[w]).astype(np.float32), axis)
                new_inits += [
                    numpy_helper.from_array(wq, f"{w}:int8"),
                    numpy_helper.from_array(scale, f"{w}:scale"),
                    numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{w}:zp"),
                ]
                weights_done[w] = f"{w}:dq"
            dq_w = helper.make_node(
                "DequantizeLinear", [f"{w}:int8", f"{w}:scale", f"{w}:zp"], [f"{weights_done[w]}:{layer.name}"],
                name=f"{weights_done[w]}:{layer.name}", axis=axis,
            )
            node.input[i] = _gate(before, gate, [dq_w], dq_w.output[0], w) if gated else dq_w.output[0]
            if not gated:
                before.append(dq_w)
        new_nodes[layer.name] = before

    # Rebuild the node list with the inserted nodes right before their consumer (stays topological).
    ordered = []
    for n in g.node:
        ordered += new_nodes.get(n.name, [])
        ordered.append(n)
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(new_inits)
    if gated:
        g.input.extend(helper.make_tensor_value_info(name, TensorProto.BOOL, []) for name in sorted(gates))
    else:
        used = {i for n in g.node for i in n.input}
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)  # the float weights that became int8 are gone
    return out, skipped


def _gate(before: list[Any], gate: str, nodes: list[Any], quantized: str, original: str) -> str:
    """If(gate) then nodes' result else the original tensor: ONNX Runtime runs only the taken
    branch, so a group switched off costs nothing."""
    from onnx import TensorProto, helper

    name = f"{quantized}:gated"
    then = helper.make_graph(nodes, f"{name}:q", [], [helper.make_tensor_value_info(quantized, TensorProto.FLOAT, None)])
    keep = helper.make_graph(
        [helper.make_node("Identity", [original], [f"{name}:f"])], f"{name}:f", [],
        [helper.make_tensor_value_info(f"{name}:f", TensorProto.FLOAT, None)],
    )
    before.append(helper.make_node("If", [gate], [name], name=name, then_branch=then, else_branch=keep))
    return name


def quantized_layers(model: Any) -> list[str]:
    """Names of nodes that read a DequantizeLinear output (the layers a Q/DQ graph runs in INT8)."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type != "DequantizeLinear" and any(i in dq_out for i in n.input)]
