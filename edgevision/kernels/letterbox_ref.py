"""Numpy twin of letterbox.cu: the same float32 arithmetic, vectorised over pixels."""
from __future__ import annotations

import numpy as np

from ..manifest import Preprocess
from ..preprocess import Letterbox, letterbox_geometry


def letterbox_nchw(frame: np.ndarray, input_hw: tuple[int, int], pre: Preprocess) -> tuple[np.ndarray, Letterbox]:
    """uint8[h, w, 3] BGR -> (float32[3, H, W], geometry), exactly as the kernel computes it."""
    h, w = frame.shape[:2]
    out_h, out_w = input_hw
    geo = letterbox_geometry((h, w), input_hw)
    new_h, new_w = geo.new_hw
    v = np.full((out_h, out_w, 3), np.float32(pre.pad_value), np.float32)

    def taps(n_out: int, n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * (np.float32(n_src) / np.float32(n_out)) - np.float32(0.5)
        i0 = np.floor(s).astype(np.int64)
        f = (s - i0).astype(np.float32)
        f[i0 < 0] = 0
        i0[i0 < 0] = 0
        f[i0 >= n_src - 1] = 0
        i0[i0 >= n_src - 1] = n_src - 1
        return i0, np.minimum(i0 + 1, n_src - 1), f

    x0, x1, fx = taps(new_w, w)
    y0, y1, fy = taps(new_h, h)
    src = frame.astype(np.float32)
    fx3, fy3 = fx[None, :, None], fy[:, None, None]
    top = src[y0][:, x0] * (1 - fx3) + src[y0][:, x1] * fx3
    bot = src[y1][:, x0] * (1 - fx3) + src[y1][:, x1] * fx3
    v[geo.top : geo.top + new_h, geo.left : geo.left + new_w] = np.rint(top * (1 - fy3) + bot * fy3)

    order = (2, 1, 0) if pre.color == "RGB" else (0, 1, 2)
    mean = np.asarray(pre.mean, np.float32)
    inv_std = (np.float32(1) / np.asarray(pre.std, np.float32)).astype(np.float32)
    out = np.empty((3, out_h, out_w), np.float32)
    for c, src_c in enumerate(order):
        out[c] = (v[:, :, src_c] * np.float32(pre.scale) - mean[c]) * inv_std[c]
    return out, geo
