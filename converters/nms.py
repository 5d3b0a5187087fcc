"""Decode + class-aware NMS + top-D padding, as a torch module that exports to plain ONNX.

Why not ONNX NonMaxSuppression: its output has a data-dependent shape, TensorRT-RTX
cannot build it, and the result would still need gathering into fixed-size outputs.
This module uses only TopK, Gather, elementwise ops and a small MatMul, which every
TensorRT version and ONNX Runtime build and run as they are.

Greedy NMS as a fixed point: candidates sorted by score, box j survives iff no
*surviving* higher-scored box i of the same class overlaps it above the IoU threshold.
Starting from "all survive" and applying that rule repeatedly gives the exact greedy
result once the iteration count reaches the longest chain of suppressions
(i suppresses j, which would otherwise suppress k, ...). Real detections have short
chains; `nms_iters` is recorded in the manifest and the tests measure it against the
greedy reference (converters/reference.py) on real frames.
"""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import

torch = lazy_import("torch")
nn = torch.nn


class DetectPostprocess(nn.Module):  # type: ignore[misc]
    """preds float32[B, 4+C+M, N] (cx, cy, w, h, C class scores, M mask coeffs) -> fixed outputs.

    Returns boxes float32[B, D, 4] xyxy, scores float32[B, D], class_ids int32[B, D],
    num_dets int32[B], and for M > 0 mask_coeffs float32[B, D, M].
    """

    def __init__(self, num_classes: int, num_masks: int, max_det: int, pre_nms_topk: int, nms_iters: int) -> None:
        super().__init__()
        self.nc, self.nm = num_classes, num_masks
        self.max_det, self.topk, self.iters = max_det, pre_nms_topk, nms_iters
        if max_det > pre_nms_topk:
            raise ValueError("max_det must not exceed pre_nms_topk")
        # upper[i, j] = 1 where i < j: only a higher-ranked box may suppress a lower one.
        self.register_buffer("upper", torch.triu(torch.ones(pre_nms_topk, pre_nms_topk), diagonal=1), persistent=False)

    def forward(self, preds: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        p = preds.transpose(1, 2)  # [B, N, 4+C+M]
        cls_scores = p[..., 4 : 4 + self.nc]
        score, cls = cls_scores.max(-1)  # [B, N]: single best class per anchor, as Ultralytics does
        top_score, idx = score.topk(self.topk, dim=1)  # [B, K], sorted descending
        top_cls = cls.gather(1, idx)
        # Whole rows are gathered and sliced afterwards: a GatherElements whose data is a Slice
        # of a wider tensor is valid ONNX, but OpenVINO folds the Slice away and then rejects
        # the mismatched widths ([B, N, 4+C+M] data, [B, K, 4] indices).
        rows = p.gather(1, idx.unsqueeze(-1).expand(-1, -1, p.shape[-1]))  # [B, K, 4+C+M]
        xywh = rows[..., :4]
        xy, half = xywh[..., :2], xywh[..., 2:] / 2
        boxes = torch.cat([xy - half, xy + half], -1)  # [B, K, 4] xyxy

        out_boxes, out_score, out_cls, num, order = class_aware_nms(
            boxes, top_score, top_cls, conf, iou, self.upper, self.iters, self.max_det)
        outs = [out_boxes, out_score, out_cls, num]
        if self.nm:
            kept_rows = rows.gather(1, order.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))  # [B, D, 4+C+M]
            outs.append(kept_rows[..., 4 + self.nc :])
        return tuple(outs)


def class_aware_nms(boxes: Any, scores: Any, classes: Any, conf: Any, iou: Any, upper: Any, iters: int,
                    max_det: int) -> tuple[Any, Any, Any, Any, Any]:
    """Greedy class-aware NMS as a fixed point over K candidates sorted by score, then the D best.

    boxes float32[B, K, 4] xyxy, scores float32[B, K] sorted descending, classes int[B, K],
    conf / iou float32[1] (a box is a candidate iff score > conf; j is suppressed by a kept,
    higher-ranked i of its class iff IoU(i, j) > iou, as torchvision's nms), upper float32[K, K]
    with 1 where i < j. Returns boxes float32[B, D, 4], scores float32[B, D] (padding rows 0),
    class_ids int32[B, D], num_dets int32[B] and the kept rows' indices into K, int64[B, D].
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    iw = (torch.minimum(x2[:, :, None], x2[:, None, :]) - torch.maximum(x1[:, :, None], x1[:, None, :])).clamp(min=0)
    ih = (torch.minimum(y2[:, :, None], y2[:, None, :]) - torch.maximum(y1[:, :, None], y1[:, None, :])).clamp(min=0)
    inter = iw * ih
    union = area[:, :, None] + area[:, None, :] - inter
    # inter > iou * union avoids a division (and its 0/0) and is exact for the threshold test.
    overlaps = (inter > iou * union) & (classes[:, :, None] == classes[:, None, :])
    suppress = overlaps.to(torch.float32) * upper  # [B, K, K]

    valid = (scores > conf).to(torch.float32)  # [B, K]
    keep = valid
    for _ in range(iters):
        hits = torch.matmul(keep.unsqueeze(1), suppress).squeeze(1)  # [B, K] surviving suppressors
        keep = valid * (hits < 0.5).to(torch.float32)

    ranked = keep * scores  # dropped boxes score 0 and sink below every kept one
    out_score, order = ranked.topk(max_det, dim=1)  # [B, D]
    num = keep.sum(1).clamp(max=max_det).to(torch.int32)
    out_boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))
    out_cls = classes.gather(1, order).to(torch.int32)
    return out_boxes, out_score, out_cls, num, order
