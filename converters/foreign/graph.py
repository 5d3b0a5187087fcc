"""Join edgevision's post-processing (heads.py, exported on its own) to a foreign ONNX graph.

The foreign graph keeps its nodes and weights; its names get the prefix "src/" and its image
input becomes edgevision's `images`, so nothing can collide with the head's names or with
edgevision's output names. Exporters often bake batch 1 into Reshape shapes (Ultralytics
without dynamic=True does): dynamic_batch() turns a leading 1 of such constant shapes into 0
("copy the input's dim"), then checks on ONNX Runtime that batch 2 gives each image what batch 1
gave it; where that fails (a graph with per-image NMS unrolled at trace time) the artifact
stays batch 1 and says so in its manifest.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_IMAGES, METADATA_KEY

SRC_PREFIX = "src/"
HEAD_PREFIX = "ev/"
MIN_OPSET = 13  # the head's ops (TopK with a K input, ReduceSum with axes input) need 13+
MAX_TORCH_OPSET = 20  # torch's legacy exporter writes up to this one


@dataclass
class ForeignGraph:
    """A foreign ONNX file, read once. outputs: name -> dims (None where symbolic), in file order."""

    path: Path
    model: Any  # onnx.ModelProto
    meta: dict[str, str]
    image_input: str
    input_shape: list[int | None]
    outputs: dict[str, list[int | None]]
    opset: int


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def read_foreign(path: Path) -> ForeignGraph:
    """Load and check a foreign ONNX file. One sentence where it is not a usable ONNX model, or is
    an edgevision artifact already."""
    onnx = lazy_import("onnx")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker errors vary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeVisionError(f"{path} is not a valid ONNX model ({first}); is it corrupt or truncated?") from exc
    if any(p.key == METADATA_KEY for p in model.metadata_props):
        raise EdgeVisionError(f"{path} is an edgevision artifact already: load it, or build it (`edgevision build`)")
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgeVisionError(f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); edgevision "
                              "converts graphs with one image input")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise EdgeVisionError(f"{path}'s input {inputs[0].name} is not float32; export the model with a float32 input")
    if any(not o.type.tensor_type.HasField("shape") for o in model.graph.output):
        model = onnx.shape_inference.infer_shapes(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ForeignGraph(path, model, {p.key: p.value for p in model.metadata_props}, inputs[0].name,
                        _dims(inputs[0]), {o.name: _dims(o) for o in model.graph.output}, opset)


def probe_outputs(fg: ForeignGraph, input_hw: tuple[int, int]) -> dict[str, list[int | None]]:
    """fg.outputs with every symbolic axis but the batch filled in by one ONNX Runtime run at
    input_hw (a file exported with a dynamic image size says N = ? for its anchors)."""
    if all(d is not None for dims in fg.outputs.values() for d in dims[1:]):
        return fg.outputs
    ort = lazy_import("onnxruntime")
    try:
        sess = ort.InferenceSession(fg.model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(list(fg.outputs), {fg.image_input: np.zeros((1, 3, *input_hw), np.float32)})
    except Exception as exc:  # noqa: BLE001 - ORT raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeVisionError(f"{fg.path.name} does not run at {input_hw[0]}x{input_hw[1]} on ONNX Runtime "
                              f"({first})") from exc
    return {n: [dims[0], *[int(v) for v in g.shape[1:]]] for (n, dims), g in zip(fg.outputs.items(), got)}


def _constant_values(model: Any) -> dict[str, np.ndarray]:
    numpy_helper = lazy_import("onnx.numpy_helper")
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def dynamic_batch(fg: ForeignGraph, input_hw: tuple[int, int]) -> Any | None:
    """A copy of the foreign model with a symbolic batch axis that gives batch 2 what two batch-1
    runs give (checked on ONNX Runtime at input_hw), or None where the graph cannot be made so."""
    onnx = lazy_import("onnx")
    numpy_helper = lazy_import("onnx.numpy_helper")
    ort = lazy_import("onnxruntime")
    m = onnx.ModelProto()
    m.CopyFrom(fg.model)
    consts = _constant_values(m)
    for k, n in enumerate(m.graph.node):
        if n.op_type == "Reshape" and n.input[1] in consts:
            shape = consts[n.input[1]]
            if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
                fixed = shape.astype(np.int64).copy()
                fixed[0] = 0  # Reshape's 0 copies the input's dim: the batch
                name = f"{n.input[1]}__batch{k}"
                m.graph.initializer.append(numpy_helper.from_array(fixed, name))
                n.input[1] = name
    _drop_unused_constants(m)
    for v in [*[i for i in m.graph.input if i.name == fg.image_input], *m.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and (dims[0].dim_value in (0, 1)):
            dims[0].dim_param = "batch"
    del m.graph.value_info[:]  # inferred shapes there still say batch 1
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, *input_hw), dtype=np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # a graph that fails the probe is expected here, not an error to print
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        quiet = ort.RunOptions()
        quiet.log_severity_level = 3
        both = sess.run(None, {fg.image_input: x}, quiet)
        ones = [sess.run(None, {fg.image_input: x[i : i + 1]}, quiet) for i in range(2)]
    except Exception:  # noqa: BLE001 - any failure means: keep batch 1
        return None
    for j, out in enumerate(both):
        single = np.concatenate([o[j] for o in ones])
        if out.shape != single.shape or not np.allclose(out, single, rtol=1e-4, atol=1e-4):
            return None
    return m


def _drop_unused_constants(m: Any) -> None:
    """Remove Constant nodes nothing reads any more (the batch-1 shapes dynamic_batch replaced)."""
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    dead = [n for n in m.graph.node if n.op_type == "Constant" and n.output[0] not in used]
    for n in dead:
        m.graph.node.remove(n)


def export_head(head: Any, example: tuple[Any, ...], input_names: list[str], output_names: list[str],
                opset: int) -> Any:
    """torch.onnx.export of a heads.py module (dynamic batch) -> onnx.ModelProto at `opset`."""
    onnx = lazy_import("onnx")
    torch = lazy_import("torch")
    buf = io.BytesIO()
    dyn = {n: {0: "batch"} for n in [*input_names[:-2], *output_names]}  # not conf / iou: float32[1]
    with torch.no_grad():
        torch.onnx.export(head, example, buf, opset_version=min(opset, MAX_TORCH_OPSET), dynamo=False,
                          input_names=input_names, output_names=output_names, dynamic_axes=dyn)
    model = onnx.load_from_string(buf.getvalue())
    if opset > MAX_TORCH_OPSET:
        model = lazy_import("onnx.version_converter").convert_version(model, opset)
    return model


def head_opset(fg: ForeignGraph) -> int:
    """The opset both graphs share: the foreign one's, at least MIN_OPSET."""
    return max(fg.opset, MIN_OPSET)


def join(foreign: Any, fg: ForeignGraph, head: Any, raw_outputs: tuple[str, ...], head_inputs: list[str],
         input_hw: tuple[int, int]) -> Any:
    """foreign ModelProto (fg's, possibly made batch-dynamic) + head ModelProto -> one model whose
    input is `images` float32[B, 3, H, W] at input_hw (an artifact's size is fixed: TensorRT
    profiles only the batch) (+ the head's thresholds) and whose outputs are the head's."""
    onnx = lazy_import("onnx")
    compose = lazy_import("onnx.compose")
    opset = head_opset(fg)
    if fg.opset < opset:
        foreign = lazy_import("onnx.version_converter").convert_version(foreign, opset)
    g = compose.add_prefix_graph(foreign.graph, SRC_PREFIX, rename_inputs=False, rename_outputs=True)
    for v in g.input:
        if v.name == fg.image_input:
            v.name = IN_IMAGES
            dims = v.type.tensor_type.shape.dim
            for axis, size in ((1, 3), (2, input_hw[0]), (3, input_hw[1])):
                dims[axis].Clear()
                dims[axis].dim_value = size
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == fg.image_input:
                n.input[i] = IN_IMAGES
    h = compose.add_prefix_graph(head.graph, HEAD_PREFIX, rename_inputs=False, rename_outputs=False)
    ir = max(foreign.ir_version, head.ir_version)
    opsets = {o.domain: o.version for o in foreign.opset_import}
    for o in head.opset_import:
        opsets.setdefault(o.domain, o.version)
    m1 = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                ir_version=ir)
    m2 = onnx.helper.make_model(h, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                ir_version=ir)
    io_map = [(SRC_PREFIX + name, head_inputs[i]) for i, name in enumerate(raw_outputs)]
    merged = compose.merge_models(m1, m2, io_map=io_map, outputs=[o.name for o in head.graph.output])
    # merge_models lists each model's opsets: one entry per domain, or onnxruntime's quantizer
    # ("Failed to find proper ai.onnx domain") and other tools refuse the file.
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    merged.producer_name = "edgevision"
    return merged
