"""What the Ultralytics pose, OBB and classify modules share: the head's name, the model in
export mode (as yolo_source does for Detect / Segment) on the branch the user chose, the NMS
sizes the user asked for, the input size, the letterbox manifest, and the one-to-one graph of
an end-to-end (YOLO26) head. Only this direction: ultralytics.py never imports these
modules (no import cycles, tests/test_import_boundary.py)."""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_CONF, IN_IMAGES, TASKS, Manifest, Preprocess, sha256_file

from .base import Checkpoint, Exportable, Request
from .ultralytics_e2e import E2EOutputs, e2e_reference, select_branch
from .ultralytics_export import NmsSettings, export_mode, nms_settings  # noqa: F401 (the heads' import point)

torch = lazy_import("torch")


def head_name(ckpt_obj: Any) -> str:
    """The class name of an Ultralytics checkpoint's last layer (its head): 'Pose', 'OBB', ..."""
    model = ckpt_obj.get("ema") or ckpt_obj.get("model") if isinstance(ckpt_obj, dict) else None
    layers = getattr(model, "model", None)
    return type(layers[-1]).__name__ if layers is not None else ""


def export_ready(ckpt_obj: Any, path: Any) -> Any:
    """The checkpoint's model in float32, fused, eval, frozen, its head in export mode (decoded
    boxes / keypoints / angles, or softmax probabilities; no NMS), traceable. A head with a
    one-to-one branch is refused here: task_model chooses its branch."""
    model = (ckpt_obj.get("ema") or ckpt_obj["model"]).float()
    if getattr(model.model[-1], "end2end", False):
        raise EdgeVisionError(f"{path} has an end-to-end (NMS-free) {type(model.model[-1]).__name__} head: "
                              "convert it through task_model")
    return export_mode(model)


def task_model(ckpt: Checkpoint, req: Request, max_det: int) -> tuple[Any, bool]:
    """A pose / OBB checkpoint's model ready for export on the branch --head chose
    (ultralytics_e2e.select_branch: the one-to-one branch by default where the head has one,
    as YOLO26's Pose26 / OBB26 do) -> (model, True when it runs end to end)."""
    model = (ckpt.obj.get("ema") or ckpt.obj["model"]).float()
    e2e = select_branch(model.model[-1], getattr(req.options, "head", None), max_det)  # before fusing
    return export_mode(model), e2e


def e2e_exportable(task: str, ckpt: Checkpoint, model: Any, names: tuple[str, ...], imgsz: tuple[int, int],
                   anchors: int, s: NmsSettings, **extra: Any) -> Exportable:
    """The one-to-one graph of a pose / OBB head (ultralytics_e2e.E2EOutputs): Ultralytics'
    constant-K top-k and a conf filter, no NMS, so no iou input and no nms_limits output."""
    h, w = imgsz
    source = {"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"}
    manifest = yolo_task_manifest(task, names, imgsz, min(s.max_det, anchors), s.conf, s.iou, source,
                                  head="one2one", nms="none (end-to-end head: top-k)", anchors=anchors, **extra)
    wrapper = E2EOutputs(model, task, extra.get("kpt_shape")).eval()
    return Exportable(wrapper, (torch.rand(2, 3, h, w), torch.tensor([s.conf])), [IN_IMAGES, IN_CONF],
                      list(TASKS[task]), manifest, lambda frames: e2e_reference(model, frames, manifest))


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
