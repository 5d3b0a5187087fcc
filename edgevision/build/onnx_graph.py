"""What the builder needs to know about an ONNX artifact before TensorRT sees it:
its manifest, checksum, input shapes, operator census and the precision it holds."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._lazy import lazy_import
from ..errors import EdgeVisionError
from ..manifest import METADATA_KEY, Manifest, sha256_file
from .precision import GraphPrecision
from .profiles import Dim

# Operators that do NMS. ONNX NonMaxSuppression becomes TensorRT's INMSLayer (full
# TensorRT builds it, with a data-dependent output shape; TensorRT-RTX parses it but
# cannot build it); the *_TRT ones are plugins.
NMS_OPS = frozenset({"NonMaxSuppression", "EfficientNMS_TRT", "BatchedNMS_TRT", "BatchedNMSDynamic_TRT"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class OnnxGraph:
    """inputs: name -> dims (ints, or a symbolic name / None where dynamic), graph order."""

    path: Path
    sha256: str
    manifest: Manifest | None
    inputs: dict[str, tuple[Dim, ...]]
    outputs: tuple[str, ...]
    op_counts: dict[str, int]
    precision: GraphPrecision
    opset: int

    @property
    def nms_ops(self) -> tuple[str, ...]:
        return tuple(sorted(op for op in self.op_counts if op in NMS_OPS))

    def require_manifest(self) -> Manifest:
        if self.manifest is None:
            raise EdgeVisionError(
                f"{self.path} has no edgevision manifest, so an engine built from it could not be run "
                f"(class names, input size, letterbox). Convert the model first: edgevision convert MODEL"
            )
        return self.manifest


def _dims(value_info: Any) -> tuple[Dim, ...]:
    shape = value_info.type.tensor_type.shape
    out: list[Dim] = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return tuple(out)


def _has_fp16(model: Any, onnx: Any) -> bool:
    f16 = onnx.TensorProto.FLOAT16
    g = model.graph
    if any(t.data_type == f16 for t in g.initializer):
        return True
    if any(i.type.tensor_type.elem_type == f16 for i in g.input):
        return True
    for node in g.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in node.attribute):
            return True
        if node.op_type == "Constant" and any(a.t.data_type == f16 for a in node.attribute if a.HasField("t")):
            return True
    return False


def inspect_onnx(path: str | Path) -> OnnxGraph:
    """Read the graph (not its external weights) and summarise it."""
    onnx = lazy_import("onnx")
    path = Path(path)
    if not path.is_file():
        raise EdgeVisionError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
        raise EdgeVisionError(f"{path} is not a readable ONNX file: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    manifest = Manifest.from_json(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    inits = {t.name for t in model.graph.initializer}
    inputs = {i.name: _dims(i) for i in model.graph.input if i.name not in inits}
    ops = Counter(n.op_type for n in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    precision = GraphPrecision(has_qdq=any(op in QDQ_OPS for op in ops), has_fp16=_has_fp16(model, onnx))
    return OnnxGraph(
        path, sha256_file(path), manifest, inputs, tuple(o.name for o in model.graph.output),
        dict(ops), precision, opset,
    )
