"""Agreement of one detection set with another taken as the reference.

Used to prove that a conversion, a precision or a backend keeps what the source
model sees: the reference plays the role of ground truth (its scores are ignored),
the candidate's scores rank its detections. Boxes only; masks via mask_iou().
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .detections import Detections

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)  # COCO's 0.50:0.05:0.95


# Thickness given to a box side of zero length: a box clipped to a frame edge from outside it has
# zero area, and must still match its own copy (IoU 1), not nothing (0/0). 0.01 px changes the
# IoU of any visible box by far less than its float rounding.
MIN_SIDE = 0.01


def thick(x: np.ndarray) -> np.ndarray:
    """float32[N, 4] xyxy boxes with sides shorter than MIN_SIDE grown to it (x2 = x1 + MIN_SIDE),
    for matching: degenerate boxes then compare by where they lie."""
    x = np.array(x, np.float32)
    x[:, 2] = np.maximum(x[:, 2], x[:, 0] + np.float32(MIN_SIDE))
    x[:, 3] = np.maximum(x[:, 3], x[:, 1] + np.float32(MIN_SIDE))
    return x


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32[N, 4], float32[M, 4] xyxy -> IoU float32[N, M] (0 where a union is empty), in
    torchvision's float32 arithmetic (the NMS references rely on it bit for bit)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None]
    union = union - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def pair_iou(cand: Detections, ref: Detections) -> np.ndarray:
    """float32[N_cand, N_ref] IoU for matching: of the rotated boxes where both carry xywhr, else
    of xyxy with zero-length sides made MIN_SIDE thick (thick())."""
    if cand.xywhr is not None and ref.xywhr is not None:
        from .rotated import rotated_iou

        return rotated_iou(cand.xywhr, ref.xywhr)
    return box_iou(thick(cand.xyxy), thick(ref.xyxy))


def match(cand: Detections, ref: Detections, iou: float) -> np.ndarray:
    """Greedy COCO matching, best candidate first. Returns bool[N_cand]: matched a same-class ref box.
    Rotated boxes (both sides with xywhr) match by their polygon IoU."""
    hit = np.zeros(len(cand), dtype=bool)
    if not len(cand) or not len(ref):
        return hit
    ious = pair_iou(cand, ref)
    ious[cand.class_id[:, None] != ref.class_id[None, :]] = -1
    taken = np.zeros(len(ref), dtype=bool)
    for i in np.argsort(-cand.confidence, kind="stable"):
        row = np.where(taken, -1, ious[i])
        j = int(row.argmax())
        if row[j] >= iou:
            taken[j] = hit[i] = True
    return hit


@dataclass
class Agreement:
    """How well a candidate set agrees with a reference set over many frames."""

    precision: float
    recall: float
    f1: float
    ap50: float
    ap50_95: float
    frames: int
    reference_detections: int
    candidate_detections: int
    per_threshold_ap: dict[str, float] = field(default_factory=dict)

    def passes(self, min_f1: float, min_ap: float) -> bool:
        return self.f1 >= min_f1 and self.ap50_95 >= min_ap

    def summary(self) -> str:
        return (
            f"F1@0.5 {self.f1:.4f} (P {self.precision:.4f}, R {self.recall:.4f}), AP50 {self.ap50:.4f}, "
            f"AP50-95 {self.ap50_95:.4f} over {self.frames} frames "
            f"({self.candidate_detections} vs {self.reference_detections} reference detections)"
        )


def _average_precision(scores: np.ndarray, hits: np.ndarray, n_ref: int) -> float:
    """COCO 101-point interpolated AP of one class at one IoU threshold."""
    if n_ref == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / n_ref
    precision = tp / np.maximum(tp + fp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    grid = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, grid, side="left")
    return float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0).mean())


def agreement(candidate: Sequence[Detections], reference: Sequence[Detections]) -> Agreement:
    """Compare per-frame detection lists of equal length (frame i with frame i)."""
    if len(candidate) != len(reference):
        raise ValueError(f"frame counts differ: {len(candidate)} candidate vs {len(reference)} reference")
    tp50 = n_cand = n_ref = 0
    scores: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    hits = {t: [] for t in IOU_THRESHOLDS}  # type: dict[float, list[np.ndarray]]
    ref_classes: list[np.ndarray] = []
    for cand, ref in zip(candidate, reference):
        n_cand += len(cand)
        n_ref += len(ref)
        scores.append(cand.confidence)
        classes.append(cand.class_id)
        ref_classes.append(ref.class_id)
        for t in IOU_THRESHOLDS:
            hits[t].append(match(cand, ref, float(t)))
        tp50 += int(hits[IOU_THRESHOLDS[0]][-1].sum())
    precision = tp50 / n_cand if n_cand else float(n_ref == 0)
    recall = tp50 / n_ref if n_ref else float(n_cand == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_cls = np.concatenate(classes) if classes else np.zeros(0, np.int32)
    all_ref_cls = np.concatenate(ref_classes) if ref_classes else np.zeros(0, np.int32)
    per_t: dict[str, float] = {}
    for t in IOU_THRESHOLDS:
        all_hits = np.concatenate(hits[t]) if hits[t] else np.zeros(0, bool)
        aps = [
            _average_precision(all_scores[all_cls == c], all_hits[all_cls == c], int((all_ref_cls == c).sum()))
            for c in np.unique(np.concatenate([all_cls, all_ref_cls]))
        ]
        aps = [a for a in aps if not np.isnan(a)]
        per_t[f"{t:.2f}"] = float(np.mean(aps)) if aps else float(n_cand == 0)
    return Agreement(
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        ap50=per_t["0.50"],
        ap50_95=float(np.mean(list(per_t.values()))),
        frames=len(candidate),
        reference_detections=n_ref,
        candidate_detections=n_cand,
        per_threshold_ap=per_t,
    )


def pooled_ap(candidate: Sequence[Detections], reference: Sequence[Detections]) -> tuple[float, float]:
    """(AP50, AP50-95) with one precision-recall curve over *all* detections (class-aware matching,
    candidates ranked by score across classes), not the mean of per-class curves: every detection
    weighs the same, so a class seen twice cannot swing the figure. What a user of the whole model feels."""
    if len(candidate) != len(reference):
        raise ValueError(f"frame counts differ: {len(candidate)} candidate vs {len(reference)} reference")
    n_ref = sum(len(r) for r in reference)
    scores = np.concatenate([c.confidence for c in candidate]) if candidate else np.zeros(0)
    aps = []
    for t in IOU_THRESHOLDS:
        hits = np.concatenate([match(c, r, float(t)) for c, r in zip(candidate, reference)]) if candidate \
            else np.zeros(0, bool)
        ap = _average_precision(scores, hits, n_ref)
        aps.append(float(len(scores) == 0) if np.isnan(ap) else ap)
    return aps[0], float(np.mean(aps))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool[H, W] masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# COCO's per-keypoint OKS sigmas of the 17 person keypoints (other layouts: 1/K each, as Ultralytics)
COCO_KPT_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
                            0.89, 0.89], np.float32) / 10


def keypoint_oks(cand: np.ndarray, ref: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Object keypoint similarity of paired detections: cand, ref float32[N, K, 3] (x, y, visibility;
    frame pixels), area float32[N] (the reference boxes' areas) -> float32[N] in [0, 1].

    COCO's OKS (exp(-d^2 / (2 * area * (2 sigma)^2)) averaged over the keypoints), over every
    keypoint the reference has (predictions carry all K), as Ultralytics' kpt_iou does.
    """
    k = ref.shape[1]
    sigma = COCO_KPT_SIGMAS if k == 17 else np.full(k, 1.0 / k, np.float32)
    d2 = ((cand[..., :2] - ref[..., :2]) ** 2).sum(-1)  # [N, K]
    e = d2 / ((2 * sigma) ** 2 * (area[:, None] + 1e-7) * 2)
    return np.exp(-e).mean(1).astype(np.float32)
