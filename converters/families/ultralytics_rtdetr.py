"""Ultralytics RT-DETR (RTDETRDetectionModel checkpoints): the decoder's top-k in the graph.

RT-DETR needs no NMS: its decoder scores a fixed set of queries, and Ultralytics' head takes
the best min(queries, max_det) (query, class) pairs with one constant-K TopK. The graph
keeps that, converts the normalised cx, cy, w, h to xyxy input pixels and applies the conf
input as Ultralytics' RTDETRPredictor does (score > conf), so the outputs are the ordinary
detect outputs. Deformable attention samples with Gathers instead of GridSample
(converters.deformable: TensorRT's GridSample is where deformable attention has gone wrong).

Pre-processing is the predictor's: the frame stretched to the square input (no letterbox;
cv2 bilinear on uint8), RGB, /255.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (IN_CONF, IN_IMAGES, OUT_BOXES, OUT_CLASSES, OUT_NUM, OUT_SCORES, Manifest, Preprocess,
                                 sha256_file)
from edgevision.results import Result

from ..deformable import gather_sampling
from .base import Checkpoint, Exportable, Request
from .ultralytics_export import export_mode, head_outputs, yolo_names

torch = lazy_import("torch")


def is_rtdetr(ckpt: Checkpoint) -> bool:
    model = ckpt.obj.get("ema") or ckpt.obj.get("model") if isinstance(ckpt.obj, dict) else None
    return model is not None and type(model.model[-1]).__name__ == "RTDETRDecoder"


def rtdetr_model(ckpt: Checkpoint, max_det: int) -> Any:
    """The checkpoint's model in eval/export mode: the head returns float32[B, K, 6] (cx, cy, w,
    h normalised, score, class id), K = min(queries, max_det), sorted by score."""
    model = export_mode((ckpt.obj.get("ema") or ckpt.obj["model"]).float())
    model.model[-1].max_det = max_det
    return model


class RTDETROutputs(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W], conf float32[1] -> boxes float32[B, K, 4] xyxy input pixels,
    scores float32[B, K] (descending; rows at or below conf zeroed), class_ids int32[B, K],
    num_dets int32[B]."""

    def __init__(self, model: Any, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        h, w = input_hw
        self.register_buffer("scale", torch.tensor([w, h, w, h], dtype=torch.float32), persistent=False)

    def forward(self, images: Any, conf: Any) -> tuple[Any, Any, Any, Any]:
        with gather_sampling():
            y = self.model(images)
        y = y[0] if isinstance(y, (tuple, list)) else y
        xy, half = y[..., :2], y[..., 2:4] / 2
        boxes = torch.cat([xy - half, xy + half], -1) * self.scale
        scores = y[..., 4]
        valid = (scores > conf).to(torch.float32)  # a prefix: the rows are sorted by score
        return (boxes * valid.unsqueeze(-1), scores * valid, (y[..., 5] * valid).to(torch.int32),
                valid.sum(1).to(torch.int32))


def rtdetr_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model as Ultralytics runs it (GridSample, not Gathers) on each stretched frame,
    filtered as RTDETRPredictor does (score > conf), boxes mapped to the frame."""
    h, w = manifest.input_hw
    out: list[Result] = []
    for y, geo in head_outputs(model, frames, manifest):
        y = y[y[:, 4] > manifest.conf_threshold]
        xyxy = np.concatenate([y[:, :2] - y[:, 2:4] / 2, y[:, :2] + y[:, 2:4] / 2], 1) * np.array([w, h, w, h], np.float32)
        out.append(Detections(geo.boxes_to_frame(xyxy), y[:, 4], y[:, 5].astype(np.int32), None, manifest.class_names))
    return out


def prepare_rtdetr(ckpt: Checkpoint, req: Request, max_det: int, conf: float) -> Exportable:
    """An RT-DETR checkpoint -> exportable module, manifest (detect) and reference."""
    h, w = req.imgsz or (640, 640)
    if h != w:
        raise EdgeVisionError(f"--imgsz {h}x{w}: RT-DETR runs on a square input (Ultralytics stretches to it)")
    if h % 32:
        raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of 32")
    model = rtdetr_model(ckpt, max_det)
    head = model.model[-1]
    class_names = yolo_names(model)
    rows = min(int(head.num_queries), max_det, int(head.num_queries) * len(class_names))
    manifest = Manifest(
        task="detect", class_names=class_names, input_hw=(h, w), max_det=rows,
        preprocess=Preprocess(resize="stretch", interpolation="linear", antialias=False, resize_dtype="uint8",
                              color="RGB", scale=1 / 255.0),
        conf_threshold=conf, family="ultralytics-rtdetr",
        source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"},
        extra={"head": "rtdetr", "queries": int(head.num_queries), "nms": "none (decoder queries: top-k)",
               "deformable_sampling": "Gather (no GridSample)"},
    )
    module = RTDETROutputs(model, (h, w)).eval()
    return Exportable(module, (torch.rand(2, 3, h, w), torch.tensor([conf])), [IN_IMAGES, IN_CONF],
                      [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM], manifest,
                      lambda frames: rtdetr_reference(model, frames, manifest))
