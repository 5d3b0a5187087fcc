"""Rotated boxes (cx, cy, w, h, angle) as numpy: corners and axis-aligned bounds.

The runtime's OBB results carry xywhr; everything that reads xyxy (drawing labels, tracking,
statistics, the agreement metric) reads the rotated box's axis-aligned bounds instead.
"""
from __future__ import annotations

import numpy as np


def xywhr_corners(xywhr: np.ndarray) -> np.ndarray:
    """float32[N, 5] (cx, cy, w, h, angle in radians) -> float32[N, 4, 2] corner points.

    The winding is Ultralytics' (xywhr2xyxyxyxy): from the corner at (+w/2, +h/2) in the box's
    own frame, then (+w/2, -h/2), (-w/2, -h/2), (-w/2, +h/2).
    """
    b = np.asarray(xywhr, np.float32).reshape(-1, 5)
    ctr = b[:, None, :2]
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    v1 = np.stack([b[:, 2] / 2 * cos, b[:, 2] / 2 * sin], -1)[:, None]  # half width along the box's x axis
    v2 = np.stack([-b[:, 3] / 2 * sin, b[:, 3] / 2 * cos], -1)[:, None]  # half height along its y axis
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], np.float32)[None, :, :, None]  # (v1, v2) per corner
    return (ctr + signs[:, :, 0] * v1 + signs[:, :, 1] * v2).astype(np.float32)


def xywhr_bounds(xywhr: np.ndarray) -> np.ndarray:
    """float32[N, 5] rotated boxes -> float32[N, 4] xyxy of their axis-aligned bounds (not clipped)."""
    c = xywhr_corners(xywhr)
    return np.concatenate([c.min(1), c.max(1)], 1)
