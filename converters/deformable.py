"""Multi-scale deformable attention sampled with Gather instead of GridSample.

Deformable attention (RT-DETR's and RF-DETR's decoders) samples each feature level bilinearly at learned
points: PyTorch's F.grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False),
exported as ONNX GridSample. TensorRT's GridSample path is the risky part of these models
(reported miscompiled in deformable attention by TensorRT 10.13), and TensorRT 10.3 on
JetPack 6 predates several of its fixes. The same sampling is four Gathers (the corners)
and a weighted sum, ops every runtime has built for years; the result equals grid_sample to
float rounding (tests/test_rtdetr.py compares them).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from edgevision._lazy import lazy_import

torch = lazy_import("torch")


def bilinear_sample(value: Any, grid: Any) -> Any:
    """F.grid_sample(value, grid, "bilinear", "zeros", align_corners=False), with Gathers.

    value float32[N, C, H, W]; grid float32[N, Q, P, 2] with (x, y) in [-1, 1] (-1 and 1 are
    the outer edges of the corner pixels). Returns float32[N, C, Q, P]. A corner outside the
    map contributes 0 (zero padding).
    """
    n, c, h, w = value.shape
    _, q, p, _ = grid.shape
    # align_corners=False: pixel i covers [i, i + 1) in units where the map spans [0, W)
    x = ((grid[..., 0] + 1) * w - 1) / 2  # [N, Q, P]
    y = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    flat = value.reshape(n, c, h * w)
    out = None
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = ((xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)).to(value.dtype)
        # clamped so that every index is valid; outside corners are weighted 0 below
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).to(torch.int64).reshape(n, 1, q * p)
        corner = flat.gather(2, idx.expand(n, c, q * p)).reshape(n, c, q, p)
        term = corner * (weight * inside).unsqueeze(1)
        out = term if out is None else out + term
    return out


def deformable_attention(value: Any, shapes: Sequence[Sequence[int]], locations: Any, weights: Any) -> Any:
    """Ultralytics' multi_scale_deformable_attn_pytorch with bilinear_sample for grid_sample.

    value float32[bs, keys, heads, dims]; shapes: per level (H, W); locations float32[bs, queries,
    heads, levels * points, 2] in [0, 1]; weights float32[bs, queries, heads, levels * points].
    Returns float32[bs, queries, heads * dims].
    """
    bs, _, heads, dims = value.shape
    _, queries, _, total, _ = locations.shape
    points = total // len(shapes)
    values = value.permute(0, 2, 3, 1).flatten(0, 1).split([int(h) * int(w) for h, w in shapes], dim=-1)
    grids = (2 * locations - 1).permute(0, 2, 1, 3, 4).flatten(0, 1).split(points, dim=-2)
    sampled = [bilinear_sample(values[i].reshape(bs * heads, dims, int(h), int(w)), grids[i])
               for i, (h, w) in enumerate(shapes)]
    weights = weights.permute(0, 2, 1, 3).reshape(bs * heads, 1, queries, total)
    out = (torch.cat(sampled, dim=-1) * weights).sum(-1).view(bs, heads * dims, queries)
    return out.transpose(1, 2).contiguous()


def grid_sample_gathers(value: Any, grid: Any, padding_mode: str = "zeros", align_corners: bool = False) -> Any:
    """RF-DETR's _bilinear_grid_sample(input, grid, padding_mode, align_corners) for the one mode
    its deformable attention uses (zeros, align_corners=False), with Gathers (bilinear_sample)."""
    if padding_mode != "zeros" or align_corners:
        raise ValueError(f"gather sampling covers padding_mode='zeros', align_corners=False, not {padding_mode!r}, "
                         f"{align_corners}")
    return bilinear_sample(value, grid)


@contextlib.contextmanager
def patched(module_name: str, attr: str, replacement: Any) -> Iterator[None]:
    """While active, module_name.attr is replacement (restored after, also on error)."""
    module = lazy_import(module_name)
    original = getattr(module, attr)
    setattr(module, attr, replacement)
    try:
        yield
    finally:
        setattr(module, attr, original)


def gather_sampling() -> contextlib.AbstractContextManager[None]:
    """While active, Ultralytics' deformable attention samples with Gathers (deformable_attention)."""
    return patched("ultralytics.nn.modules.transformer", "multi_scale_deformable_attn_pytorch", deformable_attention)


def rfdetr_gather_sampling() -> contextlib.AbstractContextManager[None]:
    """While active, RF-DETR's deformable attention (ms_deform_attn_core_pytorch) samples with
    Gathers: its grid_sample call is grid_sample_gathers."""
    return patched("rfdetr.models.ops.functions.ms_deform_attn_func", "_bilinear_grid_sample", grid_sample_gathers)
