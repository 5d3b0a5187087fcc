"""torchvision's MultiScaleRoIAlign for a fixed number of boxes, as a torch module that exports
to plain ONNX (no data-dependent shapes: torchvision's own version gathers each level's boxes
with NonZero and scatters them back).

Two ways, chosen by `mode`:
- "gather": the bilinear samples read with one row Gather from all levels' features laid out
  channel-last, each box only at its own level; weights as torchvision's roi_align kernel
  (aligned=False: box sides at least 1, samples beyond one pixel outside the map are 0, others
  clamped to the edge). Bilinear weights are separable (a bin's 2x2 samples form a grid), so
  the rows and the columns are weighted one after the other.
- "onnx": the ONNX RoiAlign op (opset >= 16, coordinate_transformation_mode
  "output_half_pixel" = aligned=False) on every level for every box, summed under each box's
  level mask (L x the sampling work).

Measured on this project's build machine (2 shared cores, AVX2; ONNX Runtime 1.32, TensorRT-RTX
1.7; tests/test_roi_align.py and benchmarks/bench_roi_align.py: 2 images x 1000 boxes, C 256,
7x7, FPN levels of a 320x448 input, boxes on the edges):
- TensorRT-RTX: "gather" parses and builds (alone and inside whole Faster/Mask R-CNN graphs);
  "onnx" does not parse here: its importer creates TensorRT's ROIAlign plugin (ROIAlignV3, built
  into TensorRT-RTX), whose creation fails without a CUDA driver (error 35), then "importRoiAlign:
  UNSUPPORTED_NODE: ROIAlign plugin was not found in the plugin registry". On a GPU it may import,
  but as a plugin layer, which this project's graphs avoid; that build is not verified here.
- Max abs difference to torchvision.ops MultiScaleRoIAlign: "gather" 6.0e-7 (the same terms
  summed in another order), "onnx" 0.0 (ONNX Runtime's kernel is torchvision's).
- ONNX Runtime wall time per call (median of 3): "gather" 0.80 s, "onnx" 2.30 s on a quiet
  machine; 2.7 s vs 6.1 s and 4.8 s vs 12.0 s while other jobs shared it. A block-diagonal dense
  MatMul per box for the weighted sums measured no faster (1.33 s vs 1.17 s in one run). Both are bound by memory: "gather" materialises the 16 bilinear corners
  of every bin (2 x 1000 x 784 rows of 256 floats, in chunks of GATHER_CHUNK boxes); "onnx" pools
  every box on every level. (GridSample per level, tried as a third form, took 40 s.)
So "gather" is the default (builds here, no plugin, faster on ONNX Runtime) and "onnx" stays selectable (one short method) for runtimes that have
a RoiAlign kernel (ONNX Runtime, TensorRT with its plugin library).
"""
from __future__ import annotations

import math
from typing import Any

from edgevision._lazy import lazy_import

torch = lazy_import("torch")

ROI_ALIGN_MODES = ("gather", "onnx")
# Boxes sampled per Gather: bounds the gathered [B, chunk * (2P)^2, C] tensor (256 channels,
# P 7: about 100 MB at 128 boxes a chunk) without one node per box.
GATHER_CHUNK = 128


def level_scales(feats: list[Any], image_hw: tuple[int, int]) -> list[float]:
    """torchvision's _infer_scale: feature/image size rounded to a power of two, per level."""
    return [2.0 ** round(math.log2(float(f.shape[-2]) / float(image_hw[0]))) for f in feats]


def box_levels(boxes: Any, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4) -> Any:
    """boxes float32[..., 4] xyxy (input pixels) -> pyramid level index int64[...] in [0, k_max - k_min],
    torchvision's LevelMapper (FPN paper eq. 1, eps 1e-6)."""
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    lvl = torch.floor(canonical_level + torch.log2(torch.sqrt(area) / canonical_scale) + 1e-6)
    return (lvl.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)


class MultiScaleRoiAlign(torch.nn.Module):  # type: ignore[misc,name-defined]
    """feats: list of L float32[B, C, H_l, W_l], boxes float32[B, R, 4] xyxy in input pixels
    -> float32[B * R, C, P, P] (box r of image b at row b * R + r), as torchvision's
    MultiScaleRoIAlign(featmap_names, P, sampling_ratio) gives for the same boxes.

    scales: per level (level_scales); sampling_ratio > 0 (torchvision's detectors use 2).
    """

    def __init__(self, scales: list[float], output_size: int, sampling_ratio: int, mode: str = "gather") -> None:
        super().__init__()
        if mode not in ROI_ALIGN_MODES:
            raise ValueError(f"RoIAlign mode {mode!r}: one of {', '.join(ROI_ALIGN_MODES)}")
        if sampling_ratio < 1:
            raise ValueError("an adaptive sampling_ratio (<= 0) depends on the box size: not a fixed graph")
        self.scales, self.p, self.g, self.mode = scales, output_size, sampling_ratio, mode
        self.k_min = int(round(-math.log2(scales[0])))
        self.k_max = int(round(-math.log2(scales[-1])))
        # sample offsets inside a box, in bins: bin j, sample i -> j + (i + 0.5) / g
        self.register_buffer("bin_index", torch.arange(output_size, dtype=torch.float32), persistent=False)
        self.register_buffer("sample_frac", (torch.arange(sampling_ratio, dtype=torch.float32) + 0.5),
                             persistent=False)

    def forward(self, feats: list[Any], boxes: Any) -> Any:
        levels = box_levels(boxes, self.k_min, self.k_max) if len(feats) > 1 else torch.zeros_like(boxes[..., 0],
                                                                                                 dtype=torch.int64)
        if self.mode == "onnx":
            return self._onnx(feats, boxes, levels)
        return self._gather(feats, boxes, levels)

    def _onnx(self, feats: list[Any], boxes: Any, levels: Any) -> Any:
        ops = lazy_import("torchvision.ops")
        b, r = boxes.shape[0], boxes.shape[1]
        ids = torch.arange(b, dtype=boxes.dtype).reshape(-1, 1, 1).expand(-1, r, 1)
        rois = torch.cat([ids, boxes], 2).reshape(-1, 5)
        flat_levels = levels.reshape(-1, 1, 1, 1)
        out = None
        for lvl, (f, s) in enumerate(zip(feats, self.scales)):
            y = ops.roi_align(f, rois, self.p, spatial_scale=s, sampling_ratio=self.g, aligned=False)
            y = y * (flat_levels == lvl).to(y.dtype)
            out = y if out is None else out + y
        return out

    def _axis(self, start: Any, end: Any, size: Any) -> tuple[Any, Any, Any, Any]:
        """One axis of torchvision's bilinear_interpolate for every sample of every box.

        start / end float32[B, R] (scaled box sides), size float32[B, R] (map side at the box's
        level) -> low / high indices float32[B, R, P, g], and their weights float32[B, R, P, g]
        (zero for a sample beyond one pixel outside the map, divided by g: the bin's mean).
        """
        length = (end - start).clamp(min=1.0)  # aligned=False: a box is at least one pixel
        bin_size = (length / self.p)[..., None, None]
        # torchvision: start + pw * bin_size + (ix + .5) * bin_size / grid
        pos = start[..., None, None] + self.bin_index[:, None] * bin_size + \
            self.sample_frac * bin_size / self.g  # [B, R, P, g]
        size = size[..., None, None]
        inside = ((pos >= -1.0) & (pos <= size)).to(pos.dtype)
        pos = pos.clamp(min=0.0)
        low = torch.floor(pos)
        top = low >= size - 1  # at (or past) the last pixel: both corners on it, weight on low
        low = torch.where(top, size - 1, low)
        high = torch.where(top, low, low + 1)
        frac = torch.where(top, torch.zeros_like(pos), pos - low)
        return low, high, (1.0 - frac) * inside / self.g, frac * inside / self.g

    def _gather(self, feats: list[Any], boxes: Any, levels: Any) -> Any:
        b, r, c = boxes.shape[0], boxes.shape[1], feats[0].shape[1]
        p, g = self.p, self.g
        # all levels channel-last, one after the other: row (b, level offset + y * W + x)
        flat = torch.cat([f.permute(0, 2, 3, 1).reshape(b, -1, c) for f in feats], 1)  # [B, S, C]
        per_image = flat.shape[1]
        flat = flat.reshape(-1, c)
        sizes = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
        offsets, acc = [], 0
        for h, w in sizes:
            offsets.append(acc)
            acc += h * w
        onehot = torch.nn.functional.one_hot(levels, len(feats)).to(boxes.dtype)  # [B, R, L]

        def table(values: list[float]) -> Any:
            return (onehot * torch.tensor(values, dtype=boxes.dtype)).sum(-1)  # [B, R]: the box's level's value

        scale = table(self.scales)
        height, width = table([float(h) for h, _ in sizes]), table([float(w) for _, w in sizes])
        offset = table([float(o) for o in offsets])
        y_lo, y_hi, wy_lo, wy_hi = self._axis(boxes[..., 1] * scale, boxes[..., 3] * scale, height)
        x_lo, x_hi, wx_lo, wx_hi = self._axis(boxes[..., 0] * scale, boxes[..., 2] * scale, width)
        n = p * g * 2  # rows (and columns) read per box: P bins x g samples x 2 corners
        ys = torch.stack([y_lo, y_hi], -1).reshape(b, r, n)  # [B, R, n]
        xs = torch.stack([x_lo, x_hi], -1).reshape(b, r, n)
        wy = torch.stack([wy_lo, wy_hi], -1).reshape(b, r, p, g * 2)
        wx = torch.stack([wx_lo, wx_hi], -1).reshape(b, r, p, g * 2)
        # Row indices in float are exact (< 2^24 rows); int64 only for the Gather itself.
        base = offset + torch.arange(b, dtype=boxes.dtype)[:, None] * per_image  # [B, R]
        index = (base[..., None, None] + ys[..., :, None] * width[..., None, None] + xs[..., None, :])
        index = index.to(torch.int64)  # [B, R, n, n]
        chunks = []
        for s in range(0, r, GATHER_CHUNK):
            e = min(s + GATHER_CHUNK, r)
            v = flat[index[:, s:e].reshape(-1)].reshape(b, e - s, p, g * 2, n * c)  # rows (bin, sample x corner)
            # weighted sums as MatMuls with K = 2g: no product tensor of the gathered size
            v = torch.matmul(wy[:, s:e, :, None, :], v).reshape(b, e - s, p, p, g * 2, c)  # rows done
            v = torch.matmul(wx[:, s:e, None, :, None, :], v).squeeze(4)  # [B, r, P, P, C]
            chunks.append(v)
        out = torch.cat(chunks, 1) if len(chunks) > 1 else chunks[0]
        return out.permute(0, 1, 4, 2, 3).reshape(b * r, c, p, p)
