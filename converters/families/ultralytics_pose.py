"""Ultralytics YOLO pose (Pose head; YOLO26's Pose26) -> edgevision's `pose` graph.

The head in export mode outputs preds float32[B, 4+C+K*dims, N]: boxes, class scores and the
decoded keypoints (x, y in input pixels, visibility after its sigmoid when dims == 3). The
keypoints ride through the same decode + NMS as segmentation's mask coefficients
(DetectPostprocess with M = K*dims extra channels), then become float32[B, D, K, 3].
A Pose26 head runs its one-to-one branch by default (top-k, no NMS: ultralytics_e2e), its
one-to-many branch through this NMS with --head one2many.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_KEYPOINTS, OUT_LIMITS, OUT_NUM, OUT_SCORES, Manifest,
    sha256_file,
)
from edgevision.results import Result

from ..nms import DetectPostprocess
from .base import Checkpoint, Exportable, Request
from .ultralytics_e2e import keypoints_kx3
from .ultralytics_export import detect_postprocess, head_outputs
from .ultralytics_export import yolo_names
from .ultralytics_shared import e2e_exportable, graph_sizes, nms_settings, task_model, yolo_task_manifest

torch = lazy_import("torch")


class PoseWithPostprocess(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] (+ conf, iou float32[1]) -> boxes, scores, class_ids, num_dets,
    keypoints float32[B, D, K, 3] (x, y input pixels, visibility; 1 where the model has no
    visibility channel), nms_limits (last)."""

    def __init__(self, model: Any, post: DetectPostprocess, kpt_shape: tuple[int, int]) -> None:
        super().__init__()
        self.model, self.post, self.kpt_shape = model, post, kpt_shape

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        out = self.model(images)
        preds = out[0] if isinstance(out, (tuple, list)) else out
        boxes, scores, classes, num, kpts, limits = self.post(preds, conf, iou)
        return boxes, scores, classes, num, keypoints_kx3(kpts, self.kpt_shape), limits


def pose_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model on each frame (the manifest's letterbox), decoded with the numpy
    greedy-NMS reference; keypoints are the kept anchors' own, mapped to the frame."""
    from ..reference import decode_nms

    k, dims = manifest.extra["kpt_shape"]
    out: list[Result] = []
    for preds, geo in head_outputs(model, frames, manifest):
        ref = decode_nms(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold,
                         manifest.max_det, manifest.extra.get("pre_nms_topk"))
        kpts = keypoints_kx3(preds[4 + manifest.num_classes :, ref.anchors].T, (k, dims))
        out.append(Detections(geo.boxes_to_frame(ref.boxes), ref.scores, ref.class_ids, None, manifest.class_names,
                              keypoints=geo.points_to_frame(kpts)))
    return out


def prepare_pose(ckpt: Checkpoint, req: Request) -> Exportable:
    s = nms_settings(req)
    model, e2e = task_model(ckpt, req, s.max_det)
    kpt_shape = (int(model.model[-1].kpt_shape[0]), int(model.model[-1].kpt_shape[1]))
    names = yolo_names(model)
    h, w, anchors, _ = graph_sizes(req, model, s.pre_nms_topk)
    if e2e:
        return e2e_exportable("pose", ckpt, model, names, (h, w), anchors, s, kpt_shape=list(kpt_shape))
    post, sizes = detect_postprocess(len(names), kpt_shape[0] * kpt_shape[1], s, anchors)
    if getattr(req.options, "head", None) == "one2many":
        sizes["head"] = "one2many"  # an end-to-end head's other branch, with edgevision's NMS
    wrapper = PoseWithPostprocess(model, post, kpt_shape).eval()
    source = {"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"}
    manifest = yolo_task_manifest("pose", names, (h, w), post.max_det, s.conf, s.iou, source,
                                  kpt_shape=list(kpt_shape), **sizes)
    example = (torch.rand(2, 3, h, w), torch.tensor([s.conf]), torch.tensor([s.iou]))
    outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM, OUT_KEYPOINTS, OUT_LIMITS]
    return Exportable(wrapper, example, [IN_IMAGES, IN_CONF, IN_IOU], outputs, manifest,
                      lambda frames: pose_reference(model, frames, manifest))
