"""Family: ONNX files from other exporters (converters/foreign).

An Ultralytics export (`YOLO(...).export(format="onnx")`, plain or nms=True, YOLO26 / YOLOv10
end-to-end heads) says what it is in its own metadata_props: no spec and no flags needed. Any
other file needs `--describe spec.yaml` (converters/foreign/spec.py). edgevision's post-
processing is exported on its own and joined after the foreign graph; the reference is the
foreign file itself on ONNX Runtime (converters/foreign/reference.py).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_COEFFS, OUT_LIMITS, OUT_NUM, OUT_PROTOS, OUT_SCORES,
    Manifest, sha256_file,
)

from ..foreign.graph import ForeignGraph, dynamic_batch, export_head, head_opset, join, probe_outputs
from ..foreign.heads import NmsHead, TopKHead
from ..foreign.reference import foreign_reference
from ..foreign.spec import LAYOUTS, Fitted, ForeignSpec, check_outputs, load_spec, static_hw, ultralytics_spec
from .base import Checkpoint, Exportable, Request
from .ultralytics_export import detect_postprocess, nms_settings

torch = lazy_import("torch")

# Operators of a foreign graph that TensorRT-RTX does not build (measured: NonZero needs a plugin RTX
# lacks; NonMaxSuppression parses but has no runner; both have data-dependent shapes in TensorRT 10).
NOT_FOR_TENSORRT = ("NonMaxSuppression", "NonZero")


def spec_for(fg: ForeignGraph, req: Request) -> ForeignSpec:
    """--describe's spec, else the file's Ultralytics metadata, else one sentence saying what to pass."""
    describe = getattr(req.options, "describe", None)
    spec = load_spec(describe) if describe else ultralytics_spec(fg.meta, fg.path)
    if spec is None:
        outs = ", ".join(f"{n} [{', '.join('?' if d is None else str(d) for d in dims)}]"
                         for n, dims in fg.outputs.items())
        raise EdgeVisionError(
            f"{fg.path} carries no Ultralytics metadata, so edgevision cannot tell what its outputs ({outs}) mean: "
            f"describe them with --describe spec.yaml (layout: {' | '.join(LAYOUTS)}; see the README's "
            "\"ONNX files from other exporters\")")
    if req.class_names:
        spec = dataclasses.replace(spec, class_names=tuple(req.class_names))
    if req.task and req.task != spec.task:
        spec = dataclasses.replace(spec, task=req.task)
    return spec


def _example(dims: list[int | None], batch: int = 2) -> Any:
    return torch.rand(batch, *[1 if d is None else int(d) for d in dims[1:]])


class OnnxFileFamily:
    """ONNX files: Ultralytics exports from their metadata, other exporters' with --describe."""

    name = "onnx"
    summary = "ONNX files (Ultralytics exports as they are; others with --describe spec.yaml)"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return ckpt.kind == "onnx"

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        fg: ForeignGraph = ckpt.obj
        spec = spec_for(fg, req)
        hw = spec.input_hw or static_hw(fg.input_shape)
        fit = check_outputs(spec, probe_outputs(fg, hw) if hw else fg.outputs, fg.input_shape, fg.path)
        if req.imgsz is not None and tuple(req.imgsz) != fit.input_hw:
            raise EdgeVisionError(f"--imgsz {req.imgsz[0]}x{req.imgsz[1]}: {fg.path.name} takes "
                                  f"{fit.input_hw[0]}x{fit.input_hw[1]} (an ONNX file's input size is fixed)")
        if fit.rows is None:
            raise EdgeVisionError(f"{fg.path.name}: the number of rows of {fit.outputs[0]} is symbolic; edgevision "
                                  "needs it fixed to size its top-k (export with a fixed input size)")
        opts = req.options
        s = nms_settings(req)  # the user's options, Ultralytics' defaults where left at None
        conf, iou, max_det = s.conf, s.iou, s.max_det
        extra: dict[str, Any] = {"layout": spec.layout, "foreign_outputs": list(fit.outputs), **spec.extra}
        notes: list[str] = [f"spec: {spec.origin}, layout {spec.layout}"]
        if opts.opset != 17 and opts.opset != head_opset(fg):  # 17: the option's default
            notes.append(f"--opset {opts.opset} ignored: the artifact keeps the file's opset {head_opset(fg)}")
        head: Any
        if spec.layout in ("yolo", "ssd"):
            post, sizes = detect_postprocess(fit.num_classes, fit.num_masks, s, fit.rows)
            head, max_det = NmsHead(spec, post, fit.input_hw), post.max_det
            extra.update(sizes)
        else:
            max_det = min(max_det, fit.rows)
            head = TopKHead(spec, max_det, fit.num_classes, fit.input_hw)
            if spec.layout == "end2end" and spec.ultralytics:
                notes.append("Ultralytics' end-to-end export: rows below the conf it was exported with are not "
                             "in the file; a lower --conf finds no more")
        awkward = sorted({n.op_type for n in fg.model.graph.node} & set(NOT_FOR_TENSORRT))
        if awkward:
            notes.append(f"{fg.path.name} holds {', '.join(awkward)}, which TensorRT-RTX cannot build; for TensorRT, "
                         "export the raw head instead (Ultralytics: nms=False) and let edgevision add the NMS")
        dyn = dynamic_batch(fg, fit.input_hw)
        if dyn is None:
            notes.append(f"{fg.path.name} runs batch 1 only (its graph fixes the batch); the artifact takes "
                         "one frame at a time")
        raw = [_example(fit.dims[n]) for n in fit.outputs]
        example = (*raw, torch.tensor([conf]), torch.tensor([iou]))
        outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM]
        outputs += [OUT_COEFFS, OUT_PROTOS] if spec.task == "segment" else []
        outputs.append(OUT_LIMITS)
        head_inputs = [f"raw{i}" for i in range(len(raw))] + [IN_CONF, IN_IOU]
        manifest = Manifest(
            task=spec.task, class_names=spec.class_names or tuple(str(i) for i in range(fit.num_classes)),
            input_hw=fit.input_hw, max_det=max_det, preprocess=spec.preprocess,
            proto_shape=_protos(fg, fit) if spec.task == "segment" else None,
            conf_threshold=conf, iou_threshold=iou, dynamic_batch=dyn is not None, family="onnx",
            source={"file": fg.path.name, "sha256": sha256_file(fg.path), "kind": "onnx"}, extra=extra,
        )

        def write(out_path: Path) -> None:
            onnx = lazy_import("onnx")
            head_model = export_head(head.eval(), example, head_inputs, outputs, head_opset(fg))
            onnx.save(join(dyn if dyn is not None else fg.model, fg, head_model, fit.outputs, head_inputs,
                           fit.input_hw), str(out_path))

        return Exportable(head, example, [IN_IMAGES, IN_CONF, IN_IOU], outputs, manifest,
                          lambda frames: foreign_reference(fg.path, spec, fit.outputs, manifest, frames), notes,
                          write=write)


def _protos(fg: ForeignGraph, fit: Fitted) -> tuple[int, int, int]:
    dims = fit.dims[fit.outputs[1]]
    if any(v is None for v in dims[1:]):
        raise EdgeVisionError(f"{fg.path.name}: the prototype masks {fit.outputs[1]} need a fixed shape [B, M, Hp, Wp]")
    return int(dims[1]), int(dims[2]), int(dims[3])  # type: ignore[arg-type]
