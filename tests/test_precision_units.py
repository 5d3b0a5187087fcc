"""converters/precision building blocks on graphs built here with onnx.helper, and on the real
yolo11n-seg graph's structure; edgevision.artifacts.resolve_artifact on report folders."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from converters.onnx_io import write_manifest  # noqa: E402
from converters.precision.budget import Budget, parse_budget  # noqa: E402
from converters.precision.calibration import (  # noqa: E402
    Ranges, TensorRange, collect_ranges_multi, split_frames,
)
from converters.precision.evaluate import FrameResult, compare, soft_loss  # noqa: E402
from converters.precision.graph import toposort  # noqa: E402
from converters.precision.qdq import QMAX, gate_name, insert_qdq, weight_qdq  # noqa: E402
from converters.precision.regions import find_regions  # noqa: E402
from edgevision.artifacts import resolve_artifact  # noqa: E402
from edgevision.detections import Detections  # noqa: E402
from edgevision.errors import EdgeVisionError  # noqa: E402
from edgevision.manifest import Manifest  # noqa: E402


def tiny_net(rng: np.random.Generator) -> onnx.ModelProto:
    """images[B,3,8,8] -> Conv(4) -> SiLU -> Conv(2) -> "/post/" Sigmoid -> y: two quantizable layers
    under name scopes, and a post-processing node that must stay float."""
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(2, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], name="/model/model.0/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s1"], name="/model/model.0/act/Sigmoid"),
        helper.make_node("Mul", ["c1", "s1"], ["a1"], name="/model/model.0/act/Mul"),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], name="/model/model.1/conv/Conv"),
        helper.make_node("Sigmoid", ["c2"], ["y"], name="/post/Sigmoid"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2, 8, 8])], [w1, b1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def test_regions_keep_post_processing_float() -> None:
    model = tiny_net(np.random.default_rng(0))
    reg = find_regions(model)
    assert [layer.name for layer in reg.layers] == ["/model/model.0/conv/Conv", "/model/model.1/conv/Conv"]
    assert reg.float_nodes == {"/post/Sigmoid"}
    assert {layer.group for layer in reg.layers} == {"/model/model.0", "/model/model.1"}


def test_regions_of_the_real_segmenter(seg_onnx: Path) -> None:
    """yolo11n-seg: the decode (DFL, class sigmoid, concat) and our /post NMS stay float; every
    Conv/ConvTranspose/MatMul of backbone, neck and head branches is a layer, in one group each."""
    model = onnx.load(str(seg_onnx))
    reg = find_regions(model, "ultralytics-yolo")
    names = {layer.name for layer in reg.layers}
    assert not any(n.startswith("/post/") or "/dfl/" in n for n in names)
    assert {"/model/model.23/dfl/ReduceSum", "/model/model.23/dfl/Softmax", "/model/model.23/Sigmoid",
            "/model/model.23/Concat_13"} <= reg.float_nodes
    assert all(n.name in reg.float_nodes for n in model.graph.node if n.name.startswith("/post/"))
    ops = sorted(layer.op_type for layer in reg.layers)
    # 108 Conv: the nine C2f/C3k2/C2PSA blocks export their cv1 as two convolutions (yolo_unsplit.py)
    assert (ops.count("Conv"), ops.count("ConvTranspose"), ops.count("MatMul")) == (108, 1, 2)
    assert sorted(n for g in reg.groups.values() for n in g) == sorted(names)
    assert {"/model/model.0", "/model/model.23/cv3.0", "/model/model.23/proto"} <= set(reg.groups)
    assert max(len(g) for g in reg.groups.values()) <= 8


@pytest.mark.parametrize(
    "w, axis, scales",
    [
        (np.array([[1.0, -2.0], [0.5, 0.25]], np.float32), 0, [2 / QMAX, 0.5 / QMAX]),
        (np.array([[1.0, -2.0], [0.5, 0.25]], np.float32), 1, [1 / QMAX, 2 / QMAX]),
        (np.zeros((2, 3), np.float32), 0, [1.0, 1.0]),  # an all-zero channel still gets a valid scale
    ],
)
def test_weight_qdq_is_symmetric_per_channel(w: np.ndarray, axis: int, scales: list[float]) -> None:
    q, scale = weight_qdq(w, axis)
    assert q.dtype == np.int8 and np.allclose(scale, scales)
    assert np.abs(q).max() <= QMAX
    shape = [1, 1]
    shape[axis] = -1
    assert np.allclose(q * scale.reshape(shape), w, atol=scale.max() / 2 + 1e-7)


def test_qdq_graph_and_its_gated_twin() -> None:
    """The Q/DQ graph quantizes exactly the layers asked for; the gated twin reproduces it with all
    gates on (bit for bit) and the FP32 graph with all gates off."""
    rng = np.random.default_rng(1)
    model = tiny_net(rng)
    reg = find_regions(model)
    x = rng.uniform(0, 1, size=(2, 3, 8, 8)).astype(np.float32)
    ranges = Ranges({"images": TensorRange(0, 1, 1.0), "a1": TensorRange(-0.3, 4, 3.0)}, 99.99, 1)
    q, skipped = insert_qdq(model, reg.layers, ranges)
    onnx.checker.check_model(q, full_check=True)
    assert skipped == []
    qs = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) == 2 and {n.input[0] for n in qs} == {"images", "a1"}
    assert {i.name for i in q.graph.initializer} >= {"w1:int8", "w2:int8", "b1"}  # bias stays float
    assert not {"w1", "w2"} & {i.name for i in q.graph.initializer}  # float weights replaced
    fp32, quant = run(model, {"images": x}), run(q, {"images": x})
    assert 0 < np.abs(fp32 - quant).max() < 0.1

    gated, _ = insert_qdq(model, reg.layers, ranges, gated=True)
    groups = [gate_name(g) for g in reg.groups]
    assert np.array_equal(run(gated, {"images": x, **{g: np.array(True) for g in groups}}), quant)
    # all off: FP32 up to float rounding (ORT fuses the plain graph's Conv+SiLU, not the gated one's)
    assert np.allclose(run(gated, {"images": x, **{g: np.array(False) for g in groups}}), fp32, atol=1e-5)

    only_first, skipped = insert_qdq(model, reg.layers, Ranges({"images": TensorRange(0, 1, 1.0)}, 99.99, 1))
    assert skipped == ["/model/model.1/conv/Conv"]  # no range measured: left float, not guessed


def test_toposort_restores_order() -> None:
    model = tiny_net(np.random.default_rng(2))
    nodes = list(model.graph.node)
    random.Random(0).shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    toposort(model.graph)
    onnx.checker.check_model(model, full_check=True)


def test_calibration_ranges_are_exact(tmp_path: Path) -> None:
    """The in-graph min / max / percentiles (several from one pass) equal numpy's on the
    runtime-preprocessed batch."""
    rng = np.random.default_rng(3)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        "cal", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3, 16, 16])],
    )
    path = tmp_path / "cal.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    manifest = Manifest(task="detect", class_names=("a",), input_hw=(16, 16), max_det=1)
    write_manifest(path, manifest)
    frames = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(3)]
    percentiles = (100.0, 99.0, 90.0)
    by_pct = collect_ranges_multi(path, manifest, ["images", "y"], frames, percentiles, batch=3)
    x = np.stack([f[:, :, ::-1].transpose(2, 0, 1) for f in frames]).astype(np.float32) / 255  # BGR->RGB, /255
    for p in percentiles:
        for name, values in (("images", x), ("y", -x)):
            r = by_pct[p].tensors[name]
            flat = np.sort(np.abs(values).ravel())
            k = max(1, int(np.ceil(flat.size * np.float32(1 - p / 100))))
            assert (r.lo, r.hi) == pytest.approx((values.min(), values.max()), abs=1e-6)
            assert r.amax == pytest.approx(flat[-k], abs=1e-6), (p, name)


def test_held_out_validation_frames(vtest: Path) -> None:
    """Without --val, validation comes from the last 20% of the video, which calibration never sees."""
    split = split_frames(str(vtest), 10, None, 6)
    assert len(split.calib) == 10 and len(split.val) == 6
    assert max(split.calib_index) < 636 <= min(split.val_index)  # vtest.avi: 795 frames
    assert split.describe()["val"]["disjoint"]


@pytest.mark.parametrize(
    "text, precision, task, want",
    [
        (None, "int8", "detect", {"min_ap": 0.90, "min_f1": 0.95, "min_mask": 0.85}),
        (None, "fp16", "segment", {"min_ap": 0.98, "min_f1": 0.99, "min_mask": 0.97}),
        ("0.8,0.9", "int8", "detect", {"min_ap": 0.8, "min_f1": 0.9, "min_mask": 0.85}),
        ("0.8, 0.9, 0.7", "fp16", "segment", {"min_ap": 0.8, "min_f1": 0.9, "min_mask": 0.7}),
        (None, "int8", "classify", {"min_top1": 0.98, "max_prob_diff": 0.05}),
        (None, "fp16", "classify", {"min_top1": 0.995, "max_prob_diff": 0.01}),
        ("0.9,0.1", "int8", "classify", {"min_top1": 0.9, "max_prob_diff": 0.1, "min_ap": 0.90}),
        (None, "int8", "semantic", {"min_pixel": 0.98, "min_miou": 0.90}),
        ("0.97,0.8", "fp16", "semantic", {"min_pixel": 0.97, "min_miou": 0.8, "min_top1": 0.995}),
        (None, "fp16", "semantic", {"min_pixel": 0.99, "min_miou": 0.97}),
        (None, "int8", "pose", {"min_ap": 0.90, "min_f1": 0.95, "min_oks": 0.90}),
        ("0.8,0.9,0.7", "fp16", "pose", {"min_ap": 0.8, "min_f1": 0.9, "min_oks": 0.7, "min_mask": 0.97}),
        ("0.8,0.9", "int8", "obb", {"min_ap": 0.8, "min_f1": 0.9}),
    ],
)
def test_parse_budget(text: str | None, precision: str, task: str, want: dict[str, float]) -> None:
    got = parse_budget(text, precision, task).as_dict()
    assert {k: got[k] for k in want} == want


@pytest.mark.parametrize("task, text", [("detect", "a,b"), ("detect", "0.9"), ("detect", "1.5,0.9"),
                                        ("detect", "0.9,0.9,0.9,0.9"), ("classify", "0.9,0.1,0.5"),
                                        ("semantic", "0.9"), ("obb", "0.9,0.9,0.9")])
def test_parse_budget_rejects(task: str, text: str) -> None:
    with pytest.raises(EdgeVisionError, match="--max-drop"):
        parse_budget(text, "int8", task)


def _frame(boxes: list[list[float]], scores: list[float], conf: float = 0.25) -> FrameResult:
    d = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.zeros(len(scores), np.int32))
    return FrameResult(d, d[d.confidence > conf])


def test_agreement_and_soft_loss() -> None:
    ref = [_frame([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.6])]
    same = compare(ref, ref, segment=False)
    assert (same.f1, same.ap50_95, same.mask_iou) == (1.0, 1.0, None)
    assert soft_loss(ref, ref, 0.25) == 0.0
    losses = [soft_loss([_frame([[0, 0, 10 + s, 10], [20, 20, 40, 40]], [0.9, 0.6 - s / 100])], ref, 0.25) for s in (1, 2, 4)]
    assert 0 < losses[0] < losses[1] < losses[2]  # smooth where F1 and AP would not move
    lost = compare([_frame([[0, 0, 10, 10]], [0.9])], ref, segment=False)
    assert lost.recall == 0.5 and Budget(0.9, 0.95, 0.85).failures(lost)


def _pose_frame(boxes: list[list[float]], shift: float) -> FrameResult:
    """Boxes with 17 keypoints at their corners / centre, moved by `shift` pixels."""
    xyxy = np.array(boxes, np.float32)
    kpts = np.zeros((len(xyxy), 17, 3), np.float32)
    kpts[:, :, 0] = xyxy[:, :1] + np.linspace(0, 1, 17) * (xyxy[:, 2:3] - xyxy[:, :1]) + shift
    kpts[:, :, 1] = xyxy[:, 1:2] + 5
    kpts[:, :, 2] = 1
    d = Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.zeros(len(xyxy), np.int32), keypoints=kpts)
    return FrameResult(d, d)


def test_pose_evaluation_measures_keypoints() -> None:
    """Same boxes, keypoints moved: box F1 stays 1, the keypoint OKS falls with the shift and the
    pose budget names it."""
    boxes = [[0, 0, 40, 80], [100, 0, 140, 80]]
    ref = [_pose_frame(boxes, 0.0)]
    same = compare(ref, ref, pose=True)
    assert same.keypoint_oks == pytest.approx(1.0) and same.keypoint_pairs == 2
    oks = [compare([_pose_frame(boxes, s)], ref, pose=True) for s in (1.0, 4.0)]
    assert oks[0].f1 == 1.0 and 0.9 < oks[0].keypoint_oks < 1.0 and oks[1].keypoint_oks < oks[0].keypoint_oks
    budget = parse_budget(None, "int8", "pose")
    assert not budget.failures(same)
    assert [f.split()[:2] for f in budget.failures(oks[1])] == [["keypoint", "OKS"]] and oks[1].keypoint_oks < 0.9
    assert "keypoint OKS >= 0.9" in budget.describe("pose")


def test_obb_evaluation_matches_rotated_boxes() -> None:
    """Two rotated boxes with the same axis-aligned bounds but crossing each other: their bounds'
    IoU is 1, their polygon IoU far below 0.5, so the gate sees a miss."""
    def frame(angle: float) -> FrameResult:
        from edgevision.rotated import xywhr_bounds

        xywhr = np.array([[50, 50, 80, 10, angle]], np.float32)
        d = Detections(xywhr_bounds(xywhr), np.array([0.9], np.float32), np.zeros(1, np.int32), xywhr=xywhr)
        return FrameResult(d, d)

    ref = [frame(np.pi / 4)]
    assert compare(ref, ref).f1 == 1.0
    crossed = compare([frame(-np.pi / 4)], ref)
    assert crossed.f1 == 0.0 and parse_budget(None, "fp16", "obb").failures(crossed)


def _folder(tmp_path: Path, artifacts: dict[str, dict[str, object]] | None) -> Path:
    for name in ("m.onnx", "m.int8.onnx", "m.int8-cpu.onnx", "m.fp16.onnx"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "m.convert.json").write_text(json.dumps({"onnx": str(tmp_path / "m.onnx")}))
    if artifacts is not None:
        (tmp_path / "m.precision.json").write_text(json.dumps({"format": 1, "artifacts": artifacts}))
    return tmp_path


def _entry(path: str, targets: list[str], accepted: bool = True, speedup: float | None = None) -> dict[str, object]:
    speed = {"onnxruntime": {"speedup_vs_fp32": speedup}} if speedup is not None else {}
    return {"path": path, "targets": targets, "accepted": accepted, "speed": speed}


ORT, TRT = ["onnxruntime"], ["tensorrt", "onnxruntime"]


@pytest.mark.parametrize(
    "artifacts, backend, want",
    [
        ({"fp32": _entry("m.onnx", TRT, speedup=1.0), "int8": _entry("m.int8.onnx", TRT, speedup=0.7),
          "int8-cpu": _entry("m.int8-cpu.onnx", ORT, speedup=1.35)}, "onnxruntime", "m.int8-cpu.onnx"),
        ({"fp32": _entry("m.onnx", TRT, speedup=1.0), "int8": _entry("m.int8.onnx", TRT, speedup=0.7),
          "int8-cpu": _entry("m.int8-cpu.onnx", ORT, accepted=False, speedup=1.35)}, "onnxruntime", "m.onnx"),
        ({"fp32": _entry("m.onnx", TRT), "fp16": _entry("m.fp16.onnx", TRT), "int8": _entry("m.int8.onnx", TRT),
          "int8-cpu": _entry("m.int8-cpu.onnx", ORT)}, "tensorrt", "m.int8.onnx"),
        ({"fp32": _entry("m.onnx", TRT), "fp16": _entry("m.fp16.onnx", TRT),
          "int8": _entry("m.int8.onnx", TRT, accepted=False)}, "tensorrt", "m.fp16.onnx"),
        ({"int8-cpu": _entry("m.gone.onnx", ORT, speedup=2.0)}, "onnxruntime", "m.onnx"),  # file missing
        (None, "onnxruntime", "m.onnx"),  # no report: FP32
    ],
)
def test_resolve_artifact(artifacts: dict[str, dict[str, object]] | None, backend: str, want: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, artifacts)
    assert resolve_artifact(folder, backend) == folder / want
    assert resolve_artifact(folder / "m.fp16.onnx", backend) == folder / "m.fp16.onnx"  # a file is a file


def test_resolve_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgeVisionError, match="not found"):
        resolve_artifact(tmp_path / "nothing")
    with pytest.raises(EdgeVisionError, match="not a convert output folder"):
        resolve_artifact(tmp_path)


def _ov(entry: dict[str, object], **configs: tuple[bool, float]) -> dict[str, object]:
    """entry plus OpenVINO configurations: config=(accepted, speedup)."""
    speed = dict(entry["speed"])  # type: ignore[call-overload]
    runtimes = {}
    for name, (ok, speedup) in configs.items():
        c = name.replace("_", "-")
        speed[c] = {"speedup_vs_fp32": speedup}
        runtimes[c] = {"accepted": ok}
    return {**entry, "speed": speed, "runtimes": runtimes}


@pytest.mark.parametrize("artifacts, backends, want", [
    # the fastest accepted pair across runtimes wins
    ({"fp32": _ov(_entry("m.onnx", TRT, speedup=1.0), openvino=(True, 0.8), openvino_bf16=(True, 1.3)),
      "int8-cpu": _ov(_entry("m.int8-cpu.onnx", ORT, speedup=1.2), openvino=(True, 1.1))},
     ["onnxruntime", "openvino"], ("m.onnx", "openvino", "openvino-bf16")),
    # bf16 rejected by its own gate: never picked, however fast
    ({"fp32": _ov(_entry("m.onnx", TRT, speedup=1.0), openvino=(True, 0.8), openvino_bf16=(False, 1.9)),
      "int8-cpu": _ov(_entry("m.int8-cpu.onnx", ORT, speedup=1.2), openvino=(True, 1.1))},
     ["onnxruntime", "openvino"], ("m.int8-cpu.onnx", "onnxruntime", "onnxruntime")),
    # a report made without OpenVINO (no runtimes): OpenVINO configurations were never judged
    ({"fp32": _entry("m.onnx", TRT, speedup=1.0), "int8": _entry("m.int8.onnx", TRT, speedup=0.7)},
     ["openvino"], ("m.onnx", "openvino", "")),  # FP32 itself, on the backend asked for
    ({"fp32": _entry("m.onnx", TRT, speedup=1.0), "int8": _entry("m.int8.onnx", TRT, speedup=0.7)},
     ["onnxruntime", "openvino"], ("m.onnx", "onnxruntime", "onnxruntime")),
    # only OpenVINO here: its fastest accepted configuration
    ({"fp32": _ov(_entry("m.onnx", TRT, speedup=1.0), openvino=(True, 0.8)),
      "int8-cpu": _ov(_entry("m.int8-cpu.onnx", ORT, speedup=1.6), openvino=(True, 1.1))},
     ["openvino"], ("m.int8-cpu.onnx", "openvino", "openvino")),
])
def test_resolve_picks_artifact_and_runtime(artifacts: dict, backends: list[str], want: tuple, tmp_path: Path) -> None:
    from edgevision.artifacts import CONFIGS, resolve

    folder = _folder(tmp_path, artifacts)
    picked = resolve(folder, backends)
    assert (picked.path.name, picked.backend, picked.config) == want
    if picked.config:
        assert picked.options == CONFIGS[picked.config][1]  # e.g. {"precision": "bf16"}


def test_backend_options_are_checked_in_words(det_onnx: Path) -> None:
    import edgevision

    with pytest.raises(EdgeVisionError, match=r"the onnxruntime backend takes no option 'streams' \(that is for openvino\)"):
        edgevision.load(det_onnx, backend="onnxruntime", streams=2)


def test_worker_plan_follows_the_backend_that_will_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenVINO-only install: a .onnx file runs on OpenVINO, so the plan is OpenVINO's."""
    import os

    import edgevision.backends as backends
    from edgevision.pipeline import plan_workers

    monkeypatch.setattr(backends, "usable_backends", lambda: ["openvino"])
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert plan_workers(False, "m.onnx", None, 2) == (2, {"threads": threads, "streams": 2})


def test_fp16_keeps_the_float_region_float_end_to_end() -> None:
    """A Conv (half) then a decode kept in FP32 (Mul by 640, Add, Mul): the FP16 graph's decode equals
    FP32 graph's up to the half Conv, with no Cast to half and back between its ops (the float16
    converter's round trips would round 640-pixel coordinates to 0.5 px steps)."""
    from converters.precision.fp16 import build_fp16

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    k = numpy_helper.from_array(np.array(640.0, np.float32), "k")
    b = numpy_helper.from_array(np.array(0.37, np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"], name="/post/sig"),
             helper.make_node("Mul", ["s", "k"], ["m"], name="/post/mul"),
             helper.make_node("Add", ["m", "b"], ["a"], name="/post/add"),
             helper.make_node("Mul", ["a", "k"], ["y"], name="/post/mul2")]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, k, b]),
        opset_imports=[helper.make_opsetid("", 17)])
    regions = find_regions(model)
    assert {"/post/sig", "/post/mul", "/post/add", "/post/mul2"} <= regions.float_nodes
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = build_fp16(model, regions, Path(tmp) / "h.onnx")
        half = onnx.load(str(path))
        x = rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
        got = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert len(casts) == 2  # the input into half, the Conv's output back to float: nothing else
    # every tensor the decode reads or writes is float32
    typed = onnx.shape_inference.infer_shapes(half).graph
    elem = {v.name: v.type.tensor_type.elem_type for v in [*typed.value_info, *typed.output]}
    post = [n for n in half.graph.node if n.name.startswith("/post/")]
    assert len(post) == 4 and all(elem[t] == TensorProto.FLOAT for n in post for t in [*n.input, *n.output] if t in elem)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-2)  # the half Conv is the only rounding
