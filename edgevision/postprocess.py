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
    sx, sy = wp / input_hw[1], hp / input_hw[0]  # prototype pixels per input pixel
    ax, ay = geo.gain * sx, geo.gain * sy  # prototype pixels per frame pixel
    for i, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        fx1, fy1 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        fx2, fy2 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
        if fx2 <= fx1 or fy2 <= fy1:
            continue
        # Prototype window under the box (+1 px for the bilinear taps): the mask is only
        # ever needed inside its box, so only that window is multiplied out.
        px1 = min(max(int(np.floor(x1 * ax + geo.left * sx - 1)), 0), wp - 1)
        py1 = min(max(int(np.floor(y1 * ay + geo.top * sy - 1)), 0), hp - 1)
        px2 = min(max(int(np.ceil(x2 * ax + geo.left * sx + 1)), px1 + 1), wp)
        py2 = min(max(int(np.ceil(y2 * ay + geo.top * sy + 1)), py1 + 1), hp)
        window = protos[:, py1:py2, px1:px2]
        logits = (coeffs[i] @ window.reshape(m, -1)).reshape(py2 - py1, px2 - px1)
        # frame pixel centre (x + 0.5) -> input (.. * gain + left) -> prototype sample position (- 0.5)
        warp = np.array(
            [
                [ax, 0, (fx1 + 0.5) * ax + geo.left * sx - 0.5 - px1],
                [0, ay, (fy1 + 0.5) * ay + geo.top * sy - 0.5 - py1],
            ],
            dtype=np.float64,
        )
        patch = cv2.warpAffine(
            logits, warp, (fx2 - fx1, fy2 - fy1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # crop to the box itself: pixel centres inside the (sub-pixel) box edges
        ys = (np.arange(fy1, fy2) + 0.5)[:, None]
        xs = (np.arange(fx1, fx2) + 0.5)[None, :]
        inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        out[i, fy1:fy2, fx1:fx2] = (patch > 0) & inside
    return out


def to_detections(
    outputs: dict[str, np.ndarray], index: int, geo: Letterbox, manifest: Manifest, with_masks: bool = True,
    classes: np.ndarray | None = None,
) -> Detections:
    """Row `index` of a batch of graph outputs -> Detections in the frame's pixels.

    classes: int32 class ids to keep (None: all); filtered before any mask is assembled.
    """
    n = int(outputs[OUT_NUM].reshape(-1)[index])
    rows = np.arange(n)
    if classes is not None:
        rows = rows[np.isin(outputs[OUT_CLASSES][index, :n], classes)]
    xyxy = geo.boxes_to_frame(outputs[OUT_BOXES][index, rows])
    masks = None
    if manifest.task == "segment" and with_masks:
        masks = instance_masks(outputs[OUT_COEFFS][index, rows], outputs[OUT_PROTOS][index], xyxy, geo, manifest.input_hw)
    return Detections(xyxy, outputs[OUT_SCORES][index, rows], outputs[OUT_CLASSES][index, rows], masks, manifest.class_names)
