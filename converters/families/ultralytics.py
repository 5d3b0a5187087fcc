"""Family: Ultralytics YOLO (v8 / 11, detect and segment) checkpoint -> exportable torch module.

Needs the `ultralytics` package only to rebuild the pickled layer classes (AGPL-3.0,
optional extra `edgevision[yolo]`). The checkpoint is loaded with converters.checkpoint,
never with Ultralytics' own loader, which unpickles with weights_only=False.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collections.abc import Sequence

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_COEFFS, OUT_LIMITS, OUT_NUM, OUT_PROTOS, OUT_SCORES,
    Manifest,
    Preprocess, sha256_file,
)
from edgevision.results import Result

from ..checkpoint import load_checkpoint
from ..nms import DetectPostprocess
from .base import Checkpoint, Exportable, Request
from .ultralytics_e2e import E2EOutputs, e2e_reference, select_branch
from .ultralytics_export import YOLO_DEFAULTS, detect_postprocess, export_mode, head_outputs, nms_settings, yolo_names  # noqa: F401 (YOLO_DEFAULTS: its import point)
from .ultralytics_rtdetr import is_rtdetr, prepare_rtdetr

torch = lazy_import("torch")


@dataclass
class YoloSource:
    """A loaded YOLO model ready for export. model(images) -> (preds[B, 4+C+M, N], protos?)."""

    model: Any
    task: str
    class_names: tuple[str, ...]
    num_masks: int
    strides: tuple[int, ...]
    end2end: bool = False  # the one-to-one branch of a YOLOv10/YOLO26 head: top-k, no NMS


# Ultralytics head classes converted here -> task (v10Detect, Segment26: end-to-end capable)
HEADS = {"Detect": "detect", "v10Detect": "detect", "Segment": "segment", "Segment26": "segment"}


def is_yolo_checkpoint(ckpt: Any) -> bool:
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    return model is not None and type(model).__module__.startswith("ultralytics.")


def load_yolo(path: str | Path, trust: bool = False) -> YoloSource:
    """Load an Ultralytics checkpoint and put its head in export mode (decoded boxes, no NMS)."""
    return yolo_source(load_checkpoint(path, trust=trust), path)


def yolo_source(ckpt: Any, path: str | Path, head_choice: str | None = None, max_det: int = 300) -> YoloSource:
    """An unpickled Ultralytics checkpoint -> YoloSource with its head in export mode.
    head_choice: the branch of an end-to-end head (ultralytics_e2e.select_branch)."""
    if not is_yolo_checkpoint(ckpt):
        kind = type(ckpt).__name__
        raise EdgeVisionError(f"{path} is not an Ultralytics YOLO checkpoint (found a {kind}); see `edgevision convert --help`")
    model = (ckpt.get("ema") or ckpt["model"]).float()
    head = model.model[-1]
    head_name = type(head).__name__
    if head_name not in HEADS:
        raise EdgeVisionError(f"{path} is a YOLO {head_name} model; edgevision converts {', '.join(HEADS)} heads")
    task = HEADS[head_name]
    end2end = select_branch(head, head_choice, max_det)  # before fusing, which drops the other branch
    model = export_mode(model)
    return YoloSource(
        model=model,
        task=task,
        class_names=yolo_names(model),
        num_masks=int(getattr(head, "nm", 0)) if task == "segment" else 0,
        strides=tuple(int(s) for s in model.stride.tolist()),
        end2end=end2end,
    )


class YoloWithPostprocess(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] (+ thresholds) -> edgevision's fixed detection outputs."""

    def __init__(self, src: YoloSource, post: DetectPostprocess) -> None:
        super().__init__()
        self.model, self.post, self.seg = src.model, post, src.task == "segment"

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        out = self.model(images)
        if self.seg:
            preds, protos = out[0], out[1]
            # nms_limits stays the last output, after protos: the outputs before it keep their places.
            *dets, limits = self.post(preds, conf, iou)
            return (*dets, protos, limits)
        preds = out[0] if isinstance(out, (tuple, list)) else out
        return self.post(preds, conf, iou)


def yolo_manifest(src: YoloSource, imgsz: tuple[int, int], max_det: int, proto_shape: Any, **extra: Any) -> Manifest:
    """The manifest of a converted YOLO: Ultralytics' letterbox (pad 114, RGB, /255)."""
    return Manifest(
        task=src.task,
        class_names=src.class_names,
        input_hw=imgsz,
        max_det=max_det,
        preprocess=Preprocess(resize="letterbox", pad_value=114, color="RGB", scale=1 / 255.0),
        proto_shape=tuple(proto_shape) if proto_shape is not None else None,
        family="ultralytics-yolo",
        extra=extra,
    )


def reference_detections(src: YoloSource, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model on each frame, decoded with the numpy greedy-NMS reference."""
    from ..reference import decode_nms

    out: list[Result] = []
    for preds, geo in head_outputs(src.model, frames, manifest):
        ref = decode_nms(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold, manifest.max_det,
                         manifest.extra.get("pre_nms_topk"))
        out.append(Detections(geo.boxes_to_frame(ref.boxes), ref.scores, ref.class_ids, None, manifest.class_names))
    return out




class UltralyticsFamily:
    """Ultralytics YOLO v8/11 detect and segment checkpoints (.pt), decode + NMS in the graph;
    YOLOv10 / YOLO26 end-to-end heads with their top-k (or, --head one2many, with NMS)."""

    name = "ultralytics"
    summary = "Ultralytics YOLO v8/11, YOLOv10 and YOLO26 detect and segment, RT-DETR (.pt)"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return ckpt.kind == "ultralytics" and (req.arch is None or req.arch.split(":")[0] == self.name)

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        opts = req.options
        s = nms_settings(req)  # the user's options, Ultralytics' defaults where left at None
        max_det, conf, iou = s.max_det, s.conf, s.iou
        if is_rtdetr(ckpt):
            return prepare_rtdetr(ckpt, req, max_det, conf)
        src = yolo_source(ckpt.obj, ckpt.path, getattr(opts, "head", None), max_det)
        h, w = req.imgsz or (640, 640)
        if h % max(src.strides) or w % max(src.strides):
            raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of the model's stride {max(src.strides)}")
        anchors = sum((h // s) * (w // s) for s in src.strides)
        seg = src.task == "segment"
        outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM] + ([OUT_COEFFS, OUT_PROTOS] if seg else [])
        if src.end2end:
            # one-to-one head: Ultralytics' own constant-K top-k and a conf filter, no NMS (ultralytics_e2e)
            wrapper: Any = E2EOutputs(src.model, src.task).eval()
            example: tuple[Any, ...] = (torch.rand(2, 3, h, w), torch.tensor([conf]))
            inputs = [IN_IMAGES, IN_CONF]
            rows = min(max_det, anchors)
            extra: dict[str, Any] = {"head": "one2one", "nms": "none (end-to-end head: top-k)", "anchors": anchors}
        else:
            post, extra = detect_postprocess(len(src.class_names), src.num_masks, s, anchors)
            wrapper = YoloWithPostprocess(src, post).eval()
            example = (torch.rand(2, 3, h, w), torch.tensor([conf]), torch.tensor([iou]))
            inputs = [IN_IMAGES, IN_CONF, IN_IOU]
            outputs.append(OUT_LIMITS)  # last: consumers that read the earlier outputs by position keep working
            rows = post.max_det
            if getattr(opts, "head", None) == "one2many":
                extra["head"] = "one2many"  # an end-to-end head's other branch, with edgevision's NMS
        with torch.no_grad():
            protos_shape = wrapper(*example)[outputs.index(OUT_PROTOS)].shape[1:] if seg else None
        manifest = yolo_manifest(src, (h, w), rows, protos_shape, **extra).replace(
            conf_threshold=conf, iou_threshold=iou,
            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"},
        )
        if src.end2end:
            return Exportable(wrapper, example, inputs, outputs, manifest,
                              lambda frames: e2e_reference(src.model, frames, manifest))
        return Exportable(wrapper, example, inputs, outputs, manifest,
                          lambda frames: reference_detections(src, frames, manifest))
