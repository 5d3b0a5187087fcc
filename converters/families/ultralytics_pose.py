"""Ultralytics YOLO pose (Pose head) -> edgevision's `pose` graph.

The head in export mode outputs preds float32[B, 4+C+K*dims, N]: boxes, class scores and the
decoded keypoints (x, y in input pixels, visibility after its sigmoid when dims == 3). The
keypoints ride through the same decode + NMS as segmentation's mask coefficients
(DetectPostprocess with M = K*dims extra channels), then become float32[B, D, K, 3].
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
from .ultralytics_export import detect_postprocess, head_outputs
from .ultralytics_export import yolo_names
from .ultralytics_shared import export_ready, graph_sizes, nms_settings, yolo_task_manifest

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
        k, dims = self.kpt_shape
        kpts = kpts.reshape(kpts.shape[0], kpts.shape[1], k, dims)
        if dims == 2:
            kpts = torch.cat([kpts, torch.ones_like(kpts[..., :1])], -1)
        return boxes, scores, classes, num, kpts, limits


def pose_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model on each frame (the manifest's letterbox), decoded with the numpy
    greedy-NMS reference; keypoints are the kept anchors' own, mapped to the frame."""
    from ..reference import decode_nms

    k, dims = manifest.extra["kpt_shape"]
    out: list[Result] = []
    for preds, geo in head_outputs(model, frames, manifest):
        ref = decode_nms(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold,
                         manifest.max_det, manifest.extra.get("pre_nms_topk"))
        kpts = preds[4 + manifest.num_classes :, ref.anchors].T.reshape(-1, k, dims)
        if dims == 2:
            kpts = np.concatenate([kpts, np.ones_like(kpts[..., :1])], -1)
        out.append(Detections(geo.boxes_to_frame(ref.boxes), ref.scores, ref.class_ids, None, manifest.class_names,
                              keypoints=geo.points_to_frame(kpts)))
    return out


def prepare_pose(ckpt: Checkpoint, req: Request) -> Exportable:
    model = export_ready(ckpt.obj, ckpt.path)
    kpt_shape = (int(model.model[-1].kpt_shape[0]), int(model.model[-1].kpt_shape[1]))
    names = yolo_names(model)
    s = nms_settings(req)
    h, w, anchors, _ = graph_sizes(req, model, s.pre_nms_topk)
    post, sizes = detect_postprocess(len(names), kpt_shape[0] * kpt_shape[1], s, anchors)
    wrapper = PoseWithPostprocess(model, post, kpt_shape).eval()
    source = {"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"}
    manifest = yolo_task_manifest("pose", names, (h, w), post.max_det, s.conf, s.iou, source,
                                  kpt_shape=list(kpt_shape), **sizes)
    example = (torch.rand(2, 3, h, w), torch.tensor([s.conf]), torch.tensor([s.iou]))
    outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM, OUT_KEYPOINTS, OUT_LIMITS]
    return Exportable(wrapper, example, [IN_IMAGES, IN_CONF, IN_IOU], outputs, manifest,
                      lambda frames: pose_reference(model, frames, manifest))
