"""Annotate a frame with a result: boxes (rotated boxes as rotated rectangles), labels, instance
masks and keypoint skeletons; a class-map overlay; a classifier's top classes (OpenCV drawing)."""
from __future__ import annotations

import numpy as np

from ._lazy import lazy_import
from .rotated import xywhr_corners
from .skeleton import draw_keypoints
from .detections import Detections
from .results import Classification, ClassMap
from .results import Result as TaskResult

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


def annotate(frame: np.ndarray, result: TaskResult, mask_alpha: float = 0.45) -> np.ndarray:
    """uint8[H, W, 3] BGR -> a new copy with the result drawn on it, whatever its task."""
    if isinstance(result, ClassMap):
        return annotate_class_map(frame, result, mask_alpha)
    if isinstance(result, Classification):
        return annotate_classification(frame, result)
    return annotate_detections(frame, result, mask_alpha)


def _label(out: np.ndarray, text: str, x: int, y: int, c: tuple[int, int, int]) -> None:
    """A filled label box with white text whose top-left is at (x, y - height)."""
    cv2 = lazy_import("cv2")
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(out, (x, y - th - 3), (x + tw + 4, y + base - 1), c, -1)
    cv2.putText(out, text, (x + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


def annotate_class_map(frame: np.ndarray, cmap: ClassMap, alpha: float = 0.45) -> np.ndarray:
    """Every non-background pixel tinted with its class colour; a legend of the classes present."""
    colours = np.array([color(i) for i in range(len(_PALETTE))], np.float32)
    ids = cmap.class_map
    tint = colours[ids % len(_PALETTE)]
    blend = frame.astype(np.float32) * (1 - alpha) + tint * alpha
    keep = ids == cmap.background if cmap.background is not None else np.zeros(ids.shape, bool)
    out = np.where(keep[..., None], frame, blend.astype(np.uint8))
    out = np.ascontiguousarray(out)
    for row, (cid, pixels) in enumerate((c, n) for c, n in cmap.pixel_counts().items() if c != cmap.background):
        name = cmap.class_names[cid] if 0 <= cid < len(cmap.class_names) else f"class {cid}"
        _label(out, f"{name} {100 * pixels / ids.size:.1f}%", 4, 18 + 18 * row, color(cid))
    return out


def annotate_classification(frame: np.ndarray, cls: Classification) -> np.ndarray:
    """The top classes with their probabilities, best first, in the top-left corner."""
    out = frame.copy()
    for row, (cid, name, p) in enumerate(zip(cls.class_id.tolist(), cls.class_name, cls.confidence.tolist())):
        _label(out, f"{name} {p:.3f}", 4, 18 + 18 * row, color(cid))
    return out


def annotate_detections(frame: np.ndarray, dets: Detections, mask_alpha: float = 0.45) -> np.ndarray:
    """Boxes (or rotated boxes), labels, masks blended inside their boxes only, and keypoint
    skeletons (edgevision.skeleton). Tracked detections get "#id" labels and a colour per id."""
    cv2 = lazy_import("cv2")
    out = frame.copy()
    tracks = [None] * len(dets) if dets.tracker_id is None else dets.tracker_id.tolist()
    # one colour per track id (stable across frames) when tracked, else per class
    colour_keys = dets.class_id.tolist() if dets.tracker_id is None else tracks
    if dets.masks is not None:
        for mask, cid, box in zip(dets.masks, colour_keys, dets.xyxy.astype(int).tolist()):
            x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), box[2], box[3]
            region, m = out[y1:y2, x1:x2], mask[y1:y2, x1:x2]
            if m.any():
                tint = np.asarray(color(cid), np.float32)
                region[m] = (region[m] * (1 - mask_alpha) + tint * mask_alpha).astype(np.uint8)
    thickness = max(1, round(sum(frame.shape[:2]) / 600))
    # rotated boxes are drawn as their corner polygons, in the same pass as every other box
    polygons = [None] * len(dets) if dets.xywhr is None else np.round(xywhr_corners(dets.xywhr)).astype(np.int32)
    for (x1, y1, x2, y2), conf, cid, name, tid, polygon in zip(
        dets.xyxy.astype(int).tolist(), dets.confidence.tolist(), dets.class_id.tolist(), dets.class_name, tracks,
        polygons,
    ):
        c = color(cid if tid is None else tid)
        if polygon is None:
            cv2.rectangle(out, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        else:
            cv2.polylines(out, [polygon], True, c, thickness, cv2.LINE_AA)
        label = f"{name} {conf:.2f}" if tid is None else f"#{tid} {name} {conf:.2f}"
        th = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][1]
        _label(out, label, x1, y1 - 4 if y1 - th - 6 >= 0 else y1 + th + 4, c)
    if dets.keypoints is not None:
        for kpts, cid in zip(dets.keypoints, colour_keys):
            draw_keypoints(out, kpts, color(cid), thickness)
    return out
