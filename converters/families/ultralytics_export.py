"""An Ultralytics model made ready for export, shared by every Ultralytics head (detect,
segment, end-to-end, pose, OBB, classify, RT-DETR)."""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

from .yolo_unsplit import unsplit


def export_mode(model: Any) -> Any:
    """An Ultralytics model (float32) -> fused, eval, frozen and traceable, its head in export
    mode (decoded boxes / keypoints / angles, or probabilities; no NMS). Every Ultralytics
    family (detect, segment, pose, OBB, classify, RT-DETR) exports through this."""
    model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for m in model.modules():
        names = {c.__name__ for c in type(m).__mro__}
        if hasattr(m, "inplace"):
            m.inplace = False  # in-place ops confuse the tracer
        if names & {"Detect", "Classify", "RTDETRDecoder"}:
            m.export, m.format = True, "onnx"
            if names & {"Detect", "RTDETRDecoder"}:
                m.dynamic = False
            if "Detect" in names:
                m.shape = None
                if hasattr(m, "xyxy"):
                    m.xyxy = False  # keep cx,cy,w,h: our post-processing converts
        if "C2f" in names:  # C2f and its subclasses (C3k2 in YOLO11)
            # Split with constant sizes instead of chunk, whose Slice bounds come from the
            # run-time shape: OpenVINO miscomputes that Slice inside INT8 Q/DQ graphs.
            m.forward = m.forward_split
        if type(m).__name__ == "DFL":
            m.forward = types.MethodType(dfl_last_axis, m)
    unsplit(model)  # cv1 as two convolutions, no Split: faster on ONNX Runtime's CPU layout (yolo_unsplit.py)
    return model


def yolo_names(model: Any) -> tuple[str, ...]:
    """An Ultralytics model's class names, in class-id order."""
    names = model.names
    return tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)


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


def head_outputs(model: Any, frames: Any, manifest: Any) -> Any:
    """The references' shared loop: each uint8 BGR frame pre-processed as the manifest says, run
    through the PyTorch model -> (the head's first output for that frame as a numpy array,
    e.g. float32[4+C+M, N] or float32[K, 6], and the frame's Geometry), one pair per frame."""
    import torch

    from edgevision.preprocess import preprocess

    for frame in frames:
        x, geo = preprocess(frame, manifest.input_hw, manifest.preprocess)
        with torch.no_grad():
            raw = model(torch.from_numpy(x))
        yield (raw[0] if isinstance(raw, (tuple, list)) else raw)[0].numpy(), geo


# Ultralytics' predictor defaults (max_det, conf, iou) and the in-graph NMS sizes: pre_nms_topk /
# nms_iters are sized on a 200-person crowd at conf 0.01 (converters/export.py, bench_nms.py).
YOLO_DEFAULTS: dict[str, Any] = {"max_det": 300, "pre_nms_topk": 1024, "nms_iters": 8, "conf": 0.25, "iou": 0.7}


@dataclass(frozen=True)
class NmsSettings:
    """The user's options with Ultralytics' predictor defaults where left at None."""

    max_det: int
    pre_nms_topk: int
    nms_iters: int
    conf: float
    iou: float


def nms_settings(req: Any) -> NmsSettings:
    """req: a families.base.Request; its options resolved against YOLO_DEFAULTS."""
    opts, d = req.options, YOLO_DEFAULTS

    def pick(name: str) -> Any:
        value = getattr(opts, name, None) if opts is not None else None
        return d[name] if value is None else value

    return NmsSettings(pick("max_det"), pick("pre_nms_topk"), pick("nms_iters"), pick("conf"), pick("iou"))


def detect_postprocess(num_classes: int, num_extra: int, s: NmsSettings, anchors: int) -> tuple[Any, dict[str, Any]]:
    """Edgevision's in-graph NMS for a YOLO-style head of `anchors` rows with num_extra channels
    after the class scores (mask coefficients, keypoints), sized by s: (DetectPostprocess, the
    manifest extras that record its sizes)."""
    from ..nms import DetectPostprocess

    topk = min(s.pre_nms_topk, anchors)
    post = DetectPostprocess(num_classes, num_extra, min(s.max_det, topk), topk, s.nms_iters)
    return post, {"pre_nms_topk": topk, "nms_iters": s.nms_iters, "nms_block": post.block, "anchors": anchors}
