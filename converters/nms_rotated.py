"""Rotated-box NMS in the graph, as Ultralytics' OBB predictor does it, from standard ops.

Ultralytics (utils/nms.py, non_max_suppression(rotated=True)) keeps the best class per anchor,
moves every box's centre by class * 7680 (max_wh: boxes of different classes then never
overlap), and runs TorchNMS.fast_nms with batch_probiou: the candidates sorted by score, box j
is dropped iff some *higher-ranked* candidate, kept or not, has probiou(i, j) > iou. That is
one pass, not greedy NMS: no fixed point to iterate. The graph reproduces it with TopK
(constant K), Gather, elementwise ops and reductions over probiou slabs; probiou is written
with Ultralytics' operations in Ultralytics' order, so the threshold test agrees with it even
near the threshold. Only the upper block triangle is computed (columns taken `block` ranks at
a time against the rows ranked above their block's end, as converters/nms.py does): measured
on ONNX Runtime, 1 thread, K = 1024, 3 classes, 32 ms per image with blocks of 256 against
68 ms for the whole K x K matrix, identical outputs.

A box ranked below the K taken can only drop boxes ranked below itself, so the K rows are
exact; what the cap can cut is rows past K, reported by nms_limits' NMS_CAPPED bit as for
axis-aligned boxes (NMS_UNCONVERGED never: there is no iteration).
"""
from __future__ import annotations

from typing import Any

from edgevision._lazy import lazy_import

from .nms import DEFAULT_BLOCK, blocks_of, nms_limits, select_kept

torch = lazy_import("torch")
nn = torch.nn

MAX_WH = 7680.0  # Ultralytics' per-class centre offset (non_max_suppression's max_wh)
PROBIOU_EPS = 1e-7  # batch_probiou's eps


def covariance(xywhr: Any) -> tuple[Any, Any, Any]:
    """float32[..., 5] -> (a, b, c) each float32[...]: the box's Gaussian covariance [[a, c], [c, b]]
    (Ultralytics' _get_covariance_matrix with floor 0)."""
    a = xywhr[..., 2].pow(2) / 12
    b = xywhr[..., 3].pow(2) / 12
    cos, sin = xywhr[..., 4].cos(), xywhr[..., 4].sin()
    cos2, sin2 = cos.pow(2), sin.pow(2)
    return a * cos2 + b * sin2, a * sin2 + b * cos2, (a - b) * cos * sin


def pairwise_probiou(xywhr: Any, eps: float = PROBIOU_EPS) -> Any:
    """float32[B, K, 5] -> float32[B, K, K] probiou of every pair (rows i, columns j), Ultralytics'
    batch_probiou term by term."""
    feats = probiou_features(xywhr)
    return probiou_slab([f.unsqueeze(2) for f in feats], [f.unsqueeze(1) for f in feats], eps)


def probiou_features(xywhr: Any) -> tuple[Any, ...]:
    """float32[B, K, 5] -> (x, y, a, b, c) each float32[B, K]: centre and covariance per box."""
    a, b, c = covariance(xywhr)
    return xywhr[..., 0], xywhr[..., 1], a, b, c


def probiou_slab(rows: list[Any], cols: list[Any], eps: float = PROBIOU_EPS) -> Any:
    """rows: (x, y, a, b, c) each float32[B, R, 1]; cols: the same, each float32[B, 1, C] ->
    float32[B, R, C] probiou (Ultralytics' batch_probiou, term by term)."""
    x1, y1, a1, b1, c1 = rows
    x2, y2, a2, b2, c2 = cols
    den = (a1 + a2) * (b1 + b2) - (c1 + c2).pow(2)
    t1 = (((a1 + a2) * (y1 - y2).pow(2) + (b1 + b2) * (x1 - x2).pow(2)) / (den + eps)) * 0.25
    t2 = (((c1 + c2) * (x2 - x1) * (y1 - y2)) / (den + eps)) * 0.5
    t3 = (den / (4 * ((a1 * b1 - c1.pow(2)).clamp(min=0) * (a2 * b2 - c2.pow(2)).clamp(min=0)).sqrt() + eps)
          + eps).log() * 0.5
    bd = (t1 + t2 + t3).clamp(eps, 100.0)
    hd = (1.0 - (-bd).exp() + eps).sqrt()
    return 1 - hd


class RotatedPostprocess(nn.Module):  # type: ignore[misc]
    """preds float32[B, 4+C+1, N] (cx, cy, w, h, C class scores, angle; input pixels, radians)
    -> xywhr float32[B, D, 5], scores float32[B, D] (sorted descending, padding 0), class_ids
    int32[B, D], num_dets int32[B], nms_limits int32[B] (bit NMS_CAPPED; 0 = exactly Ultralytics'
    rotated NMS of all anchors above conf, truncated to max_det)."""

    def __init__(self, num_classes: int, max_det: int, pre_nms_topk: int, block: int = DEFAULT_BLOCK) -> None:
        super().__init__()
        if max_det > pre_nms_topk:
            raise ValueError("max_det must not exceed pre_nms_topk")
        self.nc, self.max_det, self.topk = num_classes, max_det, pre_nms_topk
        self.blocks = blocks_of(pre_nms_topk, block)
        # upper[i, j] = 1 where i < j: inside a block only a higher-ranked box drops a lower one. One
        # block x block triangle (as converters/nms.py): a K x K one would be sliced into per-block
        # constants that the exported graph stores (2.5 MiB at K = 1024) for what rows < s need not mask.
        size = self.blocks[0][1]
        self.register_buffer("upper", torch.triu(torch.ones(size, size), diagonal=1))

    def forward(self, preds: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        p = preds.transpose(1, 2)  # [B, N, 4+C+1]
        score, cls = p[..., 4 : 4 + self.nc].max(-1)  # [B, N]: best class per anchor, as Ultralytics
        above = (score > conf).to(torch.float32).sum(1)  # [B], before the cap
        top_score, idx = score.topk(self.topk, dim=1)  # [B, K], sorted descending
        top_cls = cls.gather(1, idx).to(torch.float32)  # float: class ids < 2^24 are exact
        rows = p.gather(1, idx.unsqueeze(-1).expand(-1, -1, p.shape[-1]))  # [B, K, 4+C+1], whole rows (see nms.py)
        xywhr = torch.cat([rows[..., :4], rows[..., -1:]], -1)  # [B, K, 5]
        offset = (top_cls * MAX_WH).unsqueeze(-1)  # [B, K, 1]
        shifted = torch.cat([xywhr[..., :2] + offset, xywhr[..., 2:]], -1)
        feats = probiou_features(shifted)
        rows_f = [f.unsqueeze(2) for f in feats]
        cols_f = [f.unsqueeze(1) for f in feats]
        hits = []
        for s, e in self.blocks:
            # columns s:e are only dropped by rows ranked above them: rows 0:e (the upper block triangle)
            over = (probiou_slab([f[:, :e] for f in rows_f], [f[:, :, s:e] for f in cols_f]) > iou).to(torch.float32)
            # the whole buffer where the block is full: the exporter then stores it once, not once per block
            upper = self.upper if e - s == self.upper.shape[0] else self.upper[: e - s, : e - s]
            hit = (over[:, s:] * upper).sum(1)  # [B, e - s]: this block's own rows
            if s:  # the earlier blocks' rows all rank above these columns: no mask
                hit = hit + over[:, :s].sum(1)
            hits.append(hit)
        valid = (top_score > conf).to(torch.float32)  # [B, K]
        # dropped iff any higher-ranked candidate overlaps (valid rows only: every row ranked above a
        # valid column scores at least as high, so it is valid too)
        keep = valid * (torch.cat(hits, 1) < 0.5).to(torch.float32)  # [B, K]
        out_boxes, out_score, out_cls, num, _ = select_kept(xywhr, top_score, top_cls, keep, self.max_det)
        kept = keep.sum(1)
        limits = nms_limits(above, self.topk, kept, self.max_det, torch.zeros_like(kept))
        return out_boxes, out_score, out_cls, num, limits
