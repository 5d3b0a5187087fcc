"""The runtime half of pose and OBB, without a model: Detections' keypoints / xywhr fields,
rotated-box geometry against Ultralytics' own functions, the frame mapping against Ultralytics'
scale_coords / scale_boxes, rotated IoU against OpenCV, and keypoint drawing on a real frame."""
from __future__ import annotations

import numpy as np
import pytest

from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Preprocess
from edgevision.metrics import agreement, keypoint_oks
from edgevision.preprocess import letterbox_geometry, preprocess
from edgevision.rotated import rotated_iou, xywhr_bounds, xywhr_corners
from edgevision.skeleton import draw_keypoints


def random_xywhr(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 300, (n, 2)), rng.uniform(2, 80, (n, 2)),
                            rng.uniform(-np.pi / 4, 3 * np.pi / 4, n)]).astype(np.float32)


def test_detections_validate_and_index_keypoints_and_rotated_boxes() -> None:
    kpts = np.arange(3 * 17 * 3, dtype=np.float32).reshape(3, 17, 3)
    d = Detections(np.zeros((3, 4)), [0.9, 0.8, 0.7], [0, 1, 0], keypoints=kpts, xywhr=random_xywhr(3))
    sub = d[d.class_id == 0]
    np.testing.assert_array_equal(sub.keypoints, kpts[[0, 2]])
    assert sub.xywhr.shape == (2, 5) and d[1].keypoints.shape == (1, 17, 3)
    with pytest.raises(EdgeVisionError, match="keypoints must be float32"):
        Detections(np.zeros((3, 4)), [1, 1, 1], [0, 0, 0], keypoints=kpts[:2])
    with pytest.raises(EdgeVisionError, match="xywhr must be float32"):
        Detections(np.zeros((3, 4)), [1, 1, 1], [0, 0, 0], xywhr=np.zeros((3, 4)))
    record = d.to_records()[0]
    assert len(record["keypoints"]) == 17 and len(record["corners"]) == 4


def test_rotated_geometry_equals_ultralytics() -> None:
    import torch
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    boxes = random_xywhr(50)
    theirs = xywhr2xyxyxyxy(torch.from_numpy(boxes)).numpy()
    np.testing.assert_allclose(xywhr_corners(boxes), theirs, atol=1e-4)
    np.testing.assert_allclose(xywhr_bounds(boxes), np.concatenate([theirs.min(1), theirs.max(1)], 1), atol=1e-4)


def test_rotated_iou_equals_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    a, b = random_xywhr(30, 1), random_xywhr(30, 2)
    b[:10] = a[:10] + np.array([3, -2, 4, 1, 0.2], np.float32)  # overlapping pairs, not only misses
    ours = rotated_iou(a, b)

    def rect(r: np.ndarray) -> tuple:
        return (float(r[0]), float(r[1])), (float(r[2]), float(r[3])), float(np.degrees(r[4]))

    for i in range(len(a)):
        for j in range(len(b)):
            _, pts = cv2.rotatedRectangleIntersection(rect(a[i]), rect(b[j]))
            inter = cv2.contourArea(cv2.convexHull(pts)) if pts is not None and len(pts) > 2 else 0.0
            want = inter / (a[i, 2] * a[i, 3] + b[j, 2] * b[j, 3] - inter)
            assert ours[i, j] == pytest.approx(want, abs=1e-3)
    pairs = ours[np.arange(10), np.arange(10)]
    assert (pairs > 0).all() and (pairs > 0.5).sum() >= 5


def test_rotated_iou_on_cases_with_known_answers() -> None:
    """All pairs are clipped at once: identical boxes (also written as the other parametrisation,
    w and h swapped and turned 90 degrees), a box inside another, disjoint and touching boxes,
    and empty inputs."""
    a = np.array([[50, 50, 40, 20, 0.3], [50, 50, 40, 20, 0.3], [10, 10, 8, 8, 0.0], [0, 0, 2, 2, 0.0]], np.float32)
    b = np.array([[50, 50, 40, 20, 0.3], [50, 50, 20, 40, 0.3 + np.pi / 2], [10, 10, 4, 4, 0.7], [2, 0, 2, 2, 0.0]],
                 np.float32)
    iou = rotated_iou(a, b)
    assert iou.shape == (4, 4) and iou.dtype == np.float32
    assert iou[0, 0] == pytest.approx(1.0, abs=1e-6) and iou[1, 1] == pytest.approx(1.0, abs=1e-5)
    assert iou[2, 2] == pytest.approx(16 / 64, abs=1e-5)  # the small box lies inside: its area over the big one's
    assert iou[3, 3] == 0.0 and iou[0, 3] == 0.0 and iou[2, 0] == 0.0  # touching along an edge; far apart
    assert rotated_iou(a[:0], b).shape == (0, 4) and rotated_iou(a, b[:0]).shape == (4, 0)


def test_keypoints_and_rotated_boxes_map_to_the_frame_as_ultralytics(vtest_frames: list[np.ndarray]) -> None:
    import torch
    from ultralytics.utils.ops import scale_boxes, scale_coords

    frame = vtest_frames[0]
    _, geo = preprocess(frame, (320, 320), Preprocess())
    assert geo == letterbox_geometry(frame.shape[:2], (320, 320))
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(-20, 340, (5, 17, 2)), rng.random((5, 17, 1))], -1).astype(np.float32)
    theirs = scale_coords((320, 320), torch.from_numpy(kpts.copy()), frame.shape).numpy()
    np.testing.assert_allclose(geo.points_to_frame(kpts), theirs, atol=1e-3)
    boxes = random_xywhr(20)
    theirs_b = scale_boxes((320, 320), torch.from_numpy(boxes[:, :4].copy()), frame.shape, xywh=True).numpy()
    ours = geo.xywhr_to_frame(boxes)
    np.testing.assert_allclose(ours[:, :4], theirs_b, atol=1e-3)
    np.testing.assert_array_equal(ours[:, 4], boxes[:, 4])


def test_agreement_matches_rotated_boxes_by_their_polygons() -> None:
    """Two rotated boxes with the same axis-aligned bounds but crossing diagonals: xyxy IoU 1,
    rotated IoU far below 0.5, so they must not match."""
    a = np.array([[100, 100, 120, 10, 0.6]], np.float32)
    b = np.array([[100, 100, 120, 10, -0.6]], np.float32)
    np.testing.assert_allclose(xywhr_bounds(a), xywhr_bounds(b), atol=1e-4)
    da = Detections(xywhr_bounds(a), [0.9], [0], xywhr=a)
    db = Detections(xywhr_bounds(b), [0.9], [0], xywhr=b)
    assert agreement([da], [db]).f1 == 0.0 and agreement([da], [da]).f1 == 1.0
    plain = [Detections(xywhr_bounds(a), [0.9], [0])], [Detections(xywhr_bounds(b), [0.9], [0])]
    assert agreement(*plain).f1 == 1.0  # axis-aligned matching alone could not tell them apart


def test_keypoint_oks() -> None:
    ref = np.zeros((2, 17, 3), np.float32)
    ref[..., :2] = np.random.default_rng(0).uniform(0, 100, (2, 17, 2))
    cand = ref.copy()
    cand[1, :, 0] += 10  # 10 px off on a 100 x 100 box
    oks = keypoint_oks(cand, ref, np.array([1e4, 1e4], np.float32))
    assert oks[0] == 1.0 and 0.0 < oks[1] < 0.9


@pytest.mark.parametrize("k", [17, 5])
def test_keypoints_are_drawn_as_a_skeleton_or_points(k: int, vtest_frames: list[np.ndarray]) -> None:
    frame = vtest_frames[0].copy()
    i = np.arange(k)
    # keypoints 30 px apart along a zig-zag (no dot covers another's limb midpoint); visibility
    # alternates, with the first three visible and the fourth hidden
    kpts = np.column_stack([100 + 30 * i, 200 + 40 * (i % 2), np.where(i % 4 == 3, 0.1, 0.9)]).astype(np.float32)
    out = frame.copy()
    assert draw_keypoints(out, kpts, (0, 0, 255)) == int((kpts[:, 2] >= 0.5).sum())
    changed = np.any(out != frame, axis=2)
    x, y = np.round(kpts[:, :2]).astype(int).T
    visible = kpts[:, 2] >= 0.5
    assert changed[y[visible], x[visible]].all() and not changed[y[3], x[3]]
    # a limb between two visible keypoints is a line only in the 17-keypoint (COCO) layout
    mid = np.round((kpts[0, :2] + kpts[1, :2]) / 2).astype(int)  # COCO limb (0, 1): nose - left eye
    near = changed[mid[1] - 1 : mid[1] + 2, mid[0] - 1 : mid[0] + 2].any()
    assert near == (k == 17)
