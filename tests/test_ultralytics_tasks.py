"""Ultralytics pose, OBB and classify heads through `edgevision convert`, against Ultralytics'
own predictor. No trained checkpoint of these heads ships offline: YOLO11n-pose / -obb / -cls
are built from their YAML with BatchNorm statistics re-estimated on real vtest frames
(tests/ultralytics_models.py). BN statistics come from frames 0-15, conversion verifies on
frames 16-23, the agreement with Ultralytics' predictor is measured on the unseen frames 24-39.

The predictor runs with rect=False: a .pt model otherwise gets a stride-minimal letterbox
(320x256 here), a different input from the fixed 320x320 the graph takes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgevision
from edgevision.detections import Detections
from edgevision.draw import annotate
from edgevision.metrics import agreement, box_iou, keypoint_oks
from edgevision.sinks import JsonlSink
from edgevision.sources import Frame
from tests.ultralytics_models import yolo_task_checkpoint

IMGSZ = {"pose": 320, "obb": 320, "classify": 224}
NC = {"pose": 1, "obb": 3, "classify": 10}


@pytest.fixture(scope="module")
def converted(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """task -> (checkpoint, verified .onnx, convert result), made once per task."""
    from converters.export import ExportOptions, convert

    made: dict[str, tuple[Path, Path, Any]] = {}

    def get(task: str) -> tuple[Path, Path, Any]:
        if task not in made:
            work = tmp_path_factory.mktemp(task)
            ckpt = yolo_task_checkpoint(task, vtest_frames40[:16], work / f"yolo11n-{task}.pt", IMGSZ[task], NC[task])
            size = IMGSZ[task]
            res = convert(ckpt, work / "out", ExportOptions(imgsz=(size, size)), vtest_frames40[16:24])
            made[task] = (ckpt, res.onnx_path, res)
        return made[task]
    return get


def ultralytics_predict(ckpt: Path, frames: list[np.ndarray], imgsz: int) -> list[Any]:
    from ultralytics import YOLO

    model = YOLO(str(ckpt))
    return [model.predict(f, imgsz=imgsz, conf=0.25, iou=0.7, rect=False, verbose=False)[0] for f in frames]


def as_detections(r: Any) -> Detections:
    """One Ultralytics Results -> Detections (keypoints / xywhr where the task has them)."""
    names = tuple(r.names[i] for i in sorted(r.names))
    if r.obb is not None:
        o = r.obb
        return Detections(o.xyxy.numpy(), o.conf.numpy(), o.cls.numpy().astype(np.int32), None, names,
                          xywhr=o.xywhr.numpy())
    b = r.boxes
    kpts = r.keypoints.data.numpy() if r.keypoints is not None else None
    return Detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int32), None, names, keypoints=kpts)


def paired(ours: Detections, ref: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one pairs (same class, box IoU >= 0.5), best reference first: (ours idx, ref idx)."""
    ious = box_iou(ref.xyxy, ours.xyxy)
    ious[ref.class_id[:, None] != ours.class_id[None, :]] = -1
    a: list[int] = []
    b: list[int] = []
    for i in np.argsort(-ref.confidence, kind="stable"):
        j = int(ious[i].argmax()) if ious.shape[1] else -1
        if j >= 0 and ious[i, j] >= 0.5:
            a.append(j)
            b.append(int(i))
            ious[:, j] = -1
    return np.array(a, int), np.array(b, int)


@pytest.mark.parametrize("task", ["pose", "obb"])
def test_detections_agree_with_ultralytics_predictor(task: str, converted: Any,
                                                     vtest_frames40: list[np.ndarray]) -> None:
    ckpt, onnx_path, res = converted(task)
    assert res.verdict is not None and res.verdict.passed and res.batch_consistent
    frames = vtest_frames40[24:]
    refs = [as_detections(r) for r in ultralytics_predict(ckpt, frames, IMGSZ[task])]
    model = edgevision.load(onnx_path)
    assert model.manifest.task == task
    ours = [model(f) for f in frames]
    used = [i for i, r in enumerate(refs) if len(r)]  # only frames where it finds something
    a = agreement([ours[i] for i in used], [refs[i] for i in used])  # obb: rotated IoU (both carry xywhr)
    print(f"\n{task} vs Ultralytics' predictor: {a.summary()}")
    assert a.reference_detections >= 100 and len(used) >= 12
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()
    if task == "pose":
        oks: list[np.ndarray] = []
        vis: list[np.ndarray] = []
        for i in used:
            o, r = paired(ours[i], refs[i])
            ref = refs[i]
            area = (ref.xyxy[r, 2] - ref.xyxy[r, 0]) * (ref.xyxy[r, 3] - ref.xyxy[r, 1])
            oks.append(keypoint_oks(ours[i].keypoints[o], ref.keypoints[r], area))
            vis.append(np.abs(ours[i].keypoints[o, :, 2] - ref.keypoints[r, :, 2]).ravel())
        all_oks = np.concatenate(oks)
        print(f"pose keypoints: mean OKS {all_oks.mean():.5f} (min {all_oks.min():.4f}) over {len(all_oks)} matched "
              f"detections; largest visibility difference {np.concatenate(vis).max():.2e}")
        assert len(all_oks) >= 100 and all_oks.mean() >= 0.97
        assert ours[used[0]].keypoints.shape[1:] == (17, 3)


def test_classifier_agrees_with_ultralytics_predictor(converted: Any, vtest_frames40: list[np.ndarray]) -> None:
    ckpt, onnx_path, res = converted("classify")
    assert res.verdict is not None and res.verdict.passed and res.batch_consistent
    frames = vtest_frames40[24:]
    refs = ultralytics_predict(ckpt, frames, IMGSZ["classify"])
    model = edgevision.load(onnx_path)
    ours = [model(f) for f in frames]
    top1 = [int(o.class_id[0]) == int(r.probs.top1) for o, r in zip(ours, refs)]
    diffs = [float(np.abs(o.confidence - r.probs.top5conf.numpy()).max()) for o, r in zip(ours, refs)]
    same5 = [list(o.class_id) == list(r.probs.top5) for o, r in zip(ours, refs)]
    print(f"\nclassify vs Ultralytics' predictor: top-1 equal {sum(top1)}/{len(top1)}, top-5 ids equal "
          f"{sum(same5)}/{len(same5)}, largest top-5 probability difference {max(diffs):.2e}")
    assert all(top1) and max(diffs) <= 1e-4
    assert len({int(o.class_id[0]) for o in ours}) >= 2, "the classifier should not say the same thing on every frame"


@pytest.mark.parametrize("task", ["pose", "obb", "classify"])
def test_batch_of_two_equals_two_single_runs(task: str, converted: Any, vtest_frames40: list[np.ndarray]) -> None:
    model = edgevision.load(converted(task)[1])
    frames = vtest_frames40[24:28]
    batch = model.predict(frames[:2]) + model.predict(frames[2:4])
    for got, f in zip(batch, frames):
        want = model(f)
        if task == "classify":
            assert np.array_equal(got.class_id, want.class_id)
            np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-5)
            continue
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-2)
        extra = "keypoints" if task == "pose" else "xywhr"
        np.testing.assert_allclose(getattr(got, extra), getattr(want, extra), atol=1e-2)


@pytest.mark.parametrize("task", ["pose", "obb", "classify"])
def test_openvino_runs_the_same_graph(task: str, converted: Any, vtest_frames40: list[np.ndarray]) -> None:
    pytest.importorskip("openvino")
    path = converted(task)[1]
    ort_model, ov_model = edgevision.load(path, backend="onnxruntime"), edgevision.load(path, backend="openvino")
    for f in vtest_frames40[24:28]:
        a, b = ort_model(f), ov_model(f)
        if task == "classify":
            assert np.array_equal(a.class_id, b.class_id)
            np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
            continue
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
        extra = "keypoints" if task == "pose" else "xywhr"
        np.testing.assert_allclose(getattr(a, extra), getattr(b, extra), atol=0.05)


@pytest.mark.parametrize("task", ["pose", "obb", "classify"])
def test_tensorrt_rtx_builds_the_graph(task: str, converted: Any) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine
    from edgevision.manifest import TASKS

    path = converted(task)[1]
    result = build_engine(path, options=BuildOptions(target="tensorrt_rtx", check_only=True,
                                                     batch=BatchRange(1, 2, 4), progress=False))
    print(f"\n{task}: {result.layers} layers, built in {result.seconds:.2f} s")
    assert result.layers > 100 and not any("NMS stage" in n for n in result.notes)
    assert list(result.network_outputs)[: len(TASKS[task])] == list(TASKS[task])
    if task == "pose":
        assert result.network_outputs["keypoints"][2:] == (17, 3)
    if task == "obb":
        assert result.network_outputs["xywhr"][2:] == (5,)


@pytest.mark.parametrize("task", ["pose", "obb"])
def test_json_lines_and_drawing_carry_the_new_fields(task: str, converted: Any, vtest_frames40: list[np.ndarray],
                                                     tmp_path: Path) -> None:
    model = edgevision.load(converted(task)[1])
    frame = vtest_frames40[30]
    dets = model(frame)
    assert len(dets) > 0
    sink = JsonlSink(tmp_path / "out.jsonl")
    sink.write(Frame(frame, 7), dets, None)
    sink.close()
    record = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert record["frame"] == 7 and len(record["detections"]) == len(dets)
    first = record["detections"][0]
    plain = Detections(dets.xyxy, dets.confidence, dets.class_id, None, dets.class_names)
    if task == "pose":
        np.testing.assert_allclose(first["keypoints"], dets.keypoints[0], atol=0.01)
    else:
        corners = np.array(first["corners"])
        assert corners.shape == (4, 2)
        # the corners span exactly the axis-aligned bounds that xyxy holds
        np.testing.assert_allclose([*corners.min(0), *corners.max(0)], dets.xyxy[0], atol=0.02)
    if task == "pose":
        # one detection (overlapping skeletons of the same colour could paint over each other):
        # each visible keypoint's pixel and the middle of each limb between two visible ones are drawn
        from edgevision.skeleton import COCO_SKELETON, VISIBLE

        best = int(np.argmax((dets.keypoints[:, :, 2] >= VISIBLE).sum(1)))
        one = dets[best]
        drawn = annotate(frame, one)
        plain_one = Detections(one.xyxy, one.confidence, one.class_id, None, one.class_names)
        changed = np.any(drawn != annotate(frame, plain_one), axis=2)
        k = one.keypoints[0]
        vis = k[:, 2] >= VISIBLE
        limbs = [(k[a, :2] + k[b, :2]) / 2 for a, b in COCO_SKELETON if vis[a] and vis[b]]
        pts = np.concatenate([k[vis, :2], np.array(limbs).reshape(-1, 2)])
        x1, y1, x2, y2 = one.xyxy[0]
        # away from the box's edges and its label, which the boxes-only drawing paints too
        pts = pts[(pts[:, 0] > x1 + 4) & (pts[:, 0] < x2 - 4) & (pts[:, 1] > y1 + 24) & (pts[:, 1] < y2 - 4)]
        xs, ys = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
        print(f"\npose drawing: {int(vis.sum())} visible keypoints, {len(limbs)} limbs, {len(pts)} points checked")
        assert len(limbs) >= 1 and len(pts) >= 3
        assert changed[ys, xs].all()
    else:  # rotated rectangles instead of the axis-aligned ones: the first box's corners are drawn
        drawn = annotate(frame, dets)
        changed = np.any(drawn != annotate(frame, plain), axis=2)
        c = np.round(corners).astype(int)
        inside = (c[:, 0] >= 0) & (c[:, 0] < frame.shape[1]) & (c[:, 1] >= 0) & (c[:, 1] < frame.shape[0])
        assert inside.any() and changed.any()
        assert np.any(drawn != frame, axis=2)[c[inside, 1], c[inside, 0]].all()


# Converts models (through the module fixture): not in the fast tier.
pytestmark = pytest.mark.slow
