"""Antialiased bilinear/bicubic resize with torch's (and PIL's) arithmetic, in numpy.

The tensor transforms of torchvision (`resize(..., antialias=True)`, used by its classification
and semantic-segmentation presets) shrink with a filter whose support grows with the scale
factor; OpenCV has no such filter (INTER_AREA is a box filter). A model converted from that
library sees the same pixels at run time only if the runtime resizes the same way, so this
is that filter: separable, horizontal pass then vertical, with the uint8 path's
fixed-point weights and rounding. torch's uint8 kernel follows PIL's ImagingResample but
chooses the weights' fractional bits per resize (the most that fit int16, for its SIMD
kernels), where PIL always uses 22: the two differ by one step in a fraction of a percent of
pixels, so both are here (`bits=None`: torch's; `bits=PIL_BITS`: PIL's, what timm's and
torchvision's transforms on PIL images compute).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def _triangle(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1.0)
    return np.where(np.abs(x) < one, one - np.abs(x), x.dtype.type(0.0))


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic with a = -0.5, PIL's and torch's antialiased bicubic."""
    x = np.abs(x)
    a = x.dtype.type(a)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


PIL_BITS = 22  # PIL's PRECISION_BITS (32 - 8 - 2): fractional bits of its fixed-point weights
FILTERS = {"linear": (_triangle, 1.0), "cubic": (_cubic, 2.0)}  # name -> (filter, support at scale 1)


@lru_cache(maxsize=64)
def aa_taps(n_in: int, n_out: int, kind: str = "linear", dtype: str = "float64",
            bits: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Antialiasing filter taps (triangle or cubic) of a resize from n_in to n_out samples.

    Returns (int64[n_out, T] source index of each tap, [n_out, T] weights summing to 1 per
    row, float64[n_out, T] the same weights in fixed point, fractional bits of those).
    T is the widest filter; unused taps have weight 0 and index 0. Sparse taps, not a dense
    [n_out, n_in] matrix: a 2x shrink touches 5 inputs per output, not all of them.
    dtype: the arithmetic the weights are computed in: float64 as PIL and torch's uint8
    kernels do, float32 as torch's float kernels do (its weights differ in the last bits,
    which decide how a float result rounds back to uint8). bits: fractional bits of the fixed
    point weights (None: torch's choice, aa_precision; PIL_BITS: PIL's).
    """
    ft = np.float64 if dtype == "float64" else np.float32
    fn, base = FILTERS[kind]
    scale = ft(n_in / n_out)
    support = ft(base) * scale if scale >= 1.0 else ft(base)
    inv = ft(1.0) / scale if scale >= 1.0 else ft(1.0)
    spans = []
    for i in range(n_out):
        center = scale * ft(i + 0.5)
        lo = max(int(center - support + ft(0.5)), 0)
        hi = min(int(center + support + ft(0.5)), n_in)
        taps = fn((np.arange(lo, hi, dtype=ft) - center + ft(0.5)) * inv).astype(ft)
        total = taps.sum(dtype=ft)
        spans.append((lo, (taps / total).astype(ft) if total else taps))
    width = max(len(t) for _, t in spans)
    index = np.zeros((n_out, width), np.int64)
    weight = np.zeros((n_out, width), ft)
    for i, (lo, taps) in enumerate(spans):
        index[i, : len(taps)] = np.arange(lo, lo + len(taps))
        weight[i, : len(taps)] = taps
    precision = aa_precision(weight) if bits is None else bits
    one = float(1 << precision)
    w64 = weight.astype(np.float64)
    fixed = np.where(w64 < 0, np.trunc(-0.5 + w64 * one), np.trunc(0.5 + w64 * one))
    return index, weight, fixed, precision


def aa_precision(w: np.ndarray) -> int:
    """Fractional bits of the int16 weights: the most that keep the largest weight in int16."""
    maxw = float(np.abs(w).max())
    precision = 0
    while precision < 22 and maxw * (1 << (precision + 1)) < (1 << 15):
        precision += 1
    return precision


def _filter(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Apply taps along axis 0 of x[n_in, ...] -> [n_out, ...] (float64 or float32)."""
    acc = np.zeros((index.shape[0], *x.shape[1:]), x.dtype)
    shape = (-1,) + (1,) * (x.ndim - 1)
    for t in range(index.shape[1]):
        acc += x[index[:, t]] * weight[:, t].astype(x.dtype).reshape(shape)
    return acc


def _pass(img: np.ndarray, axis: int, n_out: int, kind: str, bits: int | None) -> np.ndarray:
    """One separable pass on [H, W, C] along axis (1: horizontal, 0: vertical).

    uint8: fixed-point weights, products summed exactly (in float32 when every sum stays
    below 2**24, else float64: all values are integers), rounded and clipped back to uint8
    as the uint8 kernels do. The filtered axis is made the leading, contiguous one, so each
    tap gathers whole rows instead of strided columns.
    """
    n_in = img.shape[axis]
    if n_in == n_out:
        return img
    index, weight, fixed, precision = aa_taps(n_in, n_out, kind, "float64" if img.dtype == np.uint8 else "float32", bits)
    if img.dtype == np.uint8:
        exact32 = 255.0 * float(np.abs(fixed).sum(1).max()) < 2.0**24
        ft = np.float32 if exact32 else np.float64
        x = np.ascontiguousarray(np.moveaxis(img, axis, 0), dtype=ft)
        acc = _filter(x, index, fixed.astype(ft)) + ft(1 << (precision - 1))
        out = np.clip(np.floor(acc * ft(1.0 / (1 << precision))), 0, 255).astype(np.uint8)
    else:
        x = np.ascontiguousarray(np.moveaxis(img, axis, 0), dtype=np.float32)
        out = _filter(x, index, weight)
    return np.moveaxis(out, 0, axis)


def resize_antialias(img: np.ndarray, out_hw: tuple[int, int], kind: str = "linear", bits: int | None = None) -> np.ndarray:
    """uint8 or float32 [H, W, C] -> [oh, ow, C] of the same dtype, torch's antialiased
    bilinear (kind "linear") or bicubic ("cubic").

    uint8 goes through fixed-point weights with a uint8 intermediate, bit-exact with torch's
    uint8 kernels (bits None) or PIL's Image.resize (bits PIL_BITS); float32 is computed in
    float32.
    """
    return np.ascontiguousarray(_pass(_pass(img, 1, out_hw[1], kind, bits), 0, out_hw[0], kind, bits))
