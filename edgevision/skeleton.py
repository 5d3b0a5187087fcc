"""Keypoints drawn as a skeleton: COCO's 17-keypoint person skeleton, or plain points for
any other keypoint layout (OpenCV drawing)."""
from __future__ import annotations

import numpy as np

from ._lazy import lazy_import

# COCO person keypoints (0-based): nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles;
# the limbs of the COCO keypoint annotation's skeleton.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
    (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
VISIBLE = 0.5  # a keypoint is drawn when its visibility is at least this (Ultralytics' plotting default)


def draw_keypoints(out: np.ndarray, keypoints: np.ndarray, colour: tuple[int, int, int], thickness: int = 2) -> int:
    """Draw one detection's keypoints float32[K, 3] (x, y, visibility; frame pixels) into out
    (uint8[H, W, 3] BGR, in place): the COCO skeleton's limbs when K == 17, and a dot per visible
    keypoint. Returns how many keypoints were drawn."""
    cv2 = lazy_import("cv2")
    visible = keypoints[:, 2] >= VISIBLE
    pts = np.round(keypoints[:, :2]).astype(int)
    if len(keypoints) == 17:
        for a, b in COCO_SKELETON:
            if visible[a] and visible[b]:
                cv2.line(out, tuple(pts[a].tolist()), tuple(pts[b].tolist()), colour, thickness, cv2.LINE_AA)
    for (x, y), v in zip(pts.tolist(), visible.tolist()):
        if v:
            cv2.circle(out, (x, y), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, (x, y), thickness + 1, colour, 1, cv2.LINE_AA)
    return int(visible.sum())
