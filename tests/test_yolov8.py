"""YOLOv8 heads (detect and segment) convert too. No v8 checkpoint ships offline, so the
architectures are built from Ultralytics' yaml with random weights. Untrained scores are
near-tied and their boxes overlap in long chains, so a comparison with PyTorch would only
measure float noise reordering NMS; instead this checks the two halves exactly:
- the exported network computes what PyTorch computes (raw head outputs, allclose);
- the graph's NMS equals the greedy reference on the very predictions the graph computed."""
from __future__ import annotations

import importlib.util

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.export import ExportOptions, convert
from converters.onnx_io import read_manifest
from converters.reference import decode_nms
from converters.families.ultralytics import load_yolo
from edgevision.manifest import Preprocess
from edgevision.preprocess import preprocess


def random_v8(kind: str, path: Path) -> Path:
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    torch.manual_seed(0)
    cls = SegmentationModel if kind == "seg" else DetectionModel
    model = cls(f"yolov8n{'-seg' if kind == 'seg' else ''}.yaml", nc=3, verbose=False)
    model.names = {0: "a", 1: "b", 2: "c"}
    for branch in model.model[-1].cv3:  # undo the ~1e-4 class prior so untrained scores spread over (0, 1)
        torch.nn.init.normal_(branch[-1].bias, 0.0, 1.0)
    torch.save({"model": model.eval().half(), "train_args": {"task": kind}}, path)
    return path


def with_preds_output(path: Path) -> Path:
    """The same graph, also returning the head's raw predictions (the post-processing's input)."""
    model = onnx.load(str(path))
    made_in_post = {o for n in model.graph.node if n.name.startswith("/post/") for o in n.output}
    # the first tensor the post-processing reads that it did not make itself (and no constant)
    inits = {i.name for i in model.graph.initializer}
    preds = next(i for n in model.graph.node if n.name.startswith("/post/") for i in n.input
                 if i and i not in made_in_post and i not in inits and i not in {g.name for g in model.graph.input})
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(preds))
    out = path.with_name("with_preds.onnx")
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("kind, task", [("det", "detect"), ("seg", "segment")])
def test_yolov8_export_is_exact_in_both_halves(kind: str, task: str, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    ckpt = random_v8(kind, tmp_path / f"v8{kind}.pt")
    opts = ExportOptions(imgsz=(320, 320), conf=0.3, iou=0.6, pre_nms_topk=256, max_det=100, nms_iters=32)
    res = convert(ckpt, tmp_path / "out", opts)
    manifest = read_manifest(res.onnx_path)
    assert manifest.task == task and manifest.input_hw == (320, 320)
    src = load_yolo(ckpt)
    batch = np.concatenate([preprocess(f, (320, 320), Preprocess())[0] for f in vtest_frames[:3]])
    feeds = {"images": batch, "conf_threshold": np.array([0.3], np.float32), "iou_threshold": np.array([0.6], np.float32)}
    with torch.no_grad():
        raw = src.model(torch.from_numpy(batch))
    torch_preds = (raw[0] if isinstance(raw, (tuple, list)) else raw).numpy()
    graph = with_preds_output(res.onnx_path)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    runs = {"onnxruntime": dict(zip(names, session.run(None, feeds)))}
    if importlib.util.find_spec("openvino") is not None:  # the same graph, both halves, in OpenVINO
        import openvino as ov

        request = ov.Core().compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        request.infer(feeds)
        runs["openvino"] = {n: np.array(request.get_tensor(n).data) for n in names}
    total = _check_halves(runs["onnxruntime"], runs["onnxruntime"][names[-1]], torch_preds, task)
    assert total > 10, "the random heads should produce plenty of detections at conf 0.3"
    if "openvino" in runs:
        # Random heads tie exactly (dozens of border boxes share one score), and OpenVINO's TopK
        # orders ties differently from the reference's stable sort; so its NMS half is checked
        # for what greedy NMS guarantees under any tie order.
        outs = runs["openvino"]
        np.testing.assert_allclose(outs[names[-1]], torch_preds, rtol=1e-3, atol=1e-3)
        assert sum(_check_greedy(outs, outs[names[-1]], b) for b in range(len(batch))) > 10


def _check_halves(outs: dict[str, np.ndarray], preds: np.ndarray, torch_preds: np.ndarray, task: str) -> int:
    """The network half equals PyTorch; the NMS half equals the greedy reference on the graph's own predictions."""
    np.testing.assert_allclose(preds, torch_preds, rtol=1e-3, atol=1e-3)
    total = 0
    for b in range(len(preds)):
        ref = decode_nms(preds[b], 3, 0.3, 0.6, 100, 256)
        n = int(outs["num_dets"][b])
        total += n
        assert n == len(ref.scores)
        np.testing.assert_allclose(outs["boxes"][b, :n], ref.boxes, atol=1e-3)
        np.testing.assert_array_equal(outs["class_ids"][b, :n], ref.class_ids)
        if task == "segment":
            np.testing.assert_allclose(outs["mask_coeffs"][b, :n], preds[b, 7:, ref.anchors].reshape(n, -1), atol=1e-5)
    return total


def _check_greedy(outs: dict[str, np.ndarray], preds: np.ndarray, b: int, conf: float = 0.3, iou: float = 0.6) -> int:
    """Kept rows: above conf, best first, no same-class pair overlapping above iou; every other
    candidate is overlapped above iou by a kept box of its class that scores at least as high."""
    from edgevision.metrics import box_iou

    n = int(outs["num_dets"][b])
    boxes, scores, classes = outs["boxes"][b, :n], outs["scores"][b, :n], outs["class_ids"][b, :n]
    assert np.all(scores > conf) and np.all(np.diff(scores) <= 0)
    same = classes[:, None] == classes[None, :]
    overlap = box_iou(boxes, boxes) * same
    np.fill_diagonal(overlap, 0)
    assert overlap.max(initial=0) <= iou + 1e-4
    cand = decode_nms(preds[b], 3, conf, 2.0, 256, 256)  # IoU threshold 2: nothing suppressed
    # Which of the candidates tied at the 256th score enter the pre-NMS top-k is up to the tie order too.
    cut = cand.scores.min() if len(cand.scores) == 256 else -1.0
    kept = {tuple(np.round(x, 2)) for x in boxes}
    checked = 0
    for box, score, cls in zip(cand.boxes, cand.scores, cand.class_ids):
        if tuple(np.round(box, 2)) in kept or score <= cut + 1e-6:
            continue
        checked += 1
        cover = box_iou(box[None], boxes)[0] * (classes == cls) * (scores >= score - 1e-6)
        assert cover.max(initial=0) > iou - 1e-4, (box, score, cls)
    print(f"greedy check: {n} kept, {checked} suppressed candidates above the top-k cut")
    return n


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
