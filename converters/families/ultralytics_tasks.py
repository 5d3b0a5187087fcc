"""Ultralytics pose, OBB and classify checkpoints: the UltralyticsFamily hands them here by head.

Each task's graph module, manifest and reference live in its own file (ultralytics_pose.py,
ultralytics_obb.py, ultralytics_cls.py); this file holds what they share: putting the model in
export mode (as yolo_source does for Detect / Segment) and the NMS sizes the user asked for.
"""
from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgevision.errors import EdgeVisionError

from .base import Checkpoint, Exportable, Request


def head_name(ckpt_obj: Any) -> str:
    """The class name of an Ultralytics checkpoint's last layer (its head): 'Pose', 'OBB', ..."""
    model = ckpt_obj.get("ema") or ckpt_obj.get("model") if isinstance(ckpt_obj, dict) else None
    layers = getattr(model, "model", None)
    return type(layers[-1]).__name__ if layers is not None else ""


def export_ready(ckpt_obj: Any, path: Any) -> Any:
    """The checkpoint's model in float32, fused, eval, frozen, its head in export mode (decoded
    boxes / keypoints / angles, or softmax probabilities; no NMS), traceable."""
    from .ultralytics import dfl_last_axis

    model = (ckpt_obj.get("ema") or ckpt_obj["model"]).float()
    if getattr(model.model[-1], "end2end", False):
        raise EdgeVisionError(f"{path} has an end-to-end (NMS-free) {type(model.model[-1]).__name__} head, which this "
                              "converter does not handle yet")
    model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for m in model.modules():
        names = {c.__name__ for c in type(m).__mro__}
        if hasattr(m, "inplace"):
            m.inplace = False  # in-place ops confuse the tracer
        if "Detect" in names or "Classify" in names:
            m.export, m.format = True, "onnx"
            if "Detect" in names:
                m.dynamic, m.shape = False, None
                if hasattr(m, "xyxy"):
                    m.xyxy = False  # keep cx,cy,w,h: the post-processing converts
        if "C2f" in names:
            m.forward = m.forward_split  # constant Split sizes (see yolo_source)
        if type(m).__name__ == "DFL":
            m.forward = types.MethodType(dfl_last_axis, m)
    return model


def class_names(model: Any) -> tuple[str, ...]:
    names = model.names
    return tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)


@dataclass(frozen=True)
class NmsSettings:
    """The user's options with Ultralytics' predictor defaults where left at None."""

    max_det: int
    pre_nms_topk: int
    nms_iters: int
    conf: float
    iou: float


def nms_settings(req: Request) -> NmsSettings:
    from .ultralytics import YOLO_DEFAULTS

    opts, d = req.options, YOLO_DEFAULTS

    def pick(name: str) -> Any:
        value = getattr(opts, name, None) if opts is not None else None
        return d[name] if value is None else value

    return NmsSettings(pick("max_det"), pick("pre_nms_topk"), pick("nms_iters"), pick("conf"), pick("iou"))


def input_size(req: Request, strides: tuple[int, ...]) -> tuple[int, int]:
    """--imgsz (default 640x640), checked against the model's largest stride."""
    h, w = req.imgsz or (640, 640)
    if h % max(strides) or w % max(strides):
        raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of the model's stride {max(strides)}")
    return h, w


def _pose(ckpt: Checkpoint, req: Request) -> Exportable:
    from .ultralytics_pose import prepare_pose

    return prepare_pose(ckpt, req)


def _obb(ckpt: Checkpoint, req: Request) -> Exportable:
    from .ultralytics_obb import prepare_obb

    return prepare_obb(ckpt, req)


def _classify(ckpt: Checkpoint, req: Request) -> Exportable:
    from .ultralytics_cls import prepare_classify

    return prepare_classify(ckpt, req)


# head class name -> how to prepare it (Detect / Segment stay in ultralytics.py)
TASK_HEADS: dict[str, Callable[[Checkpoint, Request], Exportable]] = {
    "Pose": _pose, "OBB": _obb, "Classify": _classify,
}
