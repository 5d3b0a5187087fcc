"""Numpy twin of converters.nms.DetectPostprocess, with plain greedy NMS.

This is the reference the in-graph post-processing is tested against: sequential
greedy NMS as torchvision and Ultralytics do it, no fixed-point trick, no padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevision.metrics import box_iou


@dataclass
class RefDetections:
    """One image's detections in network-input pixels. boxes float32[N, 4] xyxy."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    anchors: np.ndarray  # int64[N], which anchor each detection came from


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware greedy NMS. Returns int64 indices of kept boxes, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    ious = box_iou(boxes[order], boxes[order]) if len(order) else np.zeros((0, 0))
    same = classes[order][:, None] == classes[order][None, :]
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(int(order[rank]))
        suppressed |= (ious[rank] > iou) & same[rank]
    return np.asarray(keep, dtype=np.int64)


def decode_nms(
    preds: np.ndarray, num_classes: int, conf: float, iou: float, max_det: int, pre_nms_topk: int | None = None
) -> RefDetections:
    """One image: preds float32[4+C+M, N] (cx, cy, w, h, scores, coeffs) -> greedy-NMS detections.

    pre_nms_topk: only the K best-scored anchors are candidates, as in the graph (None: all).
    """
    p = preds.T
    cls_scores = p[:, 4 : 4 + num_classes]
    cls = cls_scores.argmax(1)
    score = cls_scores.max(1)
    cand = np.nonzero(score > conf)[0]
    if pre_nms_topk is not None and len(cand) > pre_nms_topk:
        cand = cand[np.argsort(-score[cand], kind="stable")[:pre_nms_topk]]
    xy, wh = p[cand, :2], p[cand, 2:4] / 2
    boxes = np.concatenate([xy - wh, xy + wh], 1).astype(np.float32)
    kept = greedy_nms(boxes, score[cand], cls[cand], iou)[:max_det]
    return RefDetections(boxes[kept], score[cand][kept].astype(np.float32), cls[cand][kept].astype(np.int32), cand[kept])


def nms_chain_depth(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> int:
    """Fixed-point iterations the in-graph NMS needs to reach the greedy result on this input."""
    order = np.argsort(-scores, kind="stable")
    b, c = boxes[order], classes[order]
    sup = (box_iou(b, b) > iou) & (c[:, None] == c[None, :])
    sup = np.triu(sup, 1)
    keep = np.ones(len(b), dtype=bool)
    for it in range(1, len(b) + 2):
        new = ~(sup & keep[:, None]).any(0)
        if (new == keep).all():
            return it - 1
        keep = new
    return len(b)
