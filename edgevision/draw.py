"""Annotate a frame with boxes, labels and instance masks (OpenCV drawing)."""
from __future__ import annotations

import numpy as np

from ._lazy import lazy_import
from .detections import Detections

# A fixed, high-contrast palette (BGR); class id picks the colour.
_PALETTE = np.array(
    [[56, 56, 255], [151, 157, 255], [31, 112, 255], [29, 178, 255], [49, 210, 207], [10, 249, 72],
     [23, 204, 146], [134, 219, 61], [52, 147, 26], [187, 212, 0], [168, 153, 44], [255, 194, 0],
     [147, 69, 52], [255, 115, 100], [236, 24, 0], [255, 56, 132], [133, 0, 82], [255, 56, 203],
     [200, 149, 255], [199, 55, 255]],
    dtype=np.uint8,
)


def color(class_id: int) -> tuple[int, int, int]:
    c = _PALETTE[class_id % len(_PALETTE)]
    return int(c[0]), int(c[1]), int(c[2])


def annotate(frame: np.ndarray, dets: Detections, mask_alpha: float = 0.45) -> np.ndarray:
    """uint8[H, W, 3] BGR -> a new annotated copy. Masks are blended inside their boxes only."""
    cv2 = lazy_import("cv2")
    out = frame.copy()
    if dets.masks is not None:
        for mask, cid, box in zip(dets.masks, dets.class_id.tolist(), dets.xyxy.astype(int).tolist()):
            x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), box[2], box[3]
            region, m = out[y1:y2, x1:x2], mask[y1:y2, x1:x2]
            if m.any():
                tint = np.asarray(color(cid), np.float32)
                region[m] = (region[m] * (1 - mask_alpha) + tint * mask_alpha).astype(np.uint8)
    thickness = max(1, round(sum(frame.shape[:2]) / 600))
    for (x1, y1, x2, y2), conf, cid, name in zip(
        dets.xyxy.astype(int).tolist(), dets.confidence.tolist(), dets.class_id.tolist(), dets.class_name
    ):
        c = color(cid)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        label = f"{name} {conf:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = y1 - 4 if y1 - th - 6 >= 0 else y1 + th + 4
        cv2.rectangle(out, (x1, ty - th - 3), (x1 + tw + 4, ty + base - 1), c, -1)
        cv2.putText(out, label, (x1 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
