"""YOLO26 pose (Pose26) and OBB (OBB26) heads: the one-to-one branch's top-k in the graph (no
NMS) agreeing with Ultralytics' own predictor (nms=False) on unseen vtest frames, keypoints by
OKS and rotated boxes by rotated IoU; the one-to-many branch with edgevision's NMS (rotated for
OBB) agreeing with the predictor's NMS path (nms=True); batch 2 == batch 1; TensorRT-RTX builds.

Models: yolo26n-pose / yolo26n-obb from Ultralytics' YAML, BatchNorm re-estimated on frames
0-15 (tests/test_ultralytics_e2e.e2e_checkpoint), conversion verifies on 16-19, agreement on
20-27, batch runs on 28-29.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import edgevision
from converters.export import ExportOptions, convert
from edgevision.detections import Detections
from edgevision.manifest import OUT_LIMITS, TASKS
from edgevision.metrics import agreement, keypoint_oks
from tests.families import batch_and_single
from tests.test_ultralytics_e2e import e2e_checkpoint
from tests.test_ultralytics_tasks import as_detections, paired

pytestmark = pytest.mark.slow
CONF = 0.25
MODELS = {"pose": "yolo26n-pose.yaml", "obb": "yolo26n-obb.yaml"}


def predictor(ckpt: Path, frames: list[np.ndarray], nms: bool) -> list[Detections]:
    """Ultralytics' predictor on the checkpoint, fixed 320x320 letterbox (rect=False), one-to-one
    branch (nms=False) or one-to-many + NMS (nms=True); keypoints / xywhr carried."""
    from ultralytics import YOLO

    model = YOLO(str(ckpt))
    return [as_detections(model.predict(f, imgsz=320, conf=CONF, iou=0.7, nms=nms, rect=False, verbose=False)[0])
            for f in frames]


def mean_oks(ours: list[Detections], refs: list[Detections]) -> tuple[float, int]:
    """Mean OKS of the keypoints of greedily paired detections (same class, box IoU >= 0.5)."""
    oks = []
    for o_dets, r_dets in zip(ours, refs):
        o, r = paired(o_dets, r_dets)
        area = (r_dets.xyxy[r, 2] - r_dets.xyxy[r, 0]) * (r_dets.xyxy[r, 3] - r_dets.xyxy[r, 1])
        oks.append(keypoint_oks(o_dets.keypoints[o], r_dets.keypoints[r], area))
    all_oks = np.concatenate(oks)
    return float(all_oks.mean()), len(all_oks)


def check_agreement(task: str, label: str, ours: list[Detections], refs: list[Detections], least: int) -> None:
    a = agreement(ours, refs)  # obb: rotated IoU (both carry xywhr)
    print(f"\n{task} {label}: {a.summary()}")
    assert a.reference_detections >= least
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()
    if task == "pose":
        oks, n = mean_oks(ours, refs)
        print(f"pose keypoints: mean OKS {oks:.5f} over {n} matched detections")
        assert n >= least * 0.9 and oks >= 0.97
    else:
        assert all(d.xywhr is not None for d in ours)


@pytest.fixture(scope="module", params=list(MODELS))
def e2e(request: pytest.FixtureRequest, vtest_frames40: list[np.ndarray],
        tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """task -> (task, checkpoint, the converted one-to-one .onnx)."""
    task = request.param
    tmp = tmp_path_factory.mktemp(f"yolo26-{task}")
    ckpt = e2e_checkpoint(MODELS[task], vtest_frames40[:16], tmp / "model.pt")
    result = convert(ckpt, tmp / "out", ExportOptions(imgsz=(320, 320)), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return task, ckpt, result.onnx_path


def test_one2one_graph_has_no_nms_and_agrees_with_ultralytics(e2e: tuple[str, Path, Path],
                                                                vtest_frames40: list[np.ndarray]) -> None:
    task, ckpt, path = e2e
    g = onnx.load(str(path)).graph
    assert not {n.op_type for n in g.node} & {"NonZero", "NonMaxSuppression", "Loop", "If"}
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    topks = [n for n in g.node if n.op_type == "TopK"]
    assert len(topks) == 2 and all(n.input[1] in consts for n in topks)  # Ultralytics' two-stage top-k, constant K
    assert [o.name for o in g.output] == list(TASKS[task]) and OUT_LIMITS not in [o.name for o in g.output]
    assert [i.name for i in g.input] == ["images", "conf_threshold"]
    model = edgevision.load(path, backend="onnxruntime")
    assert model.manifest.task == task and model.manifest.extra["head"] == "one2one"
    frames = vtest_frames40[20:28]
    ours = [model(f) for f in frames]
    check_agreement(task, "one2one vs Ultralytics' predictor (nms=False)", ours, predictor(ckpt, frames, False), 50)
    if task == "pose":
        assert ours[0].keypoints.shape[1:] == (17, 3)


def test_batch_of_two_equals_two_single_runs(e2e: tuple[str, Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    task = e2e[0]
    for got, single in batch_and_single(edgevision.load(e2e[2], backend="onnxruntime"), vtest_frames40[28:30]):
        extra = "keypoints" if task == "pose" else "xywhr"
        np.testing.assert_allclose(getattr(got, extra), getattr(single, extra), atol=1e-3)


def test_one2many_branch_with_our_nms(e2e: tuple[str, Path, Path], vtest_frames40: list[np.ndarray],
                                       tmp_path: Path) -> None:
    task, ckpt, _ = e2e
    result = convert(ckpt, tmp_path / "o2m", ExportOptions(imgsz=(320, 320), head="one2many"), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    model = edgevision.load(result.onnx_path, backend="onnxruntime")
    assert model.manifest.extra["head"] == "one2many" and "pre_nms_topk" in model.manifest.extra
    assert [o.name for o in onnx.load(str(result.onnx_path)).graph.output][-1] == OUT_LIMITS
    frames = vtest_frames40[20:26]
    check_agreement(task, "one2many + edgevision NMS vs Ultralytics' predictor (nms=True)",
                    [model(f) for f in frames], predictor(ckpt, frames, True), 20)


def test_builds_with_tensorrt_rtx(e2e: tuple[str, Path, Path]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is the CI builder")
    from edgevision.build import build_engine
    from tests.test_engine_rtx import CHECK

    task, _, path = e2e
    result = build_engine(path, options=CHECK)
    print(f"\nyolo26n-{task} one2one: {result.layers} layers, built in {result.seconds:.1f} s")
    assert result.network_inputs["images"][1:] == (3, 320, 320)
    assert list(result.network_outputs) == list(TASKS[task])
    if task == "pose":
        assert result.network_outputs["keypoints"][1:] == (300, 17, 3)
    else:
        assert result.network_outputs["xywhr"][1:] == (300, 5)
