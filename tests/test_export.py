"""Conversion of real YOLO checkpoints (segment and detect) and what the artifact promises."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import edgevision
from converters.checkpoint import load_checkpoint
from converters.export import ExportOptions, convert
from converters.onnx_io import read_manifest
from edgevision.errors import EdgeVisionError


@pytest.mark.parametrize("fixture, task, outputs", [
    # nms_limits last, so the outputs before it keep the places they always had
    ("seg_onnx", "segment", ["boxes", "scores", "class_ids", "num_dets", "mask_coeffs", "protos", "nms_limits"]),
    ("det_onnx", "detect", ["boxes", "scores", "class_ids", "num_dets", "nms_limits"]),
])
def test_artifact_describes_itself(fixture: str, task: str, outputs: list[str], request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    m = read_manifest(path)
    assert m.task == task and m.input_hw == (640, 640) and len(m.class_names) == 80
    assert m.class_names[0] == "person" and m.preprocess.pad_value == 114 and m.preprocess.color == "RGB"
    assert m.source["sha256"] and m.extra["nms_iters"] >= 1
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == outputs
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value"), "the batch axis must stay symbolic"
    ops = {n.op_type for n in graph.node}
    assert not ops & {"NonMaxSuppression", "NonZero", "Loop"}, "post-processing must use TensorRT-native ops"
    report = json.loads(path.with_name(path.stem + ".convert.json").read_text())
    assert report["agreement"]["f1"] == 1.0 and report["batch_consistent"] is True


@pytest.mark.parametrize("fixture", ["seg_onnx", "det_onnx"])
def test_batch_of_different_frames_equals_one_by_one(fixture: str, request: pytest.FixtureRequest,
                                                    vtest_frames: list[np.ndarray]) -> None:
    model = edgevision.load(request.getfixturevalue(fixture))
    frames = vtest_frames[1:4]
    batched = model.predict(frames)
    for frame, got in zip(frames, batched):
        want = model(frame)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-2)
        np.testing.assert_array_equal(got.class_id, want.class_id)
        if want.masks is not None:
            assert (got.masks == want.masks).mean() > 0.999


def test_segmenter_masks_sit_inside_their_boxes(seg_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    dets = edgevision.load(seg_onnx)(vtest_frames[0])
    assert dets.masks is not None and dets.masks.shape == (len(dets), 576, 768)
    for mask, (x1, y1, x2, y2) in zip(dets.masks, dets.xyxy):
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0.2 * (x2 - x1) * (y2 - y1), "a person mask should fill a good part of its box"
        assert xs.min() >= np.floor(x1) and xs.max() <= np.ceil(x2) and ys.min() >= np.floor(y1) and ys.max() <= np.ceil(y2)


def test_thresholds_are_graph_inputs(seg_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    loose = edgevision.load(seg_onnx, conf=0.1)(vtest_frames[2])
    strict = edgevision.load(seg_onnx, conf=0.6)(vtest_frames[2])
    assert len(loose) > len(strict) and strict.confidence.min() > 0.6
    names = edgevision.load(seg_onnx, classes=["person"])(vtest_frames[2])
    assert set(names.class_id.tolist()) == {0}


def test_small_input_size_and_conversion_options(det_checkpoint: Path, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    res = convert(det_checkpoint, tmp_path, ExportOptions(imgsz=(320, 416), max_det=50, pre_nms_topk=400), vtest_frames[:2])
    m = read_manifest(res.onnx_path)
    assert m.input_hw == (320, 416) and m.max_det == 50 and m.extra["anchors"] == 40 * 52 + 20 * 26 + 10 * 13
    assert res.agreement is not None and res.agreement.f1 == 1.0
    if importlib.util.find_spec("openvino") is not None:
        from tests.portability import openvino_vs_onnxruntime

        a, _ = openvino_vs_onnxruntime(res.onnx_path, vtest_frames[:4])
        assert a.f1 == 1.0 and a.reference_detections > 10, a.summary()


def _malicious(path: Path, marker: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Evil()}, path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(os.urandom(2048)), "not a PyTorch checkpoint"),
    # a whole pickled module runs code when loaded: refused without --trust-checkpoint
    (lambda p: torch.save({"model": torch.nn.Linear(2, 2)}, p), "pickles a whole model.*--trust-checkpoint"),
    (lambda p: torch.save({"w": torch.zeros(3)}, p), "no supported model family.*state_dict needs --arch"),
    (lambda p: p.write_bytes(b""), "not a PyTorch checkpoint"),
])
def test_bad_checkpoints_get_clear_errors(make, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(EdgeVisionError, match=message):
        convert(path, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.onnx")), "nothing half-written is left as an artifact"


def test_truncated_checkpoint(seg_checkpoint: Path, tmp_path: Path) -> None:
    data = seg_checkpoint.read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeVisionError):
        convert(bad, tmp_path / "out")


def test_pickled_code_never_runs_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    _malicious(ckpt, marker)
    with pytest.raises(EdgeVisionError, match="posix.system|os.system|--trust-checkpoint"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    assert zipfile.is_zipfile(ckpt)  # a normal torch archive: refused for what it references, not its format


def test_verification_rejects_a_disagreeing_graph(seg_checkpoint: Path, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    """Zero NMS iterations keep every overlapping candidate: the verification must refuse it
    and leave no accepted artifact behind."""
    with pytest.raises(EdgeVisionError, match="disagrees with the PyTorch model"):
        convert(seg_checkpoint, tmp_path, ExportOptions(nms_iters=0), vtest_frames[:2])
    assert (tmp_path / "yolo11n-seg.rejected.onnx").exists() and not (tmp_path / "yolo11n-seg.onnx").exists()


def test_a_yolo_classifier_is_taken_with_ultralytics_preprocessing(tmp_path: Path) -> None:
    """Once refused by name; now the classify task with Ultralytics' classify transforms declared
    (agreement with its predictor: tests/test_ultralytics_tasks.py)."""
    from ultralytics.nn.tasks import ClassificationModel

    from converters.families import Request, find_family
    from converters.intake import open_checkpoint

    path = tmp_path / "cls.pt"
    torch.save({"model": ClassificationModel("yolo11n-cls.yaml", nc=10, verbose=False).half()}, path)
    ckpt = open_checkpoint(path)
    ex = find_family(ckpt, Request(path)).prepare(ckpt, Request(path))
    m = ex.manifest
    assert m.task == "classify" and m.topk == 5 and m.input_hw == (224, 224) and len(m.class_names) == 10
    assert (m.preprocess.resize, m.preprocess.resize_size, m.preprocess.resize_dtype) == ("center_crop", 224, "uint8-pil")
    assert m.preprocess.mean == (0.0, 0.0, 0.0) and m.preprocess.std == (1.0, 1.0, 1.0)
    ids, probs = ex.module(*ex.example)
    # top-5 of the head's own softmax (no second softmax): sorted, and at most 1 together
    assert ids.shape == (2, 5) and (probs[:, :-1] >= probs[:, 1:]).all() and (probs.sum(-1) <= 1 + 1e-5).all()


def test_a_wrong_input_size_is_a_clear_error(seg_onnx: Path) -> None:
    model = edgevision.load(seg_onnx)
    message = "input 'images': axis 2 320 is outside the model's range 640..640 (shape (1, 3, 320, 320), model [B, 3, 640, 640])"
    with pytest.raises(EdgeVisionError, match=re.escape(message)):  # checked before ONNX Runtime sees it
        model.infer(np.zeros((1, 3, 320, 320), np.float32))


def test_dfl_on_the_last_axis_equals_ultralytics_dfl() -> None:
    from ultralytics.nn.modules.block import DFL

    from converters.families.ultralytics_export import dfl_last_axis

    dfl = DFL(16)
    x = torch.randn(2, 64, 300) * 4
    np.testing.assert_allclose(dfl_last_axis(dfl, x).numpy(), dfl(x).numpy(), rtol=1e-5, atol=1e-4)


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
