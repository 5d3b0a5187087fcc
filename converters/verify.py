"""Does a converted graph, run through the runtime, agree with the original model in PyTorch?

One comparison per task, each with its own measure and bar (issue #9's bars):
detections F1@0.5 and AP50-95 (order-insensitive matching); class maps, the share of frame
pixels with the same class; classifiers, top-1 agreement and the largest top-k probability
difference. A verification on frames where the reference found nothing proves nothing, so
it says "not verified" instead of passing (the caller fails unless the user accepts it).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgevision.detections import Detections
from edgevision.manifest import DETECTION_TASKS
from edgevision.metrics import Agreement, agreement
from edgevision.results import Classification, ClassMap, Result

MIN_REFERENCE_DETECTIONS = 5  # fewer reference boxes than this over all frames verifies nothing
MIN_FOREGROUND = 0.001  # share of non-background reference pixels below which a class map verifies nothing


@dataclass
class Verdict:
    """passed: the artifact meets the task's bar; verified: the frames could show anything at
    all (False: the reference found nothing on them). metrics: the measured figures."""

    task: str
    passed: bool
    verified: bool
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)
    agreement: Agreement | None = None


def compare(task: str, got: Sequence[Result], ref: Sequence[Result], min_f1: float = 0.99, min_ap: float = 0.97,
            min_pixels: float = 0.99, max_prob_diff: float = 1e-4) -> Verdict:
    """Per-task agreement of the artifact's results with the reference's, frame by frame."""
    if task in DETECTION_TASKS:
        dets_got = [r for r in got if isinstance(r, Detections)]
        dets_ref = [r for r in ref if isinstance(r, Detections)]
        a = agreement(dets_got, dets_ref)
        verified = a.reference_detections >= MIN_REFERENCE_DETECTIONS
        summary = a.summary() if verified else (
            f"not verified: the model found nothing on these frames ({a.reference_detections} reference detections)")
        return Verdict(task, verified and a.passes(min_f1, min_ap), verified, summary,
                       {"f1": a.f1, "ap50_95": a.ap50_95, "reference_detections": a.reference_detections}, a)
    if task == "semantic":
        maps_got = [r.class_map for r in got if isinstance(r, ClassMap)]
        maps_ref = [r for r in ref if isinstance(r, ClassMap)]
        same = sum(int((g == r.class_map).sum()) for g, r in zip(maps_got, maps_ref))
        total = sum(r.class_map.size for r in maps_ref)
        fg = sum(int((r.class_map != r.background).sum()) for r in maps_ref)
        agree = same / max(total, 1)
        verified = fg >= MIN_FOREGROUND * max(total, 1)
        summary = (f"pixel agreement {agree:.5f} over {len(maps_ref)} frames ({fg / max(total, 1):.1%} non-background)"
                   if verified else "not verified: the model found nothing on these frames (all background)")
        return Verdict(task, verified and agree >= min_pixels, verified, summary,
                       {"pixel_agreement": agree, "foreground": fg / max(total, 1)})
    cls_got = [r for r in got if isinstance(r, Classification)]
    cls_ref = [r for r in ref if isinstance(r, Classification)]
    top1 = float(np.mean([g.class_id[0] == r.class_id[0] for g, r in zip(cls_got, cls_ref)])) if cls_ref else 0.0
    diff = max((float(np.abs(g.confidence - r.confidence).max()) for g, r in zip(cls_got, cls_ref)), default=0.0)
    same_ids = all(np.array_equal(g.class_id, r.class_id) for g, r in zip(cls_got, cls_ref))
    summary = f"top-1 agreement {top1:.4f}, top-k ids equal: {same_ids}, largest probability difference {diff:.2e}"
    return Verdict(task, bool(cls_ref) and top1 == 1.0 and diff <= max_prob_diff, bool(cls_ref), summary,
                   {"top1_agreement": top1, "max_prob_diff": diff, "topk_ids_equal": same_ids})


def batch_consistent(model: Any, frames: Sequence[np.ndarray], single: Sequence[Result]) -> bool:
    """Batch 2 gives each frame what batch 1 gave it (results compared by task)."""
    ok = True
    for i in range(0, len(frames) - 1, 2):
        for got, want in zip(model.predict(frames[i : i + 2]), single[i : i + 2]):
            ok &= same_result(got, want)
    return ok


def same_result(a: Result, b: Result) -> bool:
    if isinstance(a, Detections) and isinstance(b, Detections):
        return len(a) == len(b) and np.allclose(a.xyxy, b.xyxy, atol=1e-2)
    if isinstance(a, ClassMap) and isinstance(b, ClassMap):
        return float((a.class_map == b.class_map).mean()) >= 0.9999
    if isinstance(a, Classification) and isinstance(b, Classification):
        return np.array_equal(a.class_id, b.class_id) and np.allclose(a.confidence, b.confidence, atol=1e-5)
    return False
