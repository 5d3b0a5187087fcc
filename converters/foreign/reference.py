"""The verification reference of a foreign file: the file itself on ONNX Runtime, fed the
manifest's pre-processing one frame at a time, its raw outputs decoded in numpy with a plain
greedy NMS (converters.reference.decode_nms) or a plain sort, as heads.py does in the graph.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.manifest import Manifest
from edgevision.results import Result

from ..reference import decode_nms
from .spec import ForeignSpec


def class_probs_np(logits: np.ndarray, score_fn: str, background: str) -> np.ndarray:
    """float32[N, K] -> float32[N, C] probabilities (heads.class_probs in numpy)."""
    x = logits.astype(np.float32)
    if score_fn == "sigmoid":
        x = (1 / (1 + np.exp(-x))).astype(np.float32)
    elif score_fn == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        x = e / e.sum(-1, keepdims=True)
    if background == "first":
        return x[:, 1:]
    if background == "last":
        return x[:, :-1]
    return x


def boxes_np(boxes: np.ndarray, box_format: str, normalized: bool, input_hw: tuple[int, int], want: str) -> np.ndarray:
    """float32[N, 4] in the spec's format -> `want` ("xyxy" or "cxcywh") in input pixels."""
    b = boxes.astype(np.float32)
    if box_format != want:
        if want == "xyxy":  # cxcywh -> xyxy
            b = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
        else:
            b = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1)
    if normalized:
        h, w = input_hw
        b = b * np.array([w, h, w, h], np.float32)
    return b


def decode_raw(raw: Sequence[np.ndarray], spec: ForeignSpec, manifest: Manifest) -> tuple[np.ndarray, ...]:
    """One image's raw outputs (batch axis dropped) -> (boxes float32[n, 4] xyxy input pixels,
    scores float32[n], class_ids int32[n]), best first."""
    hw, nc = manifest.input_hw, manifest.num_classes
    conf, iou, max_det = manifest.conf_threshold, manifest.iou_threshold, manifest.max_det
    if spec.layout in ("yolo", "ssd"):
        if spec.layout == "yolo":
            preds = raw[0].astype(np.float32)
            preds = np.concatenate([boxes_np(preds[:4].T, spec.box_format, spec.normalized, hw, "cxcywh").T,
                                    preds[4:]], 0)
        else:
            box = boxes_np(raw[0], spec.box_format, spec.normalized, hw, "cxcywh")
            preds = np.concatenate([box, class_probs_np(raw[1], spec.score_fn, spec.background)], 1).T
        ref = decode_nms(preds, nc, conf, iou, max_det, manifest.extra.get("pre_nms_topk"))
        return ref.boxes, ref.scores, ref.class_ids
    if spec.layout == "detr":
        boxes = boxes_np(raw[0], spec.box_format, spec.normalized, hw, "xyxy")
        probs = class_probs_np(raw[1], spec.score_fn, spec.background)
        scores, classes = probs.max(1), probs.argmax(1)
    else:
        rows = raw[0].astype(np.float32)
        boxes = boxes_np(rows[:, :4], spec.box_format, spec.normalized, hw, "xyxy")
        scores, classes = rows[:, 4], np.rint(rows[:, 5])
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > np.float32(conf)][:max_det]
    return boxes[order], scores[order].astype(np.float32), classes[order].astype(np.int32)


def foreign_reference(path: Path, spec: ForeignSpec, outputs: tuple[str, ...], manifest: Manifest,
                      frames: Sequence[np.ndarray]) -> list[Result]:
    """The foreign file on ONNX Runtime, one frame at a time -> Detections in frame pixels."""
    from edgevision.preprocess import preprocess

    ort = lazy_import("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = sess.get_inputs()[0].name
    out: list[Result] = []
    for frame in frames:
        x, geo = preprocess(frame, manifest.input_hw, manifest.preprocess)
        raw = [r[0] for r in sess.run(list(outputs), {image: x})]
        boxes, scores, classes = decode_raw(raw, spec, manifest)
        out.append(Detections(geo.boxes_to_frame(boxes), scores, classes, None, manifest.class_names))
    return out
