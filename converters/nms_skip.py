"""Skip the NMS blocks that hold no candidate: each exported NmsBlock after the first becomes
an ONNX If whose else branch returns the block's input unchanged.

Why it is exact: block [s, e) of the blocked fixed point (converters/nms.py) starts from
free = valid[:, :, s:e] (1 where a candidate scored above conf), and keep and its one-step
check can only be 1 where free is. The candidates are sorted by score, so once rank s
scores at or below conf in every image of the batch, the whole block's free is 0 and its
outputs are that same 0 tensor: the else branch returns it, bit for bit what the block
would compute. On an ordinary frame (about 85 candidates above conf 0.25) only the first
block of 256 runs; a crowd at conf 0.01 runs them all, as before.

Shapes stay constant (both branches return float32[B, 1, b]); the condition is one scalar
per batch (ReduceMax over free > 0). ONNX Runtime runs If natively, and TensorRT builds it
as an IIfConditionalLayer (tests/test_engine_rtx.py builds every converted graph).
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import

BLOCK_SCOPE = re.compile(r"^(.*/nms_blocks\.(\d+)/)")


def block_scopes(graph: Any) -> dict[str, list[int]]:
    """Scope prefix ('/post/nms_blocks.1/') -> positions of its nodes in graph.node, for
    every block but the first (which always runs: it holds the best candidates)."""
    scopes: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.node):
        m = BLOCK_SCOPE.match(node.name)
        if m and int(m.group(2)) > 0:
            scopes[m.group(1)].append(i)
    return dict(scopes)


def wrap_block(graph: Any, positions: list[int], prefix: str) -> tuple[list[Any], Any]:
    """(the nodes that replace the block's nodes graph.node[positions], which must be
    contiguous: condition and If; the condition's 0 initializer).

    The block's inputs are read from the outer scope (ONNX subgraphs see it); its outputs
    consumed outside it become the If's outputs under the same names."""
    onnx = lazy_import("onnx")
    helper = onnx.helper
    nodes = [graph.node[i] for i in positions]
    if positions != list(range(positions[0], positions[-1] + 1)):
        raise ValueError(f"the nodes of {prefix} are not contiguous: cannot wrap them into one If")
    produced = {o for n in nodes for o in n.output}
    inside = {id(n) for n in nodes}
    used_outside = {i for n in graph.node if id(n) not in inside for i in n.input} | {o.name for o in graph.output}
    outputs = [o for n in nodes for o in n.output if o in used_outside]
    free = _free_input(nodes, produced)
    then_nodes = []
    rename = {o: f"{o}__then" for o in outputs}
    for n in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        for k, name in enumerate(copy.output):
            if name in rename:
                copy.output[k] = rename[name]
        for k, name in enumerate(copy.input):
            if name in rename:
                copy.input[k] = rename[name]
        then_nodes.append(copy)
    float_out = onnx.TensorProto.FLOAT
    then = helper.make_graph(then_nodes, f"{prefix}run", [],
                             [helper.make_tensor_value_info(rename[o], float_out, None) for o in outputs])
    els = helper.make_graph([helper.make_node("Identity", [free], [f"{o}__else"]) for o in outputs], f"{prefix}skip", [],
                            [helper.make_tensor_value_info(f"{o}__else", float_out, None) for o in outputs])
    return [
        helper.make_node("ReduceMax", [free], [f"{prefix}any_valid"], name=f"{prefix}AnyValid", keepdims=0),
        helper.make_node("Greater", [f"{prefix}any_valid", f"{prefix}zero"], [f"{prefix}run"], name=f"{prefix}Run"),
        helper.make_node("If", [f"{prefix}run"], outputs, name=f"{prefix}If", then_branch=then, else_branch=els),
    ], helper.make_tensor(f"{prefix}zero", float_out, [], [0.0])


def _free_input(nodes: list[Any], produced: set[str]) -> str:
    """The outer tensor NmsBlock.forward got as `free`: in _block it is read by the Sub
    `free - hits` (every block after the first has earlier keeps)."""
    subs = [n for n in nodes if n.op_type == "Sub" and n.input[0] not in produced]
    frees = {n.input[0] for n in subs}
    if len(frees) != 1:
        raise ValueError(f"cannot tell which input of an NMS block is its free mask: {sorted(frees)}")
    return frees.pop()


def skip_empty_blocks(model: Any) -> int:
    """Rewrite a ModelProto in place; returns how many blocks became If nodes (0: the graph
    has no exported NmsBlock beyond the first, nothing changed)."""
    graph = model.graph
    scopes = block_scopes(graph)
    inner: set[str] = set()
    # Back to front, so that positions of earlier blocks stay valid while later ones change.
    for prefix, positions in sorted(scopes.items(), key=lambda kv: -kv[1][0]):
        new_nodes, zero = wrap_block(graph, positions, prefix)
        first, last = positions[0], positions[-1]
        inner |= {o for i in positions for o in graph.node[i].output} - set(new_nodes[-1].output)
        kept = list(graph.node[:first]) + new_nodes + list(graph.node[last + 1 :])
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.append(zero)
    # Shapes recorded for tensors that now live inside a branch would describe no outer tensor.
    outer_info = [v for v in graph.value_info if v.name not in inner]
    del graph.value_info[:]
    graph.value_info.extend(outer_info)
    return len(scopes)


def skip_empty_blocks_file(path: str | Path) -> int:
    """skip_empty_blocks on an ONNX file, rewritten in place (only if something changed)."""
    onnx = lazy_import("onnx")
    model = onnx.load(str(path))
    count = skip_empty_blocks(model)
    if count:
        onnx.save(model, str(path))
    return count
