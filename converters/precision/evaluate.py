"""Agreement of a candidate graph with the FP32 graph on real frames: the numbers the gate checks.

- F1 at IoU 0.5 with both models at the artifact's own confidence threshold (what a user sees).
- AP50-95 (edgevision.metrics.agreement, per class) of the candidate scored at conf 0.001, as
  COCO evaluates detectors, against the FP32 detections at the artifact's threshold. Cutting
  the candidate at the threshold too would truncate its precision-recall curve: one borderline
  detection of a rare class scoring 0.24 instead of 0.26 would zero that whole class's AP.
- The AP mean is over classes with at least MIN_SUPPORT FP32 detections in the frames. With
  FP32 outputs as the reference, a class seen once is usually an FP32 false positive at the
  threshold (a "kite" at 0.256 in a street video); averaged in, that one detection out of
  ~600 moved AP50-95 from 0.97 to 0.80 (measured, vtest held-out frames). Rarer classes
  still count in F1, and are listed per class; ap50_95_all_classes is the plain mean.
- ap50_95_pooled: AP50-95 over all detections in one curve (edgevision.metrics.pooled_ap), where every
  detection weighs the same whatever its class: the headline a user feels (issue 12).
- For segmenters, the mean mask IoU of matched detection pairs (same class, box IoU >= 0.5).
- For pose models, the mean OKS (edgevision.metrics.keypoint_oks, COCO's keypoint similarity,
  the measure the conversion tests hold against Ultralytics) of the keypoints of matched pairs.
- Rotated boxes (obb) match by their polygon IoU everywhere above (edgevision.metrics.pair_iou):
  F1 and AP50-95 are then rotated-IoU measures, as Ultralytics' OBB validation computes them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgevision.detections import Detections
from edgevision.manifest import OUT_COEFFS, OUT_PROTOS, Manifest
from edgevision.metrics import Agreement, agreement, keypoint_oks, mask_iou, pair_iou, pooled_ap
from edgevision.preprocess import Geometry

AP_CONF = 0.001  # candidates for AP are scored down to here (COCO's protocol)
MIN_SUPPORT = 5  # FP32 detections a class needs to enter the AP mean


@dataclass
class Prepared:
    """Frames already pre-processed: batches float32[B, 3, H, W] and each frame's geometry
    (letterbox, fit or centre crop: whatever the manifest declares)."""

    batches: list[np.ndarray]
    geos: list[Geometry]
    # reference path -> its results on these frames: computed once, however many runtimes are gated
    references: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.geos)


def preprocessed(manifest: Manifest, frames: Sequence[np.ndarray], batch: int = 8) -> Iterator[tuple[np.ndarray, list[Geometry]]]:
    """(float32[B, 3, H, W], geometries) batches through the runtime's one pre-processing path
    (edgevision.preprocess.preprocess_batch, what Model.preprocess runs), for every resize mode the
    manifest can declare. Batch 1 for graphs exported with a fixed batch."""
    from edgevision.preprocess import preprocess_batch

    step = batch if manifest.dynamic_batch else 1
    for i in range(0, len(frames), step):
        yield preprocess_batch(frames[i : i + step], manifest)


def prepare(fp32_path: Any, frames: Sequence[np.ndarray], batch: int = 8) -> Prepared:
    """Pre-process once (see preprocessed())."""
    from converters.onnx_io import read_manifest

    batches, geos = [], []
    for x, g in preprocessed(read_manifest(fp32_path), frames, batch):
        batches.append(x)
        geos += g
    return Prepared(batches, geos)


@dataclass
class FrameResult:
    """One frame's detections: all rows down to AP_CONF, and the rows at the threshold (with masks)."""

    low: Detections
    at_threshold: Detections


def detections(
    infer: Callable[[np.ndarray], dict[str, np.ndarray]], prepared: Prepared, manifest: Manifest, masks: bool = True
) -> list[FrameResult]:
    """Run `infer` (float32[B, 3, H, W] -> raw graph outputs, thresholds fed at AP_CONF) on every
    batch and split each frame's rows at the manifest's threshold."""
    from edgevision.postprocess import instance_masks, to_detections

    out: list[FrameResult] = []
    k = 0
    for x in prepared.batches:
        raw = infer(x)
        for i in range(len(x)):
            geo = prepared.geos[k]
            k += 1
            low = to_detections(raw, i, geo, manifest, with_masks=False)
            m = int((low.confidence > manifest.conf_threshold).sum())  # rows are sorted by score
            mk = None
            if masks and manifest.task == "segment":
                mk = instance_masks(raw[OUT_COEFFS][i, :m], raw[OUT_PROTOS][i], low.xyxy[:m], geo, manifest.input_hw)
            top = low[:m]
            out.append(FrameResult(low, Detections(top.xyxy, top.confidence, top.class_id, mk, manifest.class_names,
                                                   keypoints=top.keypoints, xywhr=top.xywhr)))
    return out


def matched_pairs(c: Detections, r: Detections) -> list[tuple[int, int]]:
    """(candidate row, reference row) pairs matched greedily: best reference first, same class,
    IoU >= 0.5 (rotated IoU where both carry xywhr, edgevision.metrics.pair_iou)."""
    if not len(c) or not len(r):
        return []
    iou = pair_iou(r, c)  # [N_ref, N_cand]
    iou[r.class_id[:, None] != c.class_id[None, :]] = 0
    taken = np.zeros(len(c), bool)
    out = []
    for j in np.argsort(-r.confidence, kind="stable"):
        row = np.where(taken, 0, iou[j])
        best = int(row.argmax())
        if row[best] >= 0.5:
            taken[best] = True
            out.append((best, int(j)))
    return out


def matched_mask_iou(cand: Sequence[Detections], ref: Sequence[Detections]) -> tuple[float, int]:
    """Mean mask IoU over matched pairs (matched_pairs)."""
    ious = [mask_iou(c.masks[i], r.masks[j]) for c, r in zip(cand, ref) if c.masks is not None and r.masks is not None
            for i, j in matched_pairs(c, r)]
    return (float(np.mean(ious)) if ious else float("nan")), len(ious)


def matched_keypoint_oks(cand: Sequence[Detections], ref: Sequence[Detections]) -> tuple[float, int]:
    """Mean OKS of the keypoints of matched pairs (matched_pairs), each pair scaled by its reference
    box's area as COCO does (nan when nothing matched)."""
    oks: list[np.ndarray] = []
    for c, r in zip(cand, ref):
        if c.keypoints is None or r.keypoints is None:
            continue
        pairs = matched_pairs(c, r)
        if pairs:
            i, j = (np.array(v, int) for v in zip(*pairs))
            box = r.xyxy[j]
            oks.append(keypoint_oks(c.keypoints[i], r.keypoints[j], (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])))
    every = np.concatenate(oks) if oks else np.zeros(0, np.float32)
    return (float(every.mean()) if len(every) else float("nan")), len(every)


@dataclass
class Evaluation:
    """Agreement of a candidate with the FP32 reference over `frames` frames (see the module
    docstring). per_class: class name -> (FP32 detections, AP50-95)."""

    f1: float
    ap50_95: float
    ap50: float
    precision: float
    recall: float
    ap50_95_all_classes: float
    ap50_95_at_threshold: float
    mask_iou: float | None
    mask_pairs: int
    frames: int
    reference_detections: int
    candidate_detections: int
    per_class: dict[str, tuple[int, float]] = field(default_factory=dict)
    keypoint_oks: float | None = None  # pose: mean OKS of matched pairs' keypoints
    keypoint_pairs: int = 0
    ap50_95_pooled: float = float("nan")  # one PR curve over all detections (metrics.pooled_ap)

    def summary(self) -> str:
        mask = f", mask IoU {self.mask_iou:.4f}" if self.mask_iou is not None else ""
        if self.keypoint_oks is not None:
            mask += f", keypoint OKS {self.keypoint_oks:.4f} ({self.keypoint_pairs} pairs)"
        rare = [f"{k} {ap:.2f} ({n})" for k, (n, ap) in self.per_class.items() if n < MIN_SUPPORT]
        note = f"; classes seen < {MIN_SUPPORT} times: {', '.join(rare)}" if rare else ""
        return (
            f"F1@0.5 {self.f1:.4f} (P {self.precision:.4f}, R {self.recall:.4f}), AP50-95 {self.ap50_95:.4f}, "
            f"AP50 {self.ap50:.4f}, pooled AP50-95 {self.ap50_95_pooled:.4f}{mask} over {self.frames} frames "
            f"({self.candidate_detections} vs {self.reference_detections} FP32 detections{note})"
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "per_class"}
        out["per_class"] = {k: [n, round(ap, 5)] for k, (n, ap) in self.per_class.items()}
        return out


def compare(cand: Sequence[FrameResult], ref: Sequence[FrameResult], segment: bool = False,
            pose: bool = False) -> Evaluation:
    """Candidate vs reference, both from detections() (see the module docstring). segment: mask IoU
    of matched pairs; pose: their keypoint OKS. Rotated boxes need no flag: they carry xywhr."""
    ref_t = [r.at_threshold for r in ref]
    low = [c.low for c in cand]
    at_t: Agreement = agreement([c.at_threshold for c in cand], ref_t)
    every: Agreement = agreement(low, ref_t)
    names = ref_t[0].class_names if ref_t else ()
    per_class: dict[str, tuple[int, float]] = {}
    supported: list[tuple[float, float]] = []
    for c in sorted({int(k) for r in ref_t for k in r.class_id}):
        one = agreement([d[d.class_id == c] for d in low], [d[d.class_id == c] for d in ref_t])
        per_class[names[c] if c < len(names) else str(c)] = (one.reference_detections, one.ap50_95)
        if one.reference_detections >= MIN_SUPPORT:
            supported.append((one.ap50_95, one.ap50))
    ap, ap50 = (float(np.mean([a for a, _ in supported])), float(np.mean([b for _, b in supported]))) if supported \
        else (every.ap50_95, every.ap50)
    miou, pairs = matched_mask_iou([c.at_threshold for c in cand], ref_t) if segment else (None, 0)
    oks, kpairs = matched_keypoint_oks([c.at_threshold for c in cand], ref_t) if pose else (None, 0)
    return Evaluation(
        f1=at_t.f1, ap50_95=ap, ap50=ap50, precision=at_t.precision, recall=at_t.recall,
        ap50_95_all_classes=every.ap50_95, ap50_95_at_threshold=at_t.ap50_95, mask_iou=miou, mask_pairs=pairs,
        frames=at_t.frames, reference_detections=at_t.reference_detections,
        candidate_detections=at_t.candidate_detections, per_class=per_class, keypoint_oks=oks, keypoint_pairs=kpairs,
        ap50_95_pooled=pooled_ap(low, ref_t)[1],
    )


def soft_loss(cand: Sequence[FrameResult], ref: Sequence[FrameResult], conf: float) -> float:
    """A smooth disagreement score for ranking layers (0 = identical), where F1 and AP move in
    steps: per reference detection, (1 - IoU) + |score change| of its best same-class candidate
    (1 + score when there is none), plus the score of every new detection above the threshold."""
    total, n = 0.0, 0
    for c, r in zip(cand, ref):
        rt, cl = r.at_threshold, c.low
        n += len(rt)
        if not len(rt):
            total += float(cl.confidence[cl.confidence > conf].sum())
            continue
        if not len(cl):
            total += float((1 + rt.confidence).sum())
            continue
        iou = pair_iou(rt, cl)  # rotated IoU for obb
        iou[rt.class_id[:, None] != cl.class_id[None, :]] = 0
        best = iou.argmax(1)
        got = iou[np.arange(len(rt)), best]
        total += float(np.where(got > 0, 1 - got + np.abs(rt.confidence - cl.confidence[best]), 1 + rt.confidence).sum())
        new = (cl.confidence > conf) & (iou.max(0) < 0.5)
        total += float(cl.confidence[new].sum())
    return total / max(n, 1)
