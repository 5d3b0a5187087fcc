"""Decode + class-aware NMS + top-D padding, as a torch module that exports to plain ONNX.

Why not ONNX NonMaxSuppression: its output has a data-dependent shape, TensorRT-RTX
cannot build it, and the result would still need gathering into fixed-size outputs.
This module uses only TopK (constant K), Gather, elementwise ops and small MatMuls, which
every TensorRT version and ONNX Runtime build and run as they are.

Greedy NMS as a fixed point: candidates sorted by score, box j survives iff no
*surviving* higher-scored box i of the same class overlaps it above the IoU threshold.
Starting from "all survive" and applying that rule repeatedly gives the exact greedy
result once the iteration count reaches the longest chain of suppressions
(i suppresses j, which would otherwise suppress k, ...).

Blocks of ranks: the K candidates are taken `block` ranks at a time, best first. A block's
boxes can only be suppressed by boxes ranked above them, whose fate is already final, so a
block needs the IoU of its columns against the rows ranked above it and itself (an upper
block triangle: about half of the K x K pairs, in slabs small enough to stay in cache), one
MatMul against the final earlier keeps, and the fixed point only inside the block. Chains
that cross blocks are resolved by the block order, so a block never needs more iterations
than the whole K x K fixed point would, and the result is the same greedy NMS
(converters/reference.nms_chain_depth(..., block) counts the iterations a given input needs).

Exactness is reported, not hoped for: the last output, nms_limits int32[B], is a bit field
per image (NMS_CAPPED, NMS_UNCONVERGED below); 0 means the rows equal a plain greedy NMS
(converters/reference.decode_nms) of all anchors above conf, truncated to max_det.
"""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import

torch = lazy_import("torch")
nn = torch.nn

# nms_limits bits (int32[B], one value per image).
# More anchors scored above conf than pre_nms_topk, and fewer than max_det boxes survived among
# the K taken: a candidate that was never considered might have been kept. (When max_det boxes
# survive among the K best, every dropped candidate ranks below the last row: the rows are exact.)
NMS_CAPPED = 1
# The fixed point had not converged after nms_iters iterations in some block: one more
# iteration would change which boxes are kept.
NMS_UNCONVERGED = 2

# Measured on ONNX Runtime (2 cores, K = 1024): 128 and 256 cost the same and a single K x K block
# twice as much; 256 makes half the graph nodes (fewer layers for TensorRT).
DEFAULT_BLOCK = 256


class DetectPostprocess(nn.Module):  # type: ignore[misc]
    """preds float32[B, 4+C+M, N] (cx, cy, w, h, C class scores, M mask coeffs) -> fixed outputs.

    Returns, in this order: boxes float32[B, D, 4] xyxy, scores float32[B, D], class_ids
    int32[B, D], num_dets int32[B], for M > 0 mask_coeffs float32[B, D, M], and last
    nms_limits int32[B] (bits NMS_CAPPED | NMS_UNCONVERGED; 0 = exact greedy NMS).

    block: candidate ranks per block of the blocked fixed point (see the module docstring);
    block >= pre_nms_topk gives the plain K x K fixed point.
    """

    def __init__(self, num_classes: int, num_masks: int, max_det: int, pre_nms_topk: int, nms_iters: int,
                 block: int = DEFAULT_BLOCK) -> None:
        super().__init__()
        self.nc, self.nm = num_classes, num_masks
        self.max_det, self.topk, self.iters = max_det, pre_nms_topk, nms_iters
        if max_det > pre_nms_topk:
            raise ValueError("max_det must not exceed pre_nms_topk")
        if block < 1:
            raise ValueError("block must be at least 1")
        self.block = block
        self.blocks = blocks_of(pre_nms_topk, block)
        # upper[i, j] = 1 where i < j: inside a block only a higher-ranked box may suppress a lower one.
        size = self.blocks[0][1]
        self.register_buffer("upper", torch.triu(torch.ones(size, size), diagonal=1))  # persistent: the exporter then writes it once, not once per block (4x 256 KiB)

    def forward(self, preds: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        # Read in the head's own layout, [B, 4+C+M, N]: only the K columns taken are transposed.
        # Transposing the whole tensor first made this module cost OpenVINO 19.8 ms a frame
        # instead of 13.7 (wall, yolo11n-seg, 1 thread, real vtest preds; the outputs are identical).
        score, cls = preds[:, 4 : 4 + self.nc].max(1)  # [B, N]: single best class per anchor, as Ultralytics does
        # Anchors above conf, counted before the cap (float: exact below 2^24, and TensorRT
        # reduces float everywhere, int64 not).
        above = (score > conf).to(torch.float32).sum(1)  # [B]
        top_score, idx = score.topk(self.topk, dim=1)  # [B, K], sorted descending, ties: lower index first
        top_cls = cls.gather(1, idx).to(torch.float32)  # float: class ids < 2^24 compare exactly
        # Only the rows used later are gathered: the box (4) and the mask coefficients (M), not
        # the C class scores. Their source is a Concat of slices, never one Slice: OpenVINO
        # (2026.4) folds a lone Slice (or Split) feeding a GatherElements and then rejects the
        # widths it mismatched; a Concat of two or more it keeps. Gathering 36 rows, not 116, took
        # the module from 10.5 / 8.4 to 7.9 / 7.0 ms on OpenVINO and 9.2 / 9.5 to 7.9 / 6.2 ms on
        # ONNX Runtime (two interleaved runs, yolo11n-seg, 1 thread; the outputs are identical).
        masks = [preds[:, 4 + self.nc :]] if self.nm else []  # M = 0: no zero-size slice in the graph
        src = torch.cat([preds[:, :2], preds[:, 2:4], *masks], 1)  # [B, 4+M, N]
        rows = src.gather(2, idx.unsqueeze(1).expand(-1, src.shape[1], -1)).transpose(1, 2)  # [B, K, 4+M]
        xywh = rows[..., :4]
        xy, half = xywh[..., :2], xywh[..., 2:] / 2
        boxes = torch.cat([xy - half, xy + half], -1)  # [B, K, 4] xyxy
        valid = (top_score > conf).to(torch.float32).unsqueeze(1)  # [B, 1, K]
        keep, unconverged = nms_keep(box_features(boxes, top_cls), valid, iou, self.upper, self.blocks, self.iters)
        out_boxes, out_score, out_cls, num, order = select_kept(boxes, top_score, top_cls, keep, self.max_det)
        kept = keep.sum(1)  # [B]
        outs = [out_boxes, out_score, out_cls, num]
        if self.nm:
            kept_rows = rows.gather(1, order.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))  # [B, D, 4+M]
            outs.append(kept_rows[..., 4:])
        outs.append(nms_limits(above, self.topk, kept, self.max_det, unconverged))
        return tuple(outs)


def _suppress(rows: list[Any], cols: list[Any], iou: Any) -> Any:
    """rows: (x1, y1, x2, y2, area, class) each float32[B, R, 1]; cols: the same, each
    float32[B, 1, C] -> float32[B, R, C], 1 where the row box overlaps the column box
    above `iou` and both have the same class.

    The IoU is inter / union as torchvision's nms (what Ultralytics runs) and the numpy
    reference compute it, bit for bit: the threshold test then agrees with them even one
    ulp from the threshold. Only the width is clamped at 0: a negative height then makes
    the intersection <= 0, which fails "> iou" exactly as 0 does (iou >= 0), one op saved
    on every pair.
    """
    rx1, ry1, rx2, ry2, rarea, rcls = rows
    cx1, cy1, cx2, cy2, carea, ccls = cols
    iw = (torch.minimum(rx2, cx2) - torch.maximum(rx1, cx1)).clamp(min=0)
    ih = torch.minimum(ry2, cy2) - torch.maximum(ry1, cy1)
    inter = iw * ih
    over = inter / (rarea + carea - inter) > iou
    return (over & (rcls == ccls)).to(torch.float32)


def _step(keep: Any, free: Any, own: Any) -> Any:
    """One fixed-point step inside a block: keep float32[B, 1, b] -> float32[B, 1, b].

    Suppressor counts are small integers, exact in float: free - count is 1 for a free box
    nobody kept suppresses and <= 0 otherwise, so a clamp replaces a compare, cast and mul.
    """
    return (free - torch.matmul(keep, own)).clamp(min=0)


def box_features(boxes: Any, classes: Any) -> tuple[Any, ...]:
    """boxes float32[B, K, 4] xyxy, classes [B, K] -> (x1, y1, x2, y2, area, class) float32[B, K] each."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    # A zero area becomes the smallest normal float: a union of two empty boxes is then
    # not 0 (no 0/0 NaN in the IoU), and any other sum is unchanged (far below one ulp).
    area = ((x2 - x1) * (y2 - y1)).clamp(min=torch.finfo(torch.float32).tiny)
    return x1, y1, x2, y2, area, classes.to(torch.float32)  # float: class ids < 2^24 compare exactly


def blocks_of(k: int, block: int) -> list[tuple[int, int]]:
    """[start, end) rank ranges of the blocked fixed point over k candidates."""
    return [(s, min(s + block, k)) for s in range(0, k, block)]


def nms_keep(feats: tuple[Any, ...], valid: Any, iou: Any, upper: Any, blocks: list[tuple[int, int]],
             iters: int) -> tuple[Any, Any]:
    """The blocked fixed point (module docstring). feats: box_features(); valid float32[B, 1, K]
    (1 where score > conf); upper float32[b, b] (1 where i < j); blocks: blocks_of(K, b).
    Returns keep float32[B, K] (1 = kept) and unconverged float32[B] (1 where one more step
    would change the result)."""
    rows_f = [f.unsqueeze(2) for f in feats]  # [B, K, 1] each: rows of the IoU slabs
    cols_f = [f.unsqueeze(1) for f in feats]  # [B, 1, K] each: their columns
    keeps: list[Any] = []
    nexts: list[Any] = []
    for s, e in blocks:
        # Columns: this block. Rows: every rank above its end.
        sup = _suppress([f[:, :e] for f in rows_f], [f[:, :, s:e] for f in cols_f], iou)  # [B, e, b]
        own = sup[:, s:, :] * upper[: e - s, : e - s]  # only a higher rank suppresses
        free = valid[:, :, s:e]  # [B, 1, b]
        if keeps:
            # The earlier blocks are final: one MatMul says which of this block they suppress.
            # This block's rows count 0 in it (zeros rather than slicing the slab: no copy).
            hits = torch.matmul(torch.cat([*keeps, torch.zeros_like(free)], 2), sup)  # [B, 1, b]
            free = (free - hits).clamp(min=0)
        keep = free
        for _ in range(iters):
            keep = _step(keep, free, own)
        keeps.append(keep)
        # One step more tells whether the fixed point was reached (a fixed point is the
        # greedy result: it is unique, since suppression only runs down the ranking).
        nexts.append(_step(keep, free, own))
    keep = torch.cat(keeps, 2).squeeze(1)  # [B, K]
    unconverged = (torch.cat(nexts, 2).squeeze(1) - keep).abs().amax(1)  # [B], 0 or 1
    return keep, unconverged


def select_kept(boxes: Any, scores: Any, classes: Any, keep: Any, max_det: int) -> tuple[Any, Any, Any, Any, Any]:
    """The max_det best kept rows: boxes float32[B, D, W] (W: 4 xyxy, 5 xywhr), scores float32[B, D] (padding 0),
    class_ids int32[B, D], num_dets int32[B], and their indices into K, int64[B, D]."""
    ranked = keep * scores  # dropped boxes score 0 and sink below every kept one
    out_score, order = ranked.topk(max_det, dim=1)  # [B, D]
    num = keep.sum(1).clamp(max=max_det).to(torch.int32)
    out_boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, boxes.shape[-1]))
    out_cls = classes.gather(1, order).to(torch.int32)
    return out_boxes, out_score, out_cls, num, order


def nms_limits(above: Any, k: int, kept: Any, max_det: int, unconverged: Any) -> Any:
    """The nms_limits bits, int32[B]: NMS_CAPPED where more than k candidates scored above conf
    (above float32[B]) and fewer than max_det survived among the k taken (kept float32[B]), plus
    NMS_UNCONVERGED where the fixed point had not converged (unconverged float32[B], 0 or 1)."""
    capped = (above > k).to(torch.float32) * (kept < max_det).to(torch.float32)
    return (capped * NMS_CAPPED + (unconverged > 0).to(torch.float32) * NMS_UNCONVERGED).to(torch.int32)


def class_aware_nms(boxes: Any, scores: Any, classes: Any, conf: Any, iou: Any, upper: Any, iters: int,
                    max_det: int, k: int | None = None, above: Any = None) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Greedy class-aware NMS over K candidates sorted by score, then the D best (for graphs
    other than DetectPostprocess: the torchvision detectors).

    boxes float32[B, K, 4] xyxy, scores float32[B, K] sorted descending, classes int[B, K],
    conf / iou float32[1] (a box is a candidate iff score > conf; j is suppressed by a kept,
    higher-ranked i of its class iff IoU(i, j) > iou, as torchvision's nms), upper float32[b, b]
    with 1 where i < j (b: the block; b = K for one block), k: K (None: b), above float32[B]:
    how many candidates scored above conf before the K best were taken (None: no cap, only K).
    Returns boxes float32[B, D, 4], scores float32[B, D] (padding rows 0), class_ids int32[B, D],
    num_dets int32[B], the kept rows' indices into K, int64[B, D], and nms_limits int32[B].
    """
    k = int(upper.shape[0]) if k is None else k
    valid = (scores > conf).to(torch.float32).unsqueeze(1)  # [B, 1, K]
    keep, unconverged = nms_keep(box_features(boxes, classes), valid, iou, upper, blocks_of(k, int(upper.shape[0])),
                                 iters)
    out_boxes, out_score, out_cls, num, order = select_kept(boxes, scores, classes, keep, max_det)
    if above is None:
        above = valid.sum((1, 2))
    return out_boxes, out_score, out_cls, num, order, nms_limits(above, k, keep.sum(1), max_det, unconverged)
