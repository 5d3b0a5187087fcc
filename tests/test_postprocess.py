"""Instance masks: the box-window fast path against the straightforward two-resize
reference (prototypes -> network input -> frame), on real model outputs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import edgevision
from edgevision.manifest import OUT_BOXES, OUT_COEFFS, OUT_NUM, OUT_PROTOS
from edgevision.postprocess import instance_masks
from edgevision.preprocess import Letterbox


def reference_masks(coeffs: np.ndarray, protos: np.ndarray, xyxy: np.ndarray, geo: Letterbox,
                    input_hw: tuple[int, int]) -> np.ndarray:
    """Full-size logits, upsampled to the input, padding cut, resized to the frame, cropped to the box."""
    m, hp, wp = protos.shape
    h, w = geo.frame_hw
    nh, nw = geo.new_hw
    logits = (coeffs @ protos.reshape(m, -1)).reshape(-1, hp, wp)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    out = []
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        up = cv2.resize(logits[i], input_hw[::-1], interpolation=cv2.INTER_LINEAR)
        frame = cv2.resize(up[geo.top : geo.top + nh, geo.left : geo.left + nw], (w, h), interpolation=cv2.INTER_LINEAR)
        out.append((frame > 0) & (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2))
    return np.array(out, bool).reshape(-1, h, w)


def test_fast_masks_match_the_reference(seg_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    model = edgevision.load(seg_onnx)
    ious = []
    for frame in vtest_frames[:5]:
        batch, geos = model.preprocess([frame])
        out = model.infer(batch)
        n = int(out[OUT_NUM][0])
        xyxy = geos[0].boxes_to_frame(out[OUT_BOXES][0, :n])
        args = (out[OUT_COEFFS][0, :n], out[OUT_PROTOS][0], xyxy, geos[0], model.manifest.input_hw)
        fast, ref = instance_masks(*args), reference_masks(*args)
        assert fast.shape == ref.shape == (n, *frame.shape[:2])
        ious += [(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(fast, ref)]
    assert len(ious) > 10
    assert min(ious) > 0.97 and np.mean(ious) > 0.99


def test_detections_say_whether_the_graphs_nms_was_exact(det_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    with edgevision.load(det_onnx, backend="onnxruntime") as model:
        limits = [model(f).frame_data["nms_limits"] for f in vtest_frames[:3]]
    assert limits == [0, 0, 0], "vtest at the default conf is well inside the graph's limits"
