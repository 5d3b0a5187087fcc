"""Ultralytics YOLO OBB (rotated boxes; YOLO26's OBB26) -> edgevision's `obb` graph.

The head in export mode outputs preds float32[B, 4+C+1, N]: rotated boxes (cx, cy, w, h in
input pixels), class scores, and the angle (radians, in [-pi/4, 3pi/4)). Ultralytics' rotated
NMS (probiou fast-NMS, converters.nms_rotated) runs in the graph. An OBB26 head (its angle is
the raw regression, no sigmoid) runs its one-to-one branch by default (top-k, no NMS:
ultralytics_e2e), its one-to-many branch through the rotated NMS with --head one2many.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_CLASSES, OUT_LIMITS, OUT_NUM, OUT_SCORES, OUT_XYWHR, Manifest, sha256_file,
)
from edgevision.results import Result
from edgevision.rotated import xywhr_bounds

from ..nms_rotated import RotatedPostprocess
from .base import Checkpoint, Exportable, Request
from .ultralytics_export import head_outputs
from .ultralytics_export import yolo_names
from .ultralytics_shared import e2e_exportable, graph_sizes, nms_settings, task_model, yolo_task_manifest

torch = lazy_import("torch")


class ObbWithPostprocess(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] (+ conf, iou float32[1]) -> xywhr float32[B, D, 5], scores,
    class_ids, num_dets, nms_limits (last)."""

    def __init__(self, model: Any, post: RotatedPostprocess) -> None:
        super().__init__()
        self.model, self.post = model, post

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        out = self.model(images)
        return self.post(out[0] if isinstance(out, (tuple, list)) else out, conf, iou)


def obb_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model on each frame (the manifest's letterbox), decoded with the numpy rotated-NMS
    twin (converters.reference.decode_nms_rotated), mapped to the frame."""
    from ..reference import decode_nms_rotated

    out: list[Result] = []
    for preds, geo in head_outputs(model, frames, manifest):
        ref = decode_nms_rotated(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold,
                                 manifest.max_det, manifest.extra.get("pre_nms_topk"))
        xywhr = geo.xywhr_to_frame(ref.boxes)
        out.append(Detections(xywhr_bounds(xywhr), ref.scores, ref.class_ids, None, manifest.class_names, xywhr=xywhr))
    return out


def prepare_obb(ckpt: Checkpoint, req: Request) -> Exportable:
    s = nms_settings(req)
    model, e2e = task_model(ckpt, req, s.max_det)
    names = yolo_names(model)
    h, w, anchors, topk = graph_sizes(req, model, s.pre_nms_topk)
    if e2e:
        return e2e_exportable("obb", ckpt, model, names, (h, w), anchors, s)
    post = RotatedPostprocess(len(names), min(s.max_det, topk), topk)
    source = {"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"}
    head = {"head": "one2many"} if getattr(req.options, "head", None) == "one2many" else {}
    manifest = yolo_task_manifest("obb", names, (h, w), post.max_det, s.conf, s.iou, source,
                                  pre_nms_topk=topk, anchors=anchors, **head)
    example = (torch.rand(2, 3, h, w), torch.tensor([s.conf]), torch.tensor([s.iou]))
    outputs = [OUT_XYWHR, OUT_SCORES, OUT_CLASSES, OUT_NUM, OUT_LIMITS]
    return Exportable(ObbWithPostprocess(model, post).eval(), example, [IN_IMAGES, IN_CONF, IN_IOU], outputs,
                      manifest, lambda frames: obb_reference(model, frames, manifest))
