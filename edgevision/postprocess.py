"""Fixed-size graph outputs -> one frame's result, decoded by the manifest's task.

The graph already did decode, NMS, top-D / top-k and arg-max; what is left is per-image
bookkeeping that depends on the frame: mapping boxes and class maps back to frame pixels
and, for segmenters, turning the kept rows' masks into frame-resolution masks. DECODERS is
the one table from task to decoder: the runtime never asks which family made the graph.
"""
from __future__ import annotations

import numpy as np

from ._lazy import lazy_import
from collections.abc import Callable
from dataclasses import dataclass

from .detections import Detections
from .manifest import (
    OUT_BOXES, OUT_CLASS_MAP, OUT_CLASSES, OUT_COEFFS, OUT_KEYPOINTS, OUT_LIMITS, OUT_MASKS, OUT_NUM, OUT_PROTOS,
    OUT_SCORES, OUT_TOPK_IDS, OUT_TOPK_PROBS, OUT_XYWHR, DETECTION_TASKS, Manifest,
)
from .preprocess import Geometry
from .results import Classification, ClassMap, Result


def instance_masks(
    coeffs: np.ndarray, protos: np.ndarray, xyxy: np.ndarray, geo: Geometry, input_hw: tuple[int, int]
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


def paste_masks(probs: np.ndarray, xyxy: np.ndarray, frame_hw: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Per-detection mask probabilities -> bool[N, H, W] frame masks, as torchvision pastes them.

    probs: float32[N, Hm, Wm] in [0, 1] (Mask R-CNN's sigmoid output); xyxy: float32[N, 4] in
    frame pixels. torchvision's paste_masks_in_image: pad each mask by one pixel, grow its box
    by the same ratio, truncate the box to integers, resize the mask bilinearly to the box's
    (w + 1, h + 1) pixels and keep what lies in the frame; then probability > threshold.
    """
    cv2 = lazy_import("cv2")
    h, w = frame_hw
    n, mh, mw = probs.shape
    out = np.zeros((n, h, w), dtype=bool)
    padded = np.zeros((n, mh + 2, mw + 2), np.float32)
    padded[:, 1:-1, 1:-1] = probs
    sx, sy = (mw + 2) / mw, (mh + 2) / mh
    for i, (x1, y1, x2, y2) in enumerate(xyxy.astype(np.float32).tolist()):
        # expand_boxes in float32, then .to(int64) truncates toward zero
        cx, cy = (x2 + x1) * 0.5, (y2 + y1) * 0.5
        hw_, hh_ = (x2 - x1) * 0.5 * sx, (y2 - y1) * 0.5 * sy
        bx1, by1 = int(np.float32(cx - hw_)), int(np.float32(cy - hh_))
        bx2, by2 = int(np.float32(cx + hw_)), int(np.float32(cy + hh_))
        bw, bh = max(bx2 - bx1 + 1, 1), max(by2 - by1 + 1, 1)
        patch = cv2.resize(padded[i], (bw, bh), interpolation=cv2.INTER_LINEAR)
        fx1, fy1 = max(bx1, 0), max(by1, 0)
        fx2, fy2 = min(bx2 + 1, w), min(by2 + 1, h)
        if fx2 <= fx1 or fy2 <= fy1:
            continue
        out[i, fy1:fy2, fx1:fx2] = patch[fy1 - by1 : fy2 - by1, fx1 - bx1 : fx2 - bx1] > threshold
    return out


@dataclass(frozen=True)
class DecodeOptions:
    """What the caller asked of the decoding. masks: assemble instance masks (segment);
    classes: int32 class ids to keep (None: all), filtered before any mask is made."""

    masks: bool = True
    classes: np.ndarray | None = None


def to_detections(
    outputs: dict[str, np.ndarray], index: int, geo: Geometry, manifest: Manifest, with_masks: bool = True,
    classes: np.ndarray | None = None,
) -> Detections:
    """Row `index` of a batch of detect/segment/pose/obb outputs -> Detections in the frame's pixels.

    classes: int32 class ids to keep (None: all); filtered before any mask is assembled.
    pose: keypoints float32[N, K, 3] mapped like the boxes. obb: xywhr float32[N, 5] mapped to
    the frame, xyxy = their axis-aligned bounds.
    """
    n = int(outputs[OUT_NUM].reshape(-1)[index])
    rows = np.arange(n)
    if classes is not None:
        rows = rows[np.isin(outputs[OUT_CLASSES][index, :n], classes)]
    keypoints = xywhr = None
    if manifest.task == "obb":
        from .rotated import xywhr_bounds

        xywhr = geo.xywhr_to_frame(outputs[OUT_XYWHR][index, rows])
        xyxy = xywhr_bounds(xywhr)
    else:
        xyxy = geo.boxes_to_frame(outputs[OUT_BOXES][index, rows])
    if manifest.task == "pose":
        keypoints = geo.points_to_frame(outputs[OUT_KEYPOINTS][index, rows])
    masks = None
    if manifest.task == "segment" and with_masks:
        if manifest.mask_kind == "per_detection":
            masks = paste_masks(outputs[OUT_MASKS][index, rows], xyxy, geo.frame_hw)
        else:
            masks = instance_masks(
                outputs[OUT_COEFFS][index, rows], outputs[OUT_PROTOS][index], xyxy, geo, manifest.input_hw
            )
    frame_data = {}
    if OUT_LIMITS in outputs:  # artifacts converted before nms_limits existed lack it: unknown, not exact
        frame_data["nms_limits"] = int(outputs[OUT_LIMITS].reshape(-1)[index])
    return Detections(xyxy, outputs[OUT_SCORES][index, rows], outputs[OUT_CLASSES][index, rows], masks,
                      manifest.class_names, frame_data=frame_data, keypoints=keypoints, xywhr=xywhr)


def _detections(outputs: dict[str, np.ndarray], index: int, geo: Geometry, manifest: Manifest,
                opts: DecodeOptions) -> Result:
    return to_detections(outputs, index, geo, manifest, opts.masks, opts.classes)


def to_class_map(outputs: dict[str, np.ndarray], index: int, geo: Geometry, manifest: Manifest,
                 opts: DecodeOptions) -> Result:
    """int32[B, H, W] input-resolution class map -> ClassMap at frame resolution."""
    return ClassMap(geo.map_to_frame(outputs[OUT_CLASS_MAP][index]), manifest.class_names,
                    manifest.extra.get("background", 0))


def to_classification(outputs: dict[str, np.ndarray], index: int, geo: Geometry, manifest: Manifest,
                      opts: DecodeOptions) -> Result:
    """top-k ids / probabilities -> Classification, best first."""
    return Classification(outputs[OUT_TOPK_IDS][index], outputs[OUT_TOPK_PROBS][index], manifest.class_names)


Decoder = Callable[[dict[str, np.ndarray], int, Geometry, Manifest, DecodeOptions], Result]
DECODERS: dict[str, Decoder] = {
    **{task: _detections for task in DETECTION_TASKS},
    "semantic": to_class_map,
    "classify": to_classification,
}


def decode(outputs: dict[str, np.ndarray], index: int, geo: Geometry, manifest: Manifest,
           opts: DecodeOptions = DecodeOptions()) -> Result:
    """Row `index` of a batch of graph outputs -> the result type of the manifest's task."""
    return DECODERS[manifest.task](outputs, index, geo, manifest, opts)
