"""Which part of a converted graph is "the network" (may be quantized / halved) and which stays float.

Works on any converted artifact, from the graph's structure, not from node names: the
network region is every node that is a weighted layer (Conv, ConvTranspose, Gemm, MatMul)
or feeds one; whatever only consumes the last weighted layers' outputs stays float, and so
does everything downstream of a TopK / NonMaxSuppression / ArgMax. Per family that is:
- YOLO and torchvision one-stage detectors: reshapes, sigmoid / softmax scores, the box
  decode (anchors, Exp of the size deltas), candidate TopK and the in-graph NMS (whose
  IoU MatMuls are not layers);
- classifiers: Softmax and TopK after the last Linear (Gemm);
- semantic segmenters: the upsampling Resize of the logits and the ArgMax;
- end-to-end heads (YOLO26, YOLOv10 one-to-one): the box decode, the sigmoid scores and
  Ultralytics' two constant-K TopKs with the index arithmetic between them;
- pose / OBB heads: the keypoint decode (anchor offsets, stride, visibility sigmoid) and the
  angle decode beside the box decode, and the (rotated) NMS;
- RT-DETR: the encoder's query selection is a TopK, so everything after it stays float: the
  decoder's self-attention and query MLPs, the Gather-based deformable sampling, the box
  refinement and the final top-k. The backbone, the encoder and the decoder's cross-attention
  value projections (Linears on the encoder's memory, computed before any query exists) are
  the network.
These turn activations into coordinates, probabilities and class decisions whose ranges
and ties share nothing with the convolutions' (quantizing them is what zeroes detections
and ties top-k). A family may add hints where structure is not enough (node-name scopes
that must stay float: YOLO's DFL box decode is a Conv with fixed weights behind a Softmax).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# Ops whose first input is an activation and whose weight is an initializer (axis = output channels).
WEIGHTED_OPS: dict[str, int] = {"Conv": 0, "ConvTranspose": 1}
# Gemm (a Linear layer) is a layer too, its weight axis read from transB (find_regions).
# Ops after which everything is post-processing, whatever the family.
POST_MARKERS = {"TopK", "NonMaxSuppression", "ArgMax", "ArgMin", "NonZero"}
# Numerically sensitive ops FP16 keeps in FP32 wherever they are (exp overflows half at 11.1).
FP32_OPS = {"Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "ReduceSum", "ReduceMean"}


@dataclass(frozen=True)
class FamilyHint:
    """Name patterns (regex, matched with re.search on node names) that must stay float."""

    float_patterns: tuple[str, ...] = ()


# family in the manifest -> hint. The exporter names our post-processing "/post/..." and
# Ultralytics' DFL decode ".../dfl/..." (a Softmax over 16 bins then a fixed arange Conv).
FAMILY_HINTS: dict[str, FamilyHint] = {
    "ultralytics-yolo": FamilyHint(float_patterns=(r"^/post/", r"/dfl/")),
}
DEFAULT_HINT = FamilyHint(float_patterns=(r"^/post/",))


@dataclass(frozen=True)
class Layer:
    """A quantizable layer: node name, op type, the inputs that carry activations, its weight input.

    weight: (input index, per-channel axis) or None (MatMul of two activations).
    group: the sensitivity group (a name scope) the layer belongs to.
    """

    name: str
    op_type: str
    activations: tuple[int, ...]
    weight: tuple[int, int] | None
    group: str


@dataclass
class Regions:
    """The partition of a graph. layers: topological order. float_nodes: names kept float."""

    layers: list[Layer]
    float_nodes: set[str]
    network_nodes: set[str]
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> layer names

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


def _hint(family: str, extra: dict[str, Any] | None) -> FamilyHint:
    hint = FAMILY_HINTS.get(family, DEFAULT_HINT)
    more = tuple((extra or {}).get("float_patterns", ()))  # a manifest may carry its own
    return FamilyHint(hint.float_patterns + more)


def _attr(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _scope(name: str, depth: int) -> str:
    parts = [p for p in name.split("/") if p][:-1]  # drop the op's own name
    return "/" + "/".join(parts[:depth]) if parts else ""


def _groups(names: list[str], max_size: int = 8) -> dict[str, str]:
    """layer name -> group. Start from top-level name scopes and split any scope holding more
    than max_size layers one level deeper, so groups are blocks (a C2f, a head branch).
    Unscoped names (other exporters) fall back to runs of max_size layers in graph order."""
    out: dict[str, str] = {}

    def split(members: list[str], depth: int) -> None:
        by_scope: dict[str, list[str]] = defaultdict(list)
        for n in members:
            by_scope[_scope(n, depth)].append(n)
        for scope, inner in by_scope.items():
            if len(inner) > max_size and len({_scope(n, depth + 1) for n in inner}) > 1:
                split(inner, depth + 1)
            else:
                out.update({n: scope for n in inner})

    split(names, 2)  # torch names layers "/model/model.N/..."; depth 2 is one block
    unscoped = [n for n in names if not out[n]]
    for i, n in enumerate(unscoped):
        start = i // max_size * max_size
        out[n] = f"layers[{start}:{start + max_size}]"
    return out


def find_regions(model: Any, family: str = "", extra: dict[str, Any] | None = None) -> Regions:
    """Partition an onnx.ModelProto (see the module docstring)."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    patterns = [re.compile(p) for p in _hint(family, extra).float_patterns]

    # 1. Hinted nodes and everything downstream of a post-processing marker stay float.
    forced: set[str] = {n.name for n in graph.node if any(p.search(n.name) for p in patterns)}
    stack = [n for n in graph.node if n.op_type in POST_MARKERS or n.name in forced]
    while stack:
        n = stack.pop()
        for o in n.output:
            for c in consumers[o]:
                if c.name not in forced:
                    forced.add(c.name)
                    stack.append(c)

    # 2. Weighted layers outside the forced region, and activation x activation MatMuls.
    candidates: list[tuple[str, str, tuple[int, ...], tuple[int, int] | None]] = []
    for n in graph.node:
        if n.name in forced:
            continue
        if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in inits:
            candidates.append((n.name, n.op_type, (0,), (1, WEIGHTED_OPS[n.op_type])))
        elif n.op_type == "Gemm" and len(n.input) > 1 and n.input[1] in inits and n.input[0] not in inits \
                and not _attr(n, "transA", 0):
            # a classifier's Linear: B is [out, in] with transB=1 (torch's export), [in, out] without
            candidates.append((n.name, n.op_type, (0,), (1, 0 if _attr(n, "transB", 0) else 1)))
        elif n.op_type == "MatMul":
            acts = tuple(i for i, t in enumerate(n.input) if t not in inits)
            weight = next(((i, 1) for i, t in enumerate(n.input) if t in inits and i == 1), None)
            if acts:
                candidates.append((n.name, n.op_type, acts, weight))

    # 3. The network region: the layers and every node that feeds one.
    by_name = {n.name: n for n in graph.node}
    network: set[str] = set()
    stack = [by_name[c[0]] for c in candidates]
    while stack:
        n = stack.pop()
        if n.name in network:
            continue
        network.add(n.name)
        for i in n.input:
            if i in producer and i not in inits:
                stack.append(producer[i])
    float_nodes = {n.name for n in graph.node if n.name not in network}

    group_of = _groups([c[0] for c in candidates])
    layers = [Layer(name, op, acts, w, group_of[name]) for name, op, acts, w in candidates]
    groups: dict[str, list[str]] = defaultdict(list)
    for layer in layers:
        groups[layer.group].append(layer.name)
    return Regions(layers, float_nodes, network, dict(groups))
