"""YOLOv10 and YOLO26 end-to-end heads: the one-to-one branch's top-k in the graph (no NMS),
agreeing with Ultralytics' own predictor (nms=False) on real frames; the one-to-many branch
with edgevision's NMS agreeing with the predictor's NMS path (nms=True)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import edgevision
from converters.export import ExportOptions, convert
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import OUT_LIMITS
from edgevision.metrics import agreement
from tests.families import batch_and_single, recalibrate_bn

pytestmark = pytest.mark.slow
CONF = 0.25


def e2e_checkpoint(yaml: str, frames: list[np.ndarray], path: Path) -> Path:
    """An Ultralytics checkpoint of `yaml` (detect / segment / obb: 3 classes; pose: 1 class,
    17x3 keypoints), seeded random weights with BatchNorm statistics re-estimated on real
    frames, class biases spread so that untrained scores cover (0, 1) in both branches."""
    from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, SegmentationModel

    torch.manual_seed(0)
    task = next((t for t in ("seg", "pose", "obb") if f"-{t}" in yaml), "detect")
    if task == "pose":
        model = PoseModel(yaml, nc=1, data_kpt_shape=(17, 3), verbose=False)
        model.names = {0: "person"}
    else:
        model = {"seg": SegmentationModel, "obb": OBBModel, "detect": DetectionModel}[task](yaml, nc=3, verbose=False)
        model.names = {0: "a", 1: "b", 2: "c"}
    recalibrate_bn(model, frames, (320, 320), imagenet=False)
    head = model.model[-1]
    cls_convs = [b[-1] for b in [*head.cv3, *head.one2one_cv3]]
    box_convs = [b[-1] for b in [*head.cv2, *head.one2one_cv2]]
    # the task's own last convolutions: mask coefficients, keypoints (Pose26: cv4_kpts), angles
    task_convs = ([*head.cv4_kpts, *head.one2one_cv4_kpts] if task == "pose"
                  else [b[-1] for b in [*getattr(head, "cv4", []), *getattr(head, "one2one_cv4", [])]])
    spread = _output_std(model, cls_convs + box_convs + task_convs, frames[:4])
    with torch.no_grad():
        for conv in cls_convs:
            # class logits ~ N(-3.5, 1): tens of boxes per frame above conf, not hundreds
            conv.weight.div_(spread[conv])
            torch.nn.init.constant_(conv.bias, -3.5)
        for conv in task_convs:
            if task == "seg":
                # mask coefficients ~ +1: masks fill their boxes. Ultralytics' predictor drops a detection
                # whose mask is empty at its input resolution, and random coefficients leave many masks a
                # few pixels from empty, where that resolution (not the head) decides.
                conv.weight.mul_(0.01)
                torch.nn.init.constant_(conv.bias, 1.0)
            else:
                # keypoint offsets (grid cells) and visibility logits ~ N(0, 1), as a trained head spreads
                # them; OBB26's raw angle ~ N(0.3, 0.5) rad: rotations both ways, none near-degenerate
                conv.weight.div_(spread[conv] * (1.0 if task == "pose" else 2.0))
                torch.nn.init.constant_(conv.bias, 0.0 if task == "pose" else 0.3)
        for conv in box_convs:
            # positive box sides, as a trained head gives (random ones invert boxes, which no
            # IoU can match; YOLO26 regresses the distances directly, reg_max 1)
            conv.weight.div_(spread[conv] * 4)
            torch.nn.init.uniform_(conv.bias, 1.0, 2.0)
    torch.save({"model": model.eval().half(), "train_args": {"task": {"seg": "segment"}.get(task, task)}}, path)
    return path


def _output_std(model: torch.nn.Module, convs: list[torch.nn.Module], frames: list[np.ndarray]) -> dict:
    """Each conv's output standard deviation on real frames (letterboxed to 320, /255)."""
    from edgevision.manifest import Preprocess
    from edgevision.preprocess import preprocess

    stds: dict = {}

    def record(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        stds[module] = float(output.std())

    hooks = [c.register_forward_hook(record) for c in convs]
    x = np.concatenate([preprocess(f, (320, 320), Preprocess(resize="letterbox", pad_value=114, color="RGB",
                                                                scale=1 / 255.0))[0] for f in frames])
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(x))  # in eval mode the head runs both branches
    for h in hooks:
        h.remove()
    return stds


def predictor_detections(ckpt: Path, frames: list[np.ndarray], nms: bool) -> list[Detections]:
    """Ultralytics' predictor on the PyTorch checkpoint, a fixed 320x320 letterbox (rect=False),
    one-to-one branch (nms=False) or one-to-many + NMS (nms=True)."""
    from ultralytics import YOLO

    model = YOLO(str(ckpt))
    out = []
    for f in frames:
        r = model.predict(f, imgsz=320, conf=CONF, nms=nms, rect=False, verbose=False)[0]
        b = r.boxes
        out.append(Detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int32)))
    return out


# YOLOv10 passes the same tests (F1/AP 1.0 both branches, TensorRT-RTX builds it); it runs with
# EDGEVISION_ALL_FAMILIES=1 to keep `make test` within its time.
MODELS = ["yolo26n.yaml", "yolo26n-seg.yaml"] + (["yolov10n.yaml"] if os.environ.get("EDGEVISION_ALL_FAMILIES") else [])


@pytest.fixture(scope="module", params=MODELS)
def e2e(request: pytest.FixtureRequest, vtest_frames40: list[np.ndarray],
        tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    tmp = tmp_path_factory.mktemp(request.param.replace(".yaml", ""))
    ckpt = e2e_checkpoint(request.param, vtest_frames40[:16], tmp / "model.pt")
    result = convert(ckpt, tmp / "out", ExportOptions(imgsz=(320, 320)), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return request.param, ckpt, result.onnx_path


def test_one2one_graph_has_no_nms_and_agrees_with_ultralytics(e2e: tuple[str, Path, Path],
                                                                vtest_frames40: list[np.ndarray]) -> None:
    name, ckpt, path = e2e
    g = onnx.load(str(path)).graph
    ops = {n.op_type for n in g.node}
    assert not ops & {"NonZero", "NonMaxSuppression", "Loop", "If"}
    # Ultralytics' two-stage top-k (best anchors, then best (anchor, class) pairs), constant K, and no NMS
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    topks = [n for n in g.node if n.op_type == "TopK"]
    assert len(topks) == 2 and all(n.input[1] in consts for n in topks)
    assert [o.name for o in g.output][-1] != OUT_LIMITS and [i.name for i in g.input] == ["images", "conf_threshold"]
    model = edgevision.load(path, backend="onnxruntime")
    assert model.manifest.extra["head"] == "one2one" and model.manifest.max_det == 300
    frames = vtest_frames40[20:28]
    got = [model(f) for f in frames]
    ref = predictor_detections(ckpt, frames, nms=False)
    a = agreement(got, ref)
    print(f"\n{name} one2one vs Ultralytics' predictor (nms=False): {a.summary()}")
    assert a.reference_detections >= 50
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()
    if "seg" in name:
        assert all(g.masks is not None and len(g.masks) == len(g) for g in got)


def test_batch_of_two_equals_two_single_runs(e2e: tuple[str, Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    batch_and_single(edgevision.load(e2e[2], backend="onnxruntime"), vtest_frames40[28:30])


def test_one2many_branch_with_our_nms(e2e: tuple[str, Path, Path], vtest_frames40: list[np.ndarray],
                                       tmp_path: Path) -> None:
    name, ckpt, _ = e2e
    if "seg" in name:
        pytest.skip("one segmenter is enough for the one-to-many option: the detect heads cover it")
    result = convert(ckpt, tmp_path / "o2m", ExportOptions(imgsz=(320, 320), head="one2many"), vtest_frames40[16:20])
    model = edgevision.load(result.onnx_path, backend="onnxruntime")
    assert model.manifest.extra["head"] == "one2many" and "pre_nms_topk" in model.manifest.extra
    frames = vtest_frames40[20:26]
    a = agreement([model(f) for f in frames], predictor_detections(ckpt, frames, nms=True))
    print(f"\n{name} one2many + edgevision NMS vs Ultralytics' predictor (nms=True): {a.summary()}")
    assert a.reference_detections >= 20 and a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()


def test_builds_with_tensorrt_rtx(e2e: tuple[str, Path, Path]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is the CI builder")
    from edgevision.build import build_engine
    from tests.test_engine_rtx import CHECK

    result = build_engine(e2e[2], options=CHECK)
    print(f"\n{e2e[0]}: {result.layers} layers, built in {result.seconds:.1f} s")
    assert result.network_inputs["images"][1:] == (3, 320, 320)
    assert result.network_outputs["boxes"][1:] == (300, 4)


def test_head_choice_is_checked(det_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgeVisionError, match="has no one-to-one branch"):
        convert(det_checkpoint, tmp_path / "x", ExportOptions(imgsz=(320, 320), head="one2one"))
