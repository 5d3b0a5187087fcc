"""edgevision's post-processing for each foreign raw layout (converters/foreign/spec.py), as
torch modules that export to a small ONNX graph joined after the foreign one (graph.py).

Every head takes the foreign raw outputs (in the layout's order), then conf_threshold and
iou_threshold float32[1], and returns edgevision's fixed detection outputs in the order of
converters/families/ultralytics.py: boxes float32[B, D, 4] xyxy input pixels, scores
float32[B, D] (descending, padding 0), class_ids int32[B, D], num_dets int32[B], for segmenters
mask_coeffs float32[B, D, M] and protos float32[B, M, Hp, Wp], and last nms_limits int32[B].

Layouts with NMS (yolo, ssd) become Ultralytics' raw [B, 4+C(+M), N] and go through
converters.nms.DetectPostprocess; end-to-end layouts (end2end, detr) take the top D rows.
"""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import

from ..nms import DetectPostprocess
from .spec import ForeignSpec

torch = lazy_import("torch")
nn = torch.nn


def class_probs(logits: Any, score_fn: str, background: str) -> Any:
    """float32[B, N, K] class outputs -> float32[B, N, C] probabilities, the background column dropped."""
    if score_fn == "sigmoid":
        logits = logits.sigmoid()
    elif score_fn == "softmax":
        logits = logits.softmax(-1)
    if background == "first":
        return logits[..., 1:]
    if background == "last":
        return logits[..., :-1]
    return logits


def to_pixels(boxes: Any, box_format: str, normalized: bool, input_hw: tuple[int, int], want: str) -> Any:
    """float32[..., 4] boxes in the spec's format (xyxy | cxcywh, maybe normalised) -> `want`
    (xyxy | cxcywh) in input pixels. cxcywh feeds DetectPostprocess; xyxy the end-to-end heads."""
    if box_format != want:
        a, b = boxes[..., :2], boxes[..., 2:4]
        boxes = torch.cat([a - b / 2, a + b / 2] if want == "xyxy" else [(a + b) / 2, b - a], -1)
    if normalized:
        h, w = input_hw
        boxes = boxes * torch.tensor([w, h, w, h], dtype=torch.float32)
    return boxes


class NmsHead(nn.Module):  # type: ignore[misc]
    """yolo preds float32[B, 4+C+M, N] (+ protos), or ssd boxes float32[B, N, 4] + class outputs
    float32[B, N, C(+1)] -> edgevision's outputs, through DetectPostprocess (NMS in the graph)."""

    def __init__(self, spec: ForeignSpec, post: DetectPostprocess, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.spec, self.post, self.hw = spec, post, input_hw
        self.seg = spec.task == "segment"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        *raw, conf, iou = args
        s = self.spec
        if s.layout == "ssd":
            boxes = to_pixels(raw[0], s.box_format, s.normalized, self.hw, "cxcywh")
            preds = torch.cat([boxes, class_probs(raw[1], s.score_fn, s.background)], -1).transpose(1, 2)
        else:
            preds = raw[0]
            if s.box_format != "cxcywh" or s.normalized:
                box = to_pixels(preds[:, :4].transpose(1, 2), s.box_format, s.normalized, self.hw, "cxcywh")
                preds = torch.cat([box.transpose(1, 2), preds[:, 4:]], 1)
        *dets, limits = self.post(preds, conf, iou)
        if self.seg:
            return (*dets, raw[1] * 1.0, limits)  # protos pass through under edgevision's name
        return (*dets, limits)


class TopKHead(nn.Module):  # type: ignore[misc]
    """end2end rows float32[B, N, 6+M] (+ protos), or detr boxes float32[B, N, 4] + logits
    float32[B, N, C(+1)] -> the D best rows above conf (no NMS: the model made its rows unique)."""

    def __init__(self, spec: ForeignSpec, max_det: int, num_classes: int, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.spec, self.max_det, self.nc, self.hw = spec, max_det, num_classes, input_hw
        self.seg = spec.task == "segment"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        *raw, conf, iou = args
        s = self.spec
        if s.layout == "detr":
            boxes = to_pixels(raw[0], s.box_format, s.normalized, self.hw, "xyxy")
            score, cls = class_probs(raw[1], s.score_fn, s.background).max(-1)  # best class per query
            cls = cls.to(torch.float32)
            rows = None
        else:
            rows = raw[0]
            boxes = to_pixels(rows[..., :4], s.box_format, s.normalized, self.hw, "xyxy")
            score, cls = rows[..., 4], rows[..., 5]
        top, idx = score.topk(self.max_det, dim=1)  # [B, D], descending
        valid = top > conf
        out_boxes = boxes.gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
        out_cls = cls.gather(1, idx).round().to(torch.int32)  # a float class column: round, never truncate 2.9999
        num = valid.to(torch.int32).sum(1, dtype=torch.int32)
        outs = [out_boxes, top * valid.to(torch.float32), out_cls, num]
        if self.seg and rows is not None:
            outs += [rows.gather(1, idx.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))[..., 6:], raw[1] * 1.0]
        # nms_limits 0: no candidate cap, no fixed point, the rows are exact. There is no NMS, but
        # iou stays an input (times 0), so every detector artifact takes the same inputs.
        outs.append(num * 0 + (iou * 0).to(torch.int32))
        return tuple(outs)
