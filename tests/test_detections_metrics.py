"""The result type and the agreement metric, on hand-built detection sets with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.metrics import agreement, box_iou, mask_iou, thick

NAMES = ("person", "car")


def dets(boxes: list[list[float]], conf: list[float], cls: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), conf, cls, None, NAMES)


REF = [dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1]), dets([[5, 5, 15, 15]], [0.7], [0])]


def test_detections_index_by_mask_and_serialise() -> None:
    d = dets([[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 3, 3]], [0.9, 0.3, 0.6], [0, 1, 5])
    kept = d[d.confidence > 0.5]
    assert len(kept) == 2 and kept.class_name == ["person", "class 5"]
    rec = json.loads(json.dumps(d[0].to_records()))
    assert rec == [{"xyxy": [0.0, 0.0, 10.0, 10.0], "confidence": 0.9, "class_id": 0, "class_name": "person"}]
    assert len(Detections.empty(NAMES)) == 0


def test_detections_reject_inconsistent_arrays() -> None:
    with pytest.raises(EdgeVisionError, match="disagree"):
        Detections(np.zeros((2, 4)), [0.5], [0, 1])
    with pytest.raises(EdgeVisionError, match="masks"):
        Detections(np.zeros((1, 4)), [0.5], [0], np.zeros((2, 4, 4), bool))


def test_identical_sets_agree_perfectly() -> None:
    a = agreement(REF, REF)
    assert (a.f1, a.ap50, a.ap50_95) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "cand, f1, ap50",
    [
        # one of three reference boxes missed: recall 2/3
        ([dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1]), dets([], [], [])], 0.8, None),
        # right box, wrong class: a false positive and a miss
        ([dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 0]), REF[1]], 2 / 3, None),
        # an extra low-confidence false positive: precision 3/4, AP50 still 1 (ranked last)
        ([dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.8, 0.1], [0, 1, 0]), REF[1]],
         6 / 7, 1.0),
    ],
)
def test_known_disagreements(cand: list[Detections], f1: float, ap50: float | None) -> None:
    a = agreement(cand, REF)
    assert a.f1 == pytest.approx(f1)
    if ap50 is not None:
        assert a.ap50 == pytest.approx(ap50)


def test_shifted_boxes_lose_ap_at_strict_thresholds_only() -> None:
    shifted = [dets((d.xyxy + 1.0).tolist(), d.confidence.tolist(), d.class_id.tolist()) for d in REF]
    a = agreement(shifted, REF)
    assert a.f1 == 1.0 and a.ap50 == 1.0
    assert a.per_threshold_ap["0.95"] == 0.0 and 0.3 < a.ap50_95 < 1.0


def test_box_and_mask_iou() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]], np.float32), np.array([[5, 0, 15, 10], [0, 0, 0, 0]], np.float32))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0]], rtol=1e-6)
    # for matching, a box clipped flat against a frame edge matches its own copy, and not a box
    # elsewhere on that edge (box_iou itself keeps torchvision's 0 for them: NMS references use it)
    flat = np.array([[146.1, 576.0, 211.6, 576.0]], np.float32)
    others = np.array([[146.1, 576.0, 211.6, 576.0], [146.1, 576.0, 211.7, 576.0], [300.0, 576.0, 350.0, 576.0]],
                      np.float32)
    on_edge = box_iou(thick(flat), thick(others))
    assert on_edge[0, 0] == pytest.approx(1.0) and on_edge[0, 1] > 0.99 and on_edge[0, 2] == 0.0
    assert not box_iou(flat, others).any()
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_pooled_ap_weighs_every_detection_not_every_class() -> None:
    """Nine persons found and the one car missed: the per-class mean halves AP (person 1.0, car 0.0),
    one curve over all ten detections loses only the missing tenth of recall. A wrong class is a miss."""
    from edgevision.metrics import pooled_ap

    boxes = [[i * 20, 0, i * 20 + 10, 10] for i in range(10)]
    ref = [dets(boxes, [0.9] * 10, [0] * 9 + [1])]
    cand = [dets(boxes[:9], [0.9] * 9, [0] * 9)]
    per_class = agreement(cand, ref)
    ap50, ap = pooled_ap(cand, ref)
    assert per_class.ap50_95 == pytest.approx(0.5)
    assert ap50 == pytest.approx(ap) and ap == pytest.approx(91 / 101)  # 101-point curve, recall reaches 0.9
    assert pooled_ap(ref, ref) == (1.0, 1.0)
    assert pooled_ap([dets(boxes, [0.9] * 10, [1] * 10)], ref)[1] == pytest.approx(11 * 0.1 / 101)  # the car, ranked 10th
    with pytest.raises(ValueError, match="frame counts differ"):
        pooled_ap(cand, ref * 2)
