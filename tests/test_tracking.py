"""ByteTracker on synthetic moving boxes (what ids must do), the Kalman filter against the
textbook equations written out per track, and a tracked pipeline on real vtest frames."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgevision import kalman
from edgevision.detections import Detections
from edgevision.tracking import ByteTracker

W, H = 40.0, 80.0  # a pedestrian-sized box


def box(cx: float, cy: float, w: float = W, h: float = H) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def frame(boxes: list[list[float]], scores: list[float] | None = None, classes: list[int] | None = None) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores or [0.9] * n, classes or [0] * n)


def ids_by_x(out: Detections) -> dict[int, float]:
    """tracker id -> box centre x, for one frame's output."""
    assert out.tracker_id is not None
    return {int(i): float((b[0] + b[2]) / 2) for i, b in zip(out.tracker_id, out.xyxy)}


# -- association -------------------------------------------------------------------------------
def test_ids_start_at_one_keep_input_order_and_reset() -> None:
    tracker = ByteTracker()
    out = tracker.update(frame([box(100, 100), box(300, 100), box(500, 100)], [0.5, 0.9, 0.7]))
    assert out.tracker_id is not None and out.tracker_id.dtype == np.int64
    assert out.tracker_id.tolist() == [1, 2, 3]  # frame 1: confirmed at once, in input order
    np.testing.assert_array_equal(out.confidence, np.float32([0.5, 0.9, 0.7]))
    out = tracker.update(frame([box(505, 100), box(105, 100)]))  # re-ordered input: ids follow the boxes
    assert out.tracker_id.tolist() == [3, 1]
    tracker.reset()
    assert tracker.update(frame([box(300, 100)])).tracker_id.tolist() == [1]


def test_crossing_paths_keep_their_ids() -> None:
    """Two people walk through each other (fully overlapping for a frame): the motion model,
    not the last position, decides who is who afterwards."""
    tracker = ByteTracker()
    seen: list[dict[int, float]] = []
    for t in range(40):
        a, b = 100 + 10 * t, 490 - 10 * t  # they meet at t = 19.5
        seen.append(ids_by_x(tracker.update(frame([box(a, 200), box(b, 205)]))))
    first, last = seen[0], seen[-1]
    left_id = min(first, key=first.get)  # the one that started on the left...
    assert set(last) == set(first) == {1, 2}
    assert last[left_id] == max(last.values())  # ...ends on the right
    assert all(set(s) == {1, 2} for s in seen)


@pytest.mark.parametrize(
    "frame_rate, gap, same_id",
    [
        (30, 10, True),  # buffer 30 frames at 30 fps: a 10-frame occlusion keeps the id
        (30, 29, True),
        (30, 40, False),  # longer than the buffer: the track was removed, a new id
        (10, 8, True),  # the buffer is 1 s: 10 frames at 10 fps
        (10, 15, False),
    ],
)
def test_occlusion_gap_against_the_lost_buffer(frame_rate: float, gap: int, same_id: bool) -> None:
    tracker = ByteTracker(frame_rate=frame_rate)
    pos = lambda t: box(100 + 2 * t, 200)  # noqa: E731 - slow walker, so it is where the filter expects
    for t in range(10):
        before = tracker.update(frame([pos(t)]))
    assert before.tracker_id.tolist() == [1]
    for t in range(10, 10 + gap):  # occluded: nothing detected
        assert len(tracker.update(frame([]))) == 0
    after = tracker.update(frame([pos(10 + gap)]))
    after = after if len(after) else tracker.update(frame([pos(11 + gap)]))  # a new track shows from its 2nd frame
    assert after.tracker_id.tolist() == ([1] if same_id else [2])


def test_low_score_boxes_keep_a_track_but_never_start_one() -> None:
    tracker = ByteTracker()
    for t in range(5):
        assert tracker.update(frame([box(100 + 5 * t, 200)], [0.9])).tracker_id.tolist() == [1]
    for t in range(5, 15):  # partly occluded: the detector's score drops below high_thresh
        out = tracker.update(frame([box(100 + 5 * t, 200)], [0.15]))
        assert out.tracker_id.tolist() == [1] and out.confidence.tolist() == [pytest.approx(0.15)]
    fresh = ByteTracker()
    for _ in range(5):
        assert len(fresh.update(frame([box(100, 200)], [0.15]))) == 0
    # under low_thresh, even a live track lets it go (and is lost after its buffer)
    assert len(tracker.update(frame([box(175, 200)], [0.05]))) == 0


def test_a_one_frame_flicker_gets_no_id_and_a_new_box_shows_from_its_second_frame() -> None:
    tracker = ByteTracker()
    tracker.update(frame([box(100, 200)]))
    out = tracker.update(frame([box(100, 200), box(400, 200)]))  # new box: unconfirmed, not output
    assert out.tracker_id.tolist() == [1]
    out = tracker.update(frame([box(100, 200)]))  # it vanished: dropped, its id never given
    out = tracker.update(frame([box(100, 200), box(600, 200)]))
    out = tracker.update(frame([box(100, 200), box(600, 200)]))
    assert out.tracker_id.tolist() == [1, 2]


@pytest.mark.parametrize("class_aware, expect", [(False, [1]), (True, [2])])
def test_class_flip_follows_class_awareness(class_aware: bool, expect: list[int]) -> None:
    """The detector calls the same box a car, then a truck: ByteTrack keeps the id; class-aware does not."""
    tracker = ByteTracker(class_aware=class_aware)
    for t in range(3):
        tracker.update(frame([box(100 + t, 200)], classes=[2]))
    tracker.update(frame([box(103, 200)], classes=[7]))
    out = tracker.update(frame([box(104, 200)], classes=[7]))
    assert out.tracker_id.tolist() == expect and out.class_id.tolist() == [7]


def test_degenerate_and_empty_frames_are_harmless() -> None:
    tracker = ByteTracker()
    out = tracker.update(frame([[10, 10, 10, 50], box(200, 200)]))  # zero width: never tracked
    assert out.tracker_id.tolist() == [1] and out.xyxy[0, 0] == pytest.approx(180)
    empty = tracker.update(Detections.empty(("person",)))
    assert len(empty) == 0 and empty.tracker_id is not None and empty.class_names == ("person",)


# -- Kalman filter -----------------------------------------------------------------------------
def _reference_matrices(h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """F, H, Q, R written out for one track of height h (ByteTrack's weights 1/20, 1/160)."""
    F = np.eye(8)
    for i in range(4):
        F[i, i + 4] = 1.0
    Hm = np.hstack([np.eye(4), np.zeros((4, 4))])
    p, v = h / 20, h / 160
    Q = np.diag(np.square([p, p, 1e-2, p, v, v, 1e-5, v]))
    R = np.diag(np.square([p, p, 1e-1, p]))
    return F, Hm, Q, R


def test_kalman_matches_the_textbook_equations_per_track() -> None:
    rng = np.random.default_rng(0)
    n = 7
    z0 = np.column_stack([rng.uniform(0, 700, n), rng.uniform(0, 500, n), rng.uniform(0.3, 2, n), rng.uniform(20, 200, n)])
    mean, cov = kalman.initiate(z0)
    for i in range(n):  # initial spread: 2/20 h on position, 10/160 h on velocity
        h = z0[i, 3]
        want = np.square([h / 10, h / 10, 1e-2, h / 10, h / 16, h / 16, 1e-5, h / 16])
        np.testing.assert_allclose(np.diag(cov[i]), want)
    mean[:, 4:] = rng.normal(0, 3, (n, 4))  # give them some velocity
    for step in range(3):
        pm, pc = kalman.predict(mean, cov)
        z = pm[:, :4] + rng.normal(0, 2, (n, 4))
        um, uc = kalman.update(pm, pc, z)
        for i in range(n):
            F, Hm, Q, R = _reference_matrices(mean[i, 3])
            m_ref = F @ mean[i]
            c_ref = F @ cov[i] @ F.T + Q
            np.testing.assert_allclose(pm[i], m_ref, rtol=1e-12)
            np.testing.assert_allclose(pc[i], c_ref, rtol=1e-12)
            _, _, _, R = _reference_matrices(m_ref[3])  # measurement noise from the predicted height
            S = Hm @ c_ref @ Hm.T + R
            K = c_ref @ Hm.T @ np.linalg.inv(S)
            np.testing.assert_allclose(um[i], m_ref + K @ (z[i] - Hm @ m_ref), rtol=1e-9)
            np.testing.assert_allclose(uc[i], (np.eye(8) - K @ Hm) @ c_ref, rtol=1e-8, atol=1e-9)
        mean, cov = um, uc


def test_box_conversions_round_trip() -> None:
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 1, 4]], np.float64)
    xyah = kalman.xyxy_to_xyah(xyxy)
    np.testing.assert_allclose(xyah, [[30, 60, 0.5, 80], [0.5, 2, 0.25, 4]])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(xyah), xyxy)


# -- on real frames ----------------------------------------------------------------------------
def test_tracked_pipeline_on_vtest(det_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    """30 consecutive vtest frames: ids persist frame to frame, reach the JSON lines and the drawing."""
    import edgevision
    from edgevision.draw import annotate
    from edgevision.pipeline import Pipeline

    jsonl = tmp_path / "tracked.jsonl"
    model = edgevision.load(det_onnx, conf=0.1, masks=False)
    results = list(Pipeline(model, str(vtest), [jsonl], max_frames=30, workers=2, track=True))
    assert [r.frame.index for r in results] == list(range(30))
    ids = [set(r.detections.tracker_id.tolist()) for r in results]
    assert all(r.detections.tracker_id is not None for r in results)
    assert max(max(s) for s in ids if s) < 40  # about one id per walker, not one per box
    kept = [len(a & b) / len(a) for a, b in zip(ids, ids[1:]) if a]
    assert np.mean(kept) > 0.9, kept  # most tracks carry on to the next frame
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 30
    assert [{d["tracker_id"] for d in line["detections"]} for line in lines] == ids

    last = results[-1]
    untracked = Detections(last.detections.xyxy, last.detections.confidence, last.detections.class_id,
                           class_names=last.detections.class_names)
    drawn, plain = annotate(last.frame.image, last.detections), annotate(last.frame.image, untracked)
    assert (drawn != plain).any(axis=2).sum() > 200  # the "#id" labels (and id colours) changed the image


def test_cli_run_track_writes_ids(det_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    from edgevision.cli import main

    jsonl = tmp_path / "cli.jsonl"
    assert main(["run", str(det_onnx), "--source", str(vtest), "--max-frames", "6", "--track", "--jsonl", str(jsonl),
                 "--quiet"]) == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    ids = [[d["tracker_id"] for d in line["detections"]] for line in lines]
    assert len(lines) == 6 and ids[0] and all(len(set(i)) == len(i) for i in ids)  # unique within a frame
    assert len(set(ids[0]) & set(ids[-1])) >= len(ids[0]) // 2  # the same walkers, five frames later


def test_missing_scipy_names_the_extra() -> None:
    from tests.test_import_boundary import run_py

    res = run_py(
        "from edgevision.tracking import ByteTracker\n"
        "from edgevision.errors import EdgeVisionError\n"
        "try:\n    ByteTracker()\nexcept EdgeVisionError as e:\n    print(e)\n",
        blocked=("scipy",),
    )
    assert res.returncode == 0, res.stderr
    assert "edgevision[track]" in res.stdout
