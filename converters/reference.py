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
    """Class-aware greedy NMS. Returns int64 indices of kept boxes, best score first.

    boxes float32[N, 4] xyxy, scores float32[N], classes int[N]. A pair is suppressed when
    its float32 IoU (edgevision.metrics.box_iou: inter / union, as torchvision) is > iou.
    """
    iou = np.float32(iou)  # float32 IoUs against a float32 threshold, as in the graph, on any numpy
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


def candidates(
    preds: np.ndarray, num_classes: int, conf: float, pre_nms_topk: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One image's NMS candidates, as the graph takes them.

    preds float32[4+C+M, N]. Returns (anchors int64[n], boxes float32[n, 4] xyxy, scores
    float32[n], classes int64[n], how many anchors scored above conf before the cap), in anchor
    order; past pre_nms_topk, only the K best-scored, best first (ties: lower anchor first, as TopK).
    """
    p = preds.T
    cls_scores = p[:, 4 : 4 + num_classes]
    cls = cls_scores.argmax(1)
    score = cls_scores.max(1)
    cand = np.nonzero(score > np.float32(conf))[0]  # float32, as the graph compares
    above = len(cand)
    if pre_nms_topk is not None and len(cand) > pre_nms_topk:
        cand = cand[np.argsort(-score[cand], kind="stable")[:pre_nms_topk]]
    xy, wh = p[cand, :2], p[cand, 2:4] / 2
    boxes = np.concatenate([xy - wh, xy + wh], 1).astype(np.float32)
    return cand, boxes, score[cand].astype(np.float32), cls[cand], above


def decode_nms(
    preds: np.ndarray, num_classes: int, conf: float, iou: float, max_det: int, pre_nms_topk: int | None = None
) -> RefDetections:
    """One image: preds float32[4+C+M, N] (cx, cy, w, h, scores, coeffs) -> greedy-NMS detections.

    pre_nms_topk: only the K best-scored anchors are candidates, as in the graph (None: all).
    """
    cand, boxes, scores, classes, _ = candidates(preds, num_classes, conf, pre_nms_topk)
    kept = greedy_nms(boxes, scores, classes, iou)[:max_det]
    return RefDetections(boxes[kept], scores[kept], classes[kept].astype(np.int32), cand[kept])


def nms_chain_depth(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float,
                    block: int | None = None) -> int:
    """Fixed-point iterations the in-graph NMS needs to reach the greedy result on this input.

    boxes float32[N, 4] xyxy, scores float32[N], classes int[N] (the candidates above conf).
    block: ranks per block, as DetectPostprocess takes them (None: one block, the whole
    K x K fixed point). With blocks, each block iterates with the final keeps of the blocks
    above it; the answer is the deepest block, never more than with block=None.
    """
    order = np.argsort(-scores, kind="stable")
    b, c = boxes[order], classes[order]
    sup = (box_iou(b, b) > np.float32(iou)) & (c[:, None] == c[None, :])
    sup = np.triu(sup, 1)
    n = len(b)
    size = n if block is None else block
    final = np.zeros(n, dtype=bool)
    deepest = 0
    for s in range(0, n, max(size, 1)):
        e = min(s + size, n)
        free = ~(sup[:s, s:e] & final[:s, None]).any(0)
        own = sup[s:e, s:e]
        keep = free.copy()
        for it in range(1, e - s + 2):
            new = free & ~(own & keep[:, None]).any(0)
            if (new == keep).all():
                deepest = max(deepest, it - 1)
                break
            keep = new
        final[s:e] = keep
    return deepest


def nms_limits_reached(
    preds: np.ndarray, num_classes: int, conf: float, iou: float, max_det: int, pre_nms_topk: int, nms_iters: int,
    block: int,
) -> tuple[bool, bool]:
    """Which of DetectPostprocess's limits one image reaches: (capped, unconverged), the
    conditions behind nms_limits' bits NMS_CAPPED and NMS_UNCONVERGED (converters.nms).

    preds float32[4+C+M, N]. capped: more than pre_nms_topk anchors above conf, and fewer than
    max_det survive greedy NMS among the pre_nms_topk best. unconverged: the blocked fixed point
    over those candidates needs more than nms_iters iterations.
    """
    _, boxes, scores, classes, above = candidates(preds, num_classes, conf, pre_nms_topk)
    capped = above > pre_nms_topk and len(greedy_nms(boxes, scores, classes, iou)) < max_det
    return capped, nms_chain_depth(boxes, scores, classes, iou, block) > nms_iters


# --- rotated boxes (OBB): the numpy twin of converters.nms_rotated.RotatedPostprocess ---

def probiou(a: np.ndarray, b: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """float32[N, 5], float32[M, 5] xywhr -> float32[N, M] probabilistic IoU (Ultralytics'
    batch_probiou, in float32, term by term)."""
    f = np.float32
    eps = f(eps)

    def cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ga, gb = x[:, 2] ** 2 / f(12), x[:, 3] ** 2 / f(12)
        cos, sin = np.cos(x[:, 4]), np.sin(x[:, 4])
        return ga * cos**2 + gb * sin**2, ga * sin**2 + gb * cos**2, (ga - gb) * cos * sin

    a, b = a.astype(f), b.astype(f)
    a1, b1, c1 = (v[:, None] for v in cov(a))
    a2, b2, c2 = (v[None, :] for v in cov(b))
    x1, y1 = a[:, 0:1], a[:, 1:2]
    x2, y2 = b[None, :, 0], b[None, :, 1]
    den = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
    t1 = (((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / (den + eps)) * f(0.25)
    t2 = (((c1 + c2) * (x2 - x1) * (y1 - y2)) / (den + eps)) * f(0.5)
    root = np.sqrt(np.clip(a1 * b1 - c1**2, 0, None) * np.clip(a2 * b2 - c2**2, 0, None))
    with np.errstate(divide="ignore"):
        t3 = np.log(den / (f(4) * root + eps) + eps) * f(0.5)
    bd = np.clip(t1 + t2 + t3, eps, f(100))
    return (f(1) - np.sqrt(f(1) - np.exp(-bd) + eps)).astype(f)


def rotated_nms(xywhr: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float,
                max_wh: float = 7680.0) -> np.ndarray:
    """Ultralytics' rotated NMS (fast NMS): int64 indices of kept boxes, best score first.

    xywhr float32[N, 5], scores float32[N], classes int[N]. Centres move by class * max_wh (no
    overlap across classes); sorted by score, j is dropped iff a higher-ranked box (kept or not)
    has probiou > iou.
    """
    order = np.argsort(-scores, kind="stable")
    b = xywhr[order].astype(np.float32, copy=True)
    b[:, :2] += (classes[order].astype(np.float32) * np.float32(max_wh))[:, None]
    over = np.triu(probiou(b, b) > np.float32(iou), 1)
    return order[~over.any(0)].astype(np.int64)


def decode_nms_rotated(preds: np.ndarray, num_classes: int, conf: float, iou: float, max_det: int,
                       pre_nms_topk: int | None = None) -> RefDetections:
    """One image: preds float32[4+C+1, N] (cx, cy, w, h, scores, angle) -> rotated-NMS detections
    whose `boxes` are float32[N, 5] xywhr in network-input pixels."""
    cand, _, scores, classes, _ = candidates(preds, num_classes, conf, pre_nms_topk)
    xywhr = np.concatenate([preds[:4, cand].T, preds[-1:, cand].T], 1).astype(np.float32)
    kept = rotated_nms(xywhr, scores, classes, iou)[:max_det]
    return RefDetections(xywhr[kept], scores[kept], classes[kept].astype(np.int32), cand[kept])
