"""Frame -> network input, with exactly the arithmetic the manifest records.

The letterbox follows the training pipeline of the source model (for YOLO:
Ultralytics' LetterBox with auto=False, centred, pad 114, bilinear resize, the
same rounding), so a converted model sees the same pixels as the original did.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._lazy import lazy_import
from .errors import EdgeVisionError
from .manifest import Manifest, Preprocess


@dataclass(frozen=True)
class Letterbox:
    """Where a frame landed inside the network input.

    gain: input pixels per frame pixel. left, top: padding in input pixels.
    frame_hw: (H, W) of the source frame. new_hw: (H, W) of the resized content.
    """

    gain: float
    left: int
    top: int
    frame_hw: tuple[int, int]
    new_hw: tuple[int, int]

    def boxes_to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """float32[N, 4] input-pixel boxes -> frame pixels, clipped to the frame."""
        out = xyxy.astype(np.float32, copy=True)
        xs, ys = out[:, 0::2], out[:, 1::2]  # views (fancy indexing would copy and drop the clip)
        xs -= self.left
        ys -= self.top
        out /= self.gain
        h, w = self.frame_hw
        np.clip(xs, 0, w, out=xs)
        np.clip(ys, 0, h, out=ys)
        return out


def letterbox_geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
    """Scale and padding that fit frame_hw into input_hw (Ultralytics' rounding rules)."""
    h, w = frame_hw
    ih, iw = input_hw
    gain = min(ih / h, iw / w)
    # At least one pixel: a 1-pixel strip into a wide input would otherwise round to nothing.
    nw, nh = max(1, int(round(w * gain))), max(1, int(round(h * gain)))
    dw, dh = (iw - nw) / 2, (ih - nh) / 2
    # round(d - 0.1) puts the odd pixel at the bottom/right, as Ultralytics does.
    return Letterbox(gain, int(round(dw - 0.1)), int(round(dh - 0.1)), (h, w), (nh, nw))


_INTERP = {"linear": 1, "nearest": 0, "area": 3, "cubic": 2}  # cv2.INTER_* values


def letterbox_image(frame: np.ndarray, input_hw: tuple[int, int], pre: Preprocess) -> tuple[np.ndarray, Letterbox]:
    """uint8[H, W, 3] BGR frame -> (uint8[ih, iw, 3] BGR padded canvas, geometry)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise EdgeVisionError(f"expected a uint8 HxWx3 BGR frame, got {frame.dtype} array of shape {frame.shape}")
    if pre.resize != "letterbox":
        raise EdgeVisionError(f"unknown resize mode {pre.resize!r} in the manifest")
    geo = letterbox_geometry(frame.shape[:2], input_hw)
    nh, nw = geo.new_hw
    if (nh, nw) != frame.shape[:2]:
        cv2 = lazy_import("cv2")
        frame = cv2.resize(frame, (nw, nh), interpolation=_INTERP[pre.interpolation])
    canvas = np.full((*input_hw, 3), pre.pad_value, dtype=np.uint8)
    canvas[geo.top : geo.top + nh, geo.left : geo.left + nw] = frame
    return canvas, geo


def to_tensor(canvas: np.ndarray, pre: Preprocess, out: np.ndarray | None = None) -> np.ndarray:
    """uint8[H, W, 3] BGR -> float32[3, H, W] in the network's colour order and scale.

    Writes into `out` (float32[3, H, W]) when given, so a batch buffer is filled in place.
    """
    h, w = canvas.shape[:2]
    if out is None:
        out = np.empty((3, h, w), dtype=np.float32)
    order = (2, 1, 0) if pre.color == "RGB" else (0, 1, 2)
    for dst, src in enumerate(order):
        np.multiply(canvas[:, :, src], np.float32(pre.scale), out=out[dst], casting="unsafe")
    if any(pre.mean) or any(s != 1 for s in pre.std):
        mean = np.asarray(pre.mean, np.float32)[:, None, None]
        std = np.asarray(pre.std, np.float32)[:, None, None]
        out -= mean
        out /= std
    return out


def preprocess_batch(frames: Sequence[np.ndarray], manifest: Manifest) -> tuple[np.ndarray, list[Letterbox]]:
    """uint8 BGR frames -> (float32[B, 3, H, W], geometry per frame), as the manifest records."""
    if len(frames) > 1 and not manifest.dynamic_batch:
        raise EdgeVisionError("this artifact was built for batch 1; feed frames one at a time")
    batch = np.empty((len(frames), 3, *manifest.input_hw), np.float32)
    geos = []
    for i, frame in enumerate(frames):
        canvas, geo = letterbox_image(frame, manifest.input_hw, manifest.preprocess)
        to_tensor(canvas, manifest.preprocess, out=batch[i])
        geos.append(geo)
    return batch, geos


def preprocess(frame: np.ndarray, input_hw: tuple[int, int], pre: Preprocess) -> tuple[np.ndarray, Letterbox]:
    """uint8[H, W, 3] BGR -> (float32[1, 3, ih, iw], geometry)."""
    canvas, geo = letterbox_image(frame, input_hw, pre)
    return to_tensor(canvas, pre)[None], geo
