"""YOLOv8 heads (detect and segment) convert too. No v8 checkpoint ships offline, so the
architectures are built from Ultralytics' yaml with random weights. Untrained scores are
near-tied and their boxes overlap in long chains, so a comparison with PyTorch would only
measure float noise reordering NMS; instead this checks the two halves exactly:
- the exported network computes what PyTorch computes (raw head outputs, allclose);
- the graph's NMS equals the greedy reference on the very predictions the graph computed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.export import ExportOptions, convert
from converters.onnx_io import read_manifest
from converters.reference import decode_nms
from converters.yolo import load_yolo
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
    preds = next(n.input[0] for n in model.graph.node if n.name.startswith("/post/") and n.op_type == "Transpose")
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
    session = ort.InferenceSession(str(with_preds_output(res.onnx_path)), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    src = load_yolo(ckpt)
    batch = np.concatenate([preprocess(f, (320, 320), Preprocess())[0] for f in vtest_frames[:3]])
    outs = dict(zip(names, session.run(None, {"images": batch, "conf_threshold": np.array([0.3], np.float32),
                                                "iou_threshold": np.array([0.6], np.float32)})))
    preds = outs[names[-1]]
    with torch.no_grad():
        raw = src.model(torch.from_numpy(batch))
    torch_preds = (raw[0] if isinstance(raw, (tuple, list)) else raw).numpy()
    np.testing.assert_allclose(preds, torch_preds, rtol=1e-3, atol=1e-3)
    total = 0
    for b in range(len(batch)):
        ref = decode_nms(preds[b], 3, 0.3, 0.6, 100, 256)
        n = int(outs["num_dets"][b])
        total += n
        assert n == len(ref.scores)
        np.testing.assert_allclose(outs["boxes"][b, :n], ref.boxes, atol=1e-3)
        np.testing.assert_array_equal(outs["class_ids"][b, :n], ref.class_ids)
        if task == "segment":
            np.testing.assert_allclose(outs["mask_coeffs"][b, :n], preds[b, 7:, ref.anchors].reshape(n, -1), atol=1e-5)
    assert total > 10, "the random heads should produce plenty of detections at conf 0.3"
