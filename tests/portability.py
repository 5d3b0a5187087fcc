"""One artifact in every CPU runtime: the same detections from ONNX Runtime and OpenVINO."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

import edgevision
from edgevision.detections import Detections
from edgevision.metrics import Agreement, agreement, box_iou, mask_iou


def matched_pairs(a: Detections, b: Detections, min_iou: float = 0.9) -> list[tuple[int, int]]:
    """Index pairs of same-class detections whose boxes overlap by min_iou (greedy, a's best first)."""
    if not len(a) or not len(b):
        return []
    iou = box_iou(a.xyxy, b.xyxy) * (a.class_id[:, None] == b.class_id[None, :])
    pairs, used = [], set()
    for i in np.argsort(-a.confidence):
        j = int(np.argmax(iou[i]))
        if iou[i, j] >= min_iou and j not in used:
            used.add(j)
            pairs.append((int(i), j))
    return pairs


def mask_ious(got: Sequence[Detections], want: Sequence[Detections]) -> list[float]:
    """Mask IoU of every matched pair of detections, frame by frame (order-insensitive)."""
    return [mask_iou(g.masks[i], w.masks[j]) for g, w in zip(got, want) if g.masks is not None and w.masks is not None
            for i, j in matched_pairs(g, w)]


def openvino_vs_onnxruntime(path: Path, frames: Sequence[np.ndarray], precision: str = "f32",
                            conf: float | None = None) -> tuple[Agreement, float]:
    """(agreement of OpenVINO's detections with ONNX Runtime's, lowest mask IoU of matched detections)."""
    with edgevision.load(path, backend="onnxruntime", conf=conf) as ort, \
            edgevision.load(path, backend="openvino", precision=precision, conf=conf, cache_dir="") as ov:
        assert ov.backend.name == "openvino"
        want = ort.predict(list(frames))
        got = ov.predict(list(frames))
    return agreement(got, want), min(mask_ious(got, want), default=1.0)
