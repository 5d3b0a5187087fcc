"""Family: Ultralytics YOLO (v8 / 11, detect and segment) checkpoint -> exportable torch module.

Needs the `ultralytics` package only to rebuild the pickled layer classes (AGPL-3.0,
optional extra `edgevision[yolo]`). The checkpoint is loaded with converters.checkpoint,
never with Ultralytics' own loader, which unpickles with weights_only=False.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collections.abc import Sequence

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_COEFFS, OUT_LIMITS, OUT_NUM, OUT_PROTOS, OUT_SCORES,
    Manifest,
    Preprocess, sha256_file,
)
from edgevision.results import Result

from ..checkpoint import load_checkpoint
from ..nms import DetectPostprocess
from .base import Checkpoint, Exportable, Request
from .yolo_unsplit import unsplit

torch = lazy_import("torch")


@dataclass
class YoloSource:
    """A loaded YOLO model ready for export. model(images) -> (preds[B, 4+C+M, N], protos?)."""

    model: Any
    task: str
    class_names: tuple[str, ...]
    num_masks: int
    strides: tuple[int, ...]


def is_yolo_checkpoint(ckpt: Any) -> bool:
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    return model is not None and type(model).__module__.startswith("ultralytics.")


def load_yolo(path: str | Path, trust: bool = False) -> YoloSource:
    """Load an Ultralytics checkpoint and put its head in export mode (decoded boxes, no NMS)."""
    return yolo_source(load_checkpoint(path, trust=trust), path)


def yolo_source(ckpt: Any, path: str | Path) -> YoloSource:
    """An unpickled Ultralytics checkpoint -> YoloSource with its head in export mode."""
    if not is_yolo_checkpoint(ckpt):
        kind = type(ckpt).__name__
        raise EdgeVisionError(f"{path} is not an Ultralytics YOLO checkpoint (found a {kind}); see `edgevision convert --help`")
    model = (ckpt.get("ema") or ckpt["model"]).float()
    head = model.model[-1]
    head_name = type(head).__name__
    if head_name not in ("Detect", "Segment"):
        raise EdgeVisionError(f"{path} is a YOLO {head_name} model; edgevision converts Detect and Segment heads")
    task = "segment" if head_name == "Segment" else "detect"
    if getattr(head, "end2end", False):
        raise EdgeVisionError(f"{path} has an end-to-end (NMS-free) head, which this converter does not handle yet")

    model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False  # in-place ops confuse the tracer
        if type(m).__name__ in ("Detect", "Segment"):
            m.export, m.format, m.dynamic, m.shape = True, "onnx", False, None
            if hasattr(m, "xyxy"):
                m.xyxy = False  # keep cx,cy,w,h: our post-processing converts
        if any(c.__name__ == "C2f" for c in type(m).__mro__):  # C2f and its subclasses (C3k2 in YOLO11)
            # Split with constant sizes instead of chunk, whose Slice bounds come from the
            # run-time shape: OpenVINO miscomputes that Slice inside INT8 Q/DQ graphs.
            m.forward = m.forward_split
        if type(m).__name__ == "DFL":
            m.forward = types.MethodType(dfl_last_axis, m)
    unsplit(model)  # cv1 as two convolutions, no Split: faster on ONNX Runtime's CPU layout (yolo_unsplit.py)
    names = model.names
    class_names = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)
    return YoloSource(
        model=model,
        task=task,
        class_names=class_names,
        num_masks=int(getattr(head, "nm", 0)) if task == "segment" else 0,
        strides=tuple(int(s) for s in model.stride.tolist()),
    )


def dfl_last_axis(self: Any, x: Any) -> Any:
    """Ultralytics' DFL box decode with its softmax on the last axis.

    x float32[B, 4*R, A] (R bins per box side) -> float32[B, 4, A] expected distances. Same
    maths as DFL.forward (softmax over the R bins, then the fixed 1x1 conv = dot with its
    weights, 0..R-1), but the softmax runs over the innermost axis, which ONNX Runtime and
    TensorRT do several times faster than a softmax over axis 1 (measured ~4 ms per frame).
    """
    b, _, a = x.shape
    bins = self.conv.weight.reshape(-1)  # [R], the checkpoint's own weights (0..R-1)
    return (x.view(b, 4, self.c1, a).transpose(2, 3).softmax(-1) * bins).sum(-1)


class YoloWithPostprocess(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] (+ thresholds) -> edgevision's fixed detection outputs."""

    def __init__(self, src: YoloSource, post: DetectPostprocess) -> None:
        super().__init__()
        self.model, self.post, self.seg = src.model, post, src.task == "segment"

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        out = self.model(images)
        if self.seg:
            preds, protos = out[0], out[1]
            # nms_limits stays the last output, after protos: the outputs before it keep their places.
            *dets, limits = self.post(preds, conf, iou)
            return (*dets, protos, limits)
        preds = out[0] if isinstance(out, (tuple, list)) else out
        return self.post(preds, conf, iou)


def yolo_manifest(src: YoloSource, imgsz: tuple[int, int], max_det: int, proto_shape: Any, **extra: Any) -> Manifest:
    """The manifest of a converted YOLO: Ultralytics' letterbox (pad 114, RGB, /255)."""
    return Manifest(
        task=src.task,
        class_names=src.class_names,
        input_hw=imgsz,
        max_det=max_det,
        preprocess=Preprocess(resize="letterbox", pad_value=114, color="RGB", scale=1 / 255.0),
        proto_shape=tuple(proto_shape) if proto_shape is not None else None,
        family="ultralytics-yolo",
        extra=extra,
    )


def reference_detections(src: YoloSource, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model on each frame, decoded with the numpy greedy-NMS reference."""
    from edgevision.preprocess import preprocess

    from ..reference import decode_nms

    out: list[Result] = []
    for frame in frames:
        x, geo = preprocess(frame, manifest.input_hw, manifest.preprocess)
        with torch.no_grad():
            raw = src.model(torch.from_numpy(x))
        preds = (raw[0] if isinstance(raw, (tuple, list)) else raw)[0].numpy()
        ref = decode_nms(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold, manifest.max_det,
                         manifest.extra.get("pre_nms_topk"))
        out.append(Detections(geo.boxes_to_frame(ref.boxes), ref.scores, ref.class_ids, None, manifest.class_names))
    return out


# Ultralytics' predictor defaults (max_det, conf, iou) and the in-graph NMS sizes: pre_nms_topk /
# nms_iters are sized on a 200-person crowd at conf 0.01 (converters/export.py, bench_nms.py).
YOLO_DEFAULTS: dict[str, Any] = {"max_det": 300, "pre_nms_topk": 1024, "nms_iters": 8, "conf": 0.25, "iou": 0.7}


class UltralyticsFamily:
    """Ultralytics YOLO v8/11 detect and segment checkpoints (.pt), decode + NMS in the graph."""

    name = "ultralytics"
    summary = "Ultralytics YOLO v8/11 detect and segment (.pt)"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return ckpt.kind == "ultralytics" and (req.arch is None or req.arch.split(":")[0] == self.name)

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        opts = req.options
        d = YOLO_DEFAULTS  # where the user left an option at None
        max_det = d["max_det"] if opts.max_det is None else opts.max_det
        pre_nms_topk = d["pre_nms_topk"] if opts.pre_nms_topk is None else opts.pre_nms_topk
        conf = d["conf"] if opts.conf is None else opts.conf
        iou = d["iou"] if opts.iou is None else opts.iou
        nms_iters = d["nms_iters"] if opts.nms_iters is None else opts.nms_iters
        src = yolo_source(ckpt.obj, ckpt.path)
        h, w = req.imgsz or (640, 640)
        if h % max(src.strides) or w % max(src.strides):
            raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of the model's stride {max(src.strides)}")
        anchors = sum((h // s) * (w // s) for s in src.strides)
        topk = min(pre_nms_topk, anchors)
        post = DetectPostprocess(len(src.class_names), src.num_masks, min(max_det, topk), topk, nms_iters)
        wrapper = YoloWithPostprocess(src, post).eval()
        example = (torch.rand(2, 3, h, w), torch.tensor([conf]), torch.tensor([iou]))
        outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM]
        outputs += [OUT_COEFFS, OUT_PROTOS] if src.task == "segment" else []
        outputs.append(OUT_LIMITS)  # last: consumers that read the earlier outputs by position keep working
        with torch.no_grad():
            protos_shape = wrapper(*example)[outputs.index(OUT_PROTOS)].shape[1:] if src.task == "segment" else None
        manifest = yolo_manifest(
            src, (h, w), post.max_det, protos_shape,
            pre_nms_topk=topk, nms_iters=nms_iters, nms_block=post.block, anchors=anchors,
        ).replace(
            conf_threshold=conf, iou_threshold=iou,
            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"},
        )
        return Exportable(
            wrapper, example, [IN_IMAGES, IN_CONF, IN_IOU], outputs, manifest,
            lambda frames: reference_detections(src, frames, manifest),
        )
