"""Cut a graph before its NMS stage, for builders that cannot build NMS (TensorRT-RTX).

edgevision's own graphs never need this: their NMS is TopK/Gather/MatMul/elementwise.
Graphs from elsewhere (Ultralytics `nms=True`, torchvision detectors) end in ONNX
NonMaxSuppression, which TensorRT-RTX parses but has no kernel for. Building the graph
up to the NMS inputs still proves everything before it (backbone, head, decode).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._lazy import lazy_import
from ..errors import EdgeVisionError
from .onnx_graph import NMS_OPS


@dataclass(frozen=True)
class StrippedGraph:
    """path: the cut graph. outputs: its new outputs (the NMS boxes/scores inputs).
    removed: 'OpType name' of every node the cut dropped (the NMS nodes and what follows)."""

    path: Path
    outputs: tuple[str, ...]
    removed: tuple[str, ...]

    def describe(self) -> str:
        nms = [r for r in self.removed if r.split(" ")[0] in NMS_OPS]
        return (
            f"built without the NMS stage: cut before {', '.join(nms)} "
            f"({len(self.removed)} node(s) removed); outputs are now {', '.join(self.outputs)}"
        )


def strip_nms(src: str | Path, dst: str | Path) -> StrippedGraph:
    """Write to `dst` the part of `src` that computes the inputs of its NMS nodes."""
    onnx = lazy_import("onnx")
    model = onnx.load(str(src))
    g = model.graph
    nms = [n for n in g.node if n.op_type in NMS_OPS]
    if not nms:
        raise EdgeVisionError(f"{src} has no NMS node to cut ({', '.join(sorted(NMS_OPS))})")
    # boxes and scores are the first two inputs of every NMS flavour; the rest are settings.
    cut = list(dict.fromkeys(name for n in nms for name in list(n.input)[:2] if name))
    producers = {out: node for node in g.node for out in node.output}
    keep_ids: set[int] = set()
    stack = [producers[name] for name in cut if name in producers]
    while stack:
        node = stack.pop()
        if id(node) in keep_ids:
            continue
        keep_ids.add(id(node))
        stack.extend(producers[i] for i in node.input if i in producers)
    kept = [n for n in g.node if id(n) in keep_ids]
    removed = tuple(f"{n.op_type} {n.name or '(unnamed)'}" for n in g.node if id(n) not in keep_ids)
    used = {i for n in kept for i in n.input} | set(cut)
    inputs = [i for i in g.input if i.name in used]
    inits = [t for t in g.initializer if t.name in used]
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    outputs = [
        infos[name] if name in infos else onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in cut
    ]
    graph = onnx.helper.make_graph(kept, f"{g.name}_before_nms", inputs, outputs, inits)
    out = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    out.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(out)
    onnx.save(out, str(dst))
    return StrippedGraph(Path(dst), tuple(cut), removed)
