"""What the gate and the layer search measure, chosen by the manifest's task (never by family).

Three verbs, one table: results (run a graph on prepared frames -> what the runtime hands a
user), compare (candidate vs FP32 -> an evaluation the budget judges) and loss (a smooth
score for ranking which layers hurt). detect/segment/pose/obb use evaluate.py (pose adds the
keypoint OKS of matched pairs, obb matches by rotated IoU); classify/semantic task_metrics.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from edgevision.manifest import Manifest

from .evaluate import Evaluation, Prepared, compare, detections, soft_loss
from .task_metrics import ClassifyEvaluation, SemanticEvaluation, classify_loss, compare_classify, compare_semantic, \
    semantic_loss

AnyEvaluation = Union[Evaluation, ClassifyEvaluation, SemanticEvaluation]
Infer = Callable[[np.ndarray], dict[str, np.ndarray]]


def _decoded(infer: Infer, prepared: Prepared, manifest: Manifest) -> list[Any]:
    """Run `infer` (float32[B, 3, H, W] -> raw graph outputs) on every batch and decode each
    frame the way the runtime does (edgevision.postprocess.decode)."""
    from edgevision.postprocess import decode

    out: list[Any] = []
    k = 0
    for x in prepared.batches:
        raw = infer(x)
        for i in range(len(x)):
            out.append(decode(raw, i, prepared.geos[k], manifest))
            k += 1
    return out


@dataclass(frozen=True)
class Judge:
    results: Callable[[Infer, Prepared, Manifest, bool], list[Any]]
    compare: Callable[[Sequence[Any], Sequence[Any], Manifest], AnyEvaluation]
    loss: Callable[[Sequence[Any], Sequence[Any], Manifest], float]


_DETECT = Judge(
    results=lambda infer, prepared, manifest, masks: list(detections(infer, prepared, manifest, masks)),
    compare=lambda cand, ref, manifest: compare(cand, ref, manifest.task == "segment", manifest.task == "pose"),
    loss=lambda cand, ref, manifest: soft_loss(cand, ref, manifest.conf_threshold),
)
JUDGES: dict[str, Judge] = {
    "detect": _DETECT,
    "segment": _DETECT,
    "pose": _DETECT,
    "obb": _DETECT,
    "classify": Judge(lambda infer, prepared, manifest, masks: _decoded(infer, prepared, manifest),
                      lambda cand, ref, manifest: compare_classify(cand, ref),
                      lambda cand, ref, manifest: classify_loss(cand, ref)),
    "semantic": Judge(lambda infer, prepared, manifest, masks: _decoded(infer, prepared, manifest),
                      lambda cand, ref, manifest: compare_semantic(cand, ref),
                      lambda cand, ref, manifest: semantic_loss(cand, ref)),
}


def judge_for(manifest: Manifest) -> Judge:
    """The task's judge (EdgeVisionError for a task the gate has no measure for)."""
    from edgevision.errors import EdgeVisionError

    if manifest.task not in JUDGES:
        raise EdgeVisionError(f"--precision has no accuracy measure for {manifest.task} models "
                              f"(it has for {', '.join(JUDGES)})")
    return JUDGES[manifest.task]


def results(infer: Infer, prepared: Prepared, manifest: Manifest, masks: bool = True) -> list[Any]:
    """Per-frame results of `infer` on the prepared frames (FrameResult for detectors)."""
    return judge_for(manifest).results(infer, prepared, manifest, masks)


def evaluate(cand: Sequence[Any], ref: Sequence[Any], manifest: Manifest) -> AnyEvaluation:
    """Candidate results vs FP32's, both from results()."""
    return judge_for(manifest).compare(cand, ref, manifest)


def loss(cand: Sequence[Any], ref: Sequence[Any], manifest: Manifest) -> float:
    """Smooth disagreement (0 = identical) for ranking layer groups."""
    return judge_for(manifest).loss(cand, ref, manifest)
