"""What the Ultralytics pose, OBB and classify modules share: the head's name, the model in
export mode (as yolo_source does for Detect / Segment), the NMS sizes the user asked for, the
input size and the letterbox manifest. Only this direction: ultralytics.py never imports these
modules (no import cycles, tests/test_import_boundary.py)."""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest, Preprocess

from .base import Request
from .ultralytics_export import NmsSettings, export_mode, nms_settings  # noqa: F401 (the heads' import point)

torch = lazy_import("torch")


def head_name(ckpt_obj: Any) -> str:
    """The class name of an Ultralytics checkpoint's last layer (its head): 'Pose', 'OBB', ..."""
    model = ckpt_obj.get("ema") or ckpt_obj.get("model") if isinstance(ckpt_obj, dict) else None
    layers = getattr(model, "model", None)
    return type(layers[-1]).__name__ if layers is not None else ""


def export_ready(ckpt_obj: Any, path: Any) -> Any:
    """The checkpoint's model in float32, fused, eval, frozen, its head in export mode (decoded
    boxes / keypoints / angles, or softmax probabilities; no NMS), traceable."""
    model = (ckpt_obj.get("ema") or ckpt_obj["model"]).float()
    if getattr(model.model[-1], "end2end", False):
        raise EdgeVisionError(f"{path} has an end-to-end (NMS-free) {type(model.model[-1]).__name__} head, which this "
                              "converter does not handle yet")
    return export_mode(model)




def input_size(req: Request, strides: tuple[int, ...]) -> tuple[int, int]:
    """--imgsz (default 640x640), checked against the model's largest stride."""
    h, w = req.imgsz or (640, 640)
    if h % max(strides) or w % max(strides):
        raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of the model's stride {max(strides)}")
    return h, w


def graph_sizes(req: Request, model: Any, pre_nms_topk: int) -> tuple[int, int, int, int]:
    """(H, W, anchors, K): the input (--imgsz, checked against the strides), the head's anchors at
    that input, and the candidates entering NMS, min(pre_nms_topk, anchors)."""
    strides = tuple(int(st) for st in model.stride.tolist())
    h, w = input_size(req, strides)
    anchors = sum((h // st) * (w // st) for st in strides)
    return h, w, anchors, min(pre_nms_topk, anchors)


def yolo_task_manifest(task: str, names: tuple[str, ...], imgsz: tuple[int, int], max_det: int, conf: float,
                       iou: float, source: dict[str, Any], **extra: Any) -> Manifest:
    """A pose / obb manifest: Ultralytics' letterbox (pad 114, RGB, /255), as yolo_manifest."""
    return Manifest(task=task, class_names=names, input_hw=imgsz, max_det=max_det,
                    preprocess=Preprocess(resize="letterbox", pad_value=114, color="RGB", scale=1 / 255.0),
                    conf_threshold=conf, iou_threshold=iou, family="ultralytics-yolo", source=source, extra=extra)
