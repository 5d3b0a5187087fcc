"""Fixed-size graph outputs -> Detections in frame pixels (and instance masks).

The graph already did decode, NMS and top-D selection; what is left is per-image
bookkeeping that depends on the frame: undoing the letterbox and, for segmenters,
turning the kept rows' mask coefficients into frame-resolution masks.
"""
from __future__ import annotations

import numpy as np

from ._lazy import lazy_import
from .detections import Detections
from .manifest import OUT_BOXES, OUT_CLASSES, OUT_COEFFS, OUT_NUM, OUT_PROTOS, OUT_SCORES, Manifest
from .preprocess import Letterbox


def instance_masks(
    coeffs: np.ndarray, protos: np.ndarray, xyxy: np.ndarray, geo: Letterbox, input_hw: tuple[int, int]
) -> np.ndarray:
    """Mask coefficients -> bool[N, H, W] masks at frame resolution, cropped to their boxes.

    coeffs: float32[N, M]; protos: float32[M, Hp, Wp]; xyxy: float32[N, 4] in frame pixels.
    Only each box's own region is resampled (one affine warp from frame pixels straight to
    prototype pixels, bilinear), so the cost follows the boxes' area, not N x frame size.
    """
    cv2 = lazy_import("cv2")
    h, w = geo.frame_hw
    m, hp, wp = protos.shape
    out = np.zeros((len(coeffs), h, w), dtype=bool)
    if not len(coeffs):
        return out
    logits = (coeffs @ protos.reshape(m, -1)).reshape(-1, hp, wp)
    sx, sy = wp / input_hw[1], hp / input_hw[0]  # prototype pixels per input pixel
    for i, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        fx1, fy1 = int(np.floor(x1)), int(np.floor(y1))
        fx2, fy2 = int(np.ceil(x2)), int(np.ceil(y2))
        if fx2 <= fx1 or fy2 <= fy1:
            continue
        # frame pixel centre (x + 0.5) -> input (.. * gain + left) -> prototype sample position (- 0.5)
        ax, ay = geo.gain * sx, geo.gain * sy
        warp = np.array(
            [
                [ax, 0, (fx1 + 0.5) * ax + geo.left * sx - 0.5],
                [0, ay, (fy1 + 0.5) * ay + geo.top * sy - 0.5],
            ],
            dtype=np.float64,
        )
        patch = cv2.warpAffine(
            logits[i], warp, (fx2 - fx1, fy2 - fy1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # crop to the box itself (sub-pixel edges rounded inward like Ultralytics' crop_mask)
        ys = np.arange(fy1, fy2)[:, None] + 0.5
        xs = np.arange(fx1, fx2)[None, :] + 0.5
        inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        out[i, fy1:fy2, fx1:fx2] = (patch > 0) & inside
    return out


def to_detections(
    outputs: dict[str, np.ndarray], index: int, geo: Letterbox, manifest: Manifest, with_masks: bool = True
) -> Detections:
    """Row `index` of a batch of graph outputs -> Detections in the frame's pixels."""
    n = int(outputs[OUT_NUM].reshape(-1)[index])
    xyxy = geo.boxes_to_frame(outputs[OUT_BOXES][index, :n])
    masks = None
    if manifest.task == "segment" and with_masks:
        masks = instance_masks(outputs[OUT_COEFFS][index, :n], outputs[OUT_PROTOS][index], xyxy, geo, manifest.input_hw)
    return Detections(xyxy, outputs[OUT_SCORES][index, :n], outputs[OUT_CLASSES][index, :n], masks, manifest.class_names)
