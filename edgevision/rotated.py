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


# A convex polygon clipped by the 4 edges of a convex quadrilateral keeps at most 4 + 4 vertices
# (each half-plane adds at most one).
_MAX_VERTICES = 8


def _areas(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Signed shoelace areas of P polygons: float64[P, V, 2] whose first count[P] vertices are
    the polygon -> float64[P] (positive: counter-clockwise in x-right, y-up axes; 0 below 3 vertices)."""
    v = poly.shape[1]
    i = np.arange(v)[None, :]
    nxt = np.take_along_axis(poly, ((i + 1) % np.maximum(count, 1)[:, None])[..., None], 1)  # next vertex, wrapping at count
    cross = poly[..., 0] * nxt[..., 1] - poly[..., 1] * nxt[..., 0]
    area = 0.5 * np.where(i < count[:, None], cross, 0.0).sum(1)
    return np.where(count >= 3, area, 0.0)


def _clip(subject: np.ndarray, count: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sutherland-Hodgman for P pairs at once: the part of each convex polygon float64[P, V, 2]
    (first count[P] vertices) inside its convex quadrilateral float64[P, 4, 2] (both positively
    oriented) -> (float64[P, 8, 2] vertices, int[P] counts), in the order the one-pair algorithm
    makes them: per subject vertex, the vertex if inside, then the crossing point if its edge crosses."""
    p = len(subject)
    out = np.zeros((p, _MAX_VERTICES, 2))
    out[:, : subject.shape[1]] = subject
    n = count.copy()
    i = np.arange(_MAX_VERTICES)[None, :]
    for e in range(4):
        a, b = clip[:, e], clip[:, (e + 1) % 4]  # [P, 2]
        edge = b - a
        side = edge[:, None, 0] * (out[..., 1] - a[:, None, 1]) - edge[:, None, 1] * (out[..., 0] - a[:, None, 0])
        j = (i + 1) % np.maximum(n, 1)[:, None]  # each vertex's successor, wrapping at the count
        side_j = np.take_along_axis(side, j, 1)
        nxt = np.take_along_axis(out, j[..., None], 1)
        real = i < n[:, None]
        inside, inside_j = side >= 0, side_j >= 0  # >= 0: left of a->b, inside
        crosses = real & (inside != inside_j)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(crosses, side / np.where(crosses, side - side_j, 1.0), 0.0)
        points = np.stack([out, out + t[..., None] * (nxt - out)], 2).reshape(p, 2 * _MAX_VERTICES, 2)
        keep = np.stack([real & inside, crosses], 2).reshape(p, 2 * _MAX_VERTICES)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :_MAX_VERTICES]  # kept candidates first, in order
        out = np.take_along_axis(points, order[..., None], 1)
        n = np.minimum(keep.sum(1), _MAX_VERTICES)
    return out, n


def rotated_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32[N, 5], float32[M, 5] xywhr -> float32[N, M] exact polygon IoU of the rotated boxes
    (0 where a union is empty). Only pairs whose axis-aligned bounds meet are clipped, all of
    them at once (a Python loop over pairs cost the OBB agreement tests about a minute each)."""
    ca = xywhr_corners(a).astype(np.float64)
    cb = xywhr_corners(b).astype(np.float64)
    signed_a, signed_b = _areas(ca, np.full(len(ca), 4)), _areas(cb, np.full(len(cb), 4))
    ca = np.where((signed_a >= 0)[:, None, None], ca, ca[:, ::-1])  # positively oriented
    cb = np.where((signed_b >= 0)[:, None, None], cb, cb[:, ::-1])
    area_a, area_b = np.abs(signed_a), np.abs(signed_b)  # reversing the winding only flips the sign
    ba = np.concatenate([ca.min(1), ca.max(1)], 1)  # axis-aligned bounds, from the corners already made
    bb = np.concatenate([cb.min(1), cb.max(1)], 1)
    out = np.zeros((len(a), len(b)), np.float32)
    near = ((ba[:, None, 0] <= bb[None, :, 2]) & (bb[None, :, 0] <= ba[:, None, 2])
            & (ba[:, None, 1] <= bb[None, :, 3]) & (bb[None, :, 1] <= ba[:, None, 3]))
    i, j = np.nonzero(near)
    if len(i):
        poly, count = _clip(ca[i], np.full(len(i), 4), cb[j])
        inter = np.abs(_areas(poly, count))
        union = area_a[i] + area_b[j] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i, j] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out
