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


def _area(poly: np.ndarray) -> float:
    """Signed shoelace area of float64[P, 2] (positive: counter-clockwise in x-right, y-up axes)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of convex polygon `subject` inside convex `clip` (both
    positively oriented float64[P, 2])."""
    out = subject
    for a, b in zip(clip, np.roll(clip, -1, 0)):
        if not len(out):
            break
        edge = b - a
        side = edge[0] * (out[:, 1] - a[1]) - edge[1] * (out[:, 0] - a[0])  # >= 0: left of a->b, inside
        pts: list[np.ndarray] = []
        for i in range(len(out)):
            j = (i + 1) % len(out)
            if side[i] >= 0:
                pts.append(out[i])
            if (side[i] >= 0) != (side[j] >= 0):
                t = side[i] / (side[i] - side[j])
                pts.append(out[i] + t * (out[j] - out[i]))
        out = np.array(pts).reshape(-1, 2)
    return out


def rotated_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32[N, 5], float32[M, 5] xywhr -> float32[N, M] exact polygon IoU of the rotated boxes
    (0 where a union is empty). Pairs whose axis-aligned bounds do not meet are skipped."""
    ca = xywhr_corners(a).astype(np.float64)
    cb = xywhr_corners(b).astype(np.float64)
    ca = np.array([c if _area(c) >= 0 else c[::-1] for c in ca]).reshape(-1, 4, 2)
    cb = np.array([c if _area(c) >= 0 else c[::-1] for c in cb]).reshape(-1, 4, 2)
    ba = np.concatenate([ca.min(1), ca.max(1)], 1)  # axis-aligned bounds, from the corners already made
    bb = np.concatenate([cb.min(1), cb.max(1)], 1)
    area_a = np.abs([_area(c) for c in ca])  # each polygon's area once, not once per pair
    area_b = np.abs([_area(c) for c in cb])
    out = np.zeros((len(a), len(b)), np.float32)
    for i in range(len(a)):
        near = ((ba[i, 0] <= bb[:, 2]) & (bb[:, 0] <= ba[i, 2]) & (ba[i, 1] <= bb[:, 3]) & (bb[:, 1] <= ba[i, 3]))
        for j in np.nonzero(near)[0]:
            inter = _clip(ca[i], cb[j])
            area_i = abs(_area(inter)) if len(inter) >= 3 else 0.0
            union = area_a[i] + area_b[j] - area_i
            out[i, j] = area_i / union if union > 0 else 0.0
    return out
