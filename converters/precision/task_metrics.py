"""Agreement with FP32 for the tasks that are not detections: classifiers and class maps.

Both are measured on what the runtime hands a user (edgevision.postprocess.decode: top-k
Classification, frame-resolution ClassMap), like the detection gate in evaluate.py.

- classify: top-1 agreement (share of frames whose best class is FP32's); top-k agreement
  (share of frames whose top-k id set equals FP32's); the largest and the mean absolute
  difference of the probabilities FP32 gives its top-k classes. The graph outputs top-k
  only: a class of FP32's top-k that the candidate leaves out of its own is taken at the
  candidate's k-th probability, the most it can have there (the nearest value the outputs
  allow; exact when the class dropped out at a near tie, as it does in INT8).
- semantic: pixel agreement (share of frame pixels with FP32's class) and mIoU over the
  classes FP32 paints with at least MIN_PIXELS pixels in the frames (IoU summed over all
  frames: a class seen in one corner of one frame would otherwise weigh as much as the road).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgevision.results import Classification, ClassMap

MIN_PIXELS = 100  # FP32 pixels a class needs in the frames to enter the mIoU mean


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class ClassifyEvaluation:
    """Top-k agreement of a classifier with FP32 over `frames` frames (see the module docstring).

    reference_classes: distinct FP32 top-1 classes in the frames (1 means the frames cannot
    tell a classifier that always answers the same from a working one)."""

    top1_agreement: float
    topk_agreement: float
    max_prob_diff: float
    mean_prob_diff: float
    k: int
    frames: int
    reference_classes: int

    def summary(self) -> str:
        return (f"top-1 agreement {self.top1_agreement:.4f}, top-{self.k} set agreement {self.topk_agreement:.4f}, "
                f"top-{self.k} probability difference max {self.max_prob_diff:.4f} / mean {self.mean_prob_diff:.5f} "
                f"over {self.frames} frames ({self.reference_classes} distinct FP32 top-1 classes)")

    def as_dict(self) -> dict[str, Any]:
        return {"task": "classify", **_rounded(asdict(self))}


def prob_diffs(cand: Classification, ref: Classification) -> np.ndarray:
    """float32[k]: |p_cand(c) - p_ref(c)| for each class c of FP32's top-k (p_cand(c) taken at the
    candidate's k-th probability where it leaves c out of its top-k)."""
    own = dict(zip(cand.class_id.tolist(), cand.confidence.tolist()))
    floor = float(cand.confidence[-1]) if len(cand.confidence) else 0.0
    return np.array([abs(p - own.get(c, floor)) for c, p in zip(ref.class_id.tolist(), ref.confidence.tolist())],
                    np.float32)


def compare_classify(cand: Sequence[Classification], ref: Sequence[Classification]) -> ClassifyEvaluation:
    if not ref:
        return ClassifyEvaluation(0.0, 0.0, float("inf"), float("inf"), 0, 0, 0)
    diffs = [prob_diffs(c, r) for c, r in zip(cand, ref)]
    return ClassifyEvaluation(
        top1_agreement=float(np.mean([c.class_id[0] == r.class_id[0] for c, r in zip(cand, ref)])),
        topk_agreement=float(np.mean([set(c.class_id.tolist()) == set(r.class_id.tolist()) for c, r in zip(cand, ref)])),
        max_prob_diff=float(max(d.max() for d in diffs)),
        mean_prob_diff=float(np.mean(np.concatenate(diffs))),
        k=len(ref[0].class_id), frames=len(ref), reference_classes=len({int(r.class_id[0]) for r in ref}),
    )


def classify_loss(cand: Sequence[Classification], ref: Sequence[Classification]) -> float:
    """A smooth disagreement score for ranking layers (0 = identical): per frame, the summed
    probability difference over FP32's top-k, plus 1 where the top-1 class changes."""
    total = sum(float(prob_diffs(c, r).sum()) + float(c.class_id[0] != r.class_id[0]) for c, r in zip(cand, ref))
    return total / max(len(ref), 1)


@dataclass
class SemanticEvaluation:
    """Class-map agreement with FP32 over `frames` frames (see the module docstring).
    per_class: class name -> (FP32 pixels, IoU)."""

    pixel_agreement: float
    miou: float
    min_class_iou: float
    frames: int
    pixels: int
    foreground: float  # share of FP32 pixels that are not background
    per_class: dict[str, tuple[int, float]] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"pixel agreement {self.pixel_agreement:.5f}, mIoU {self.miou:.4f} (lowest class IoU "
                f"{self.min_class_iou:.4f}, {sum(n >= MIN_PIXELS for n, _ in self.per_class.values())} classes) over "
                f"{self.frames} frames ({self.foreground:.1%} non-background)")

    def as_dict(self) -> dict[str, Any]:
        out = {"task": "semantic", **_rounded({k: v for k, v in asdict(self).items() if k != "per_class"})}
        out["per_class"] = {k: [n, round(iou, 5)] for k, (n, iou) in self.per_class.items()}
        return out


def compare_semantic(cand: Sequence[ClassMap], ref: Sequence[ClassMap]) -> SemanticEvaluation:
    if not ref:
        return SemanticEvaluation(0.0, 0.0, 0.0, 0, 0, 0.0)
    n = 1 + max(int(max(c.class_map.max(), r.class_map.max())) for c, r in zip(cand, ref))
    inter = np.zeros(n, np.int64)
    ref_px = np.zeros(n, np.int64)
    cand_px = np.zeros(n, np.int64)
    same = total = fg = 0
    for c, r in zip(cand, ref):
        a, b = c.class_map.reshape(-1), r.class_map.reshape(-1)
        eq = a == b
        same += int(eq.sum())
        total += b.size
        fg += int((b != r.background).sum())
        inter += np.bincount(b[eq], minlength=n)
        ref_px += np.bincount(b, minlength=n)
        cand_px += np.bincount(a, minlength=n)
    union = ref_px + cand_px - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    names = ref[0].class_names
    per_class = {(names[k] if k < len(names) else str(k)): (int(ref_px[k]), float(iou[k]))
                 for k in np.flatnonzero(ref_px)}
    counted = iou[ref_px >= MIN_PIXELS]
    if not len(counted):  # too few pixels for any class: every class FP32 paints
        counted = iou[ref_px > 0]
    return SemanticEvaluation(
        pixel_agreement=same / max(total, 1), miou=float(counted.mean()), min_class_iou=float(counted.min()),
        frames=len(ref), pixels=total, foreground=fg / max(total, 1), per_class=per_class,
    )


def semantic_loss(cand: Sequence[ClassMap], ref: Sequence[ClassMap]) -> float:
    """A disagreement score for ranking layers: the share of pixels whose class changes."""
    return 1.0 - compare_semantic(cand, ref).pixel_agreement
