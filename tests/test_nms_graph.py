"""The in-graph decode + NMS (converters/nms.py), exported to ONNX and run by ONNX Runtime,
against the numpy greedy-NMS reference (converters/reference.py) on inputs built to sit on
the edges: exact IoU ties at the threshold, suppression chains, classes, padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from converters.nms import DetectPostprocess
from converters.reference import decode_nms, nms_chain_depth

NC, N = 3, 64


def export_post(tmp: Path, topk: int, iters: int, max_det: int, nm: int = 0) -> ort.InferenceSession:
    post = DetectPostprocess(NC, nm, max_det, topk, iters).eval()
    example = (torch.rand(2, 4 + NC + nm, N), torch.tensor([0.25]), torch.tensor([0.5]))
    path = tmp / f"post_{topk}_{iters}_{max_det}_{nm}.onnx"
    names = ["boxes", "scores", "class_ids", "num_dets"] + (["mask_coeffs"] if nm else [])
    torch.onnx.export(post, example, str(path), opset_version=17, dynamo=False,
                      input_names=["preds", "conf", "iou"], output_names=names,
                      dynamic_axes={"preds": {0: "b"}, **{n: {0: "b"} for n in names}})
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def make_preds(boxes_xyxy: list[list[float]], scores: list[float], classes: list[int], nm: int = 0) -> np.ndarray:
    """float32[4+NC+nm, N]: the given boxes first, the rest background (score 0)."""
    p = np.zeros((4 + NC + nm, N), np.float32)
    p[0:4, :] = np.array([[5], [5], [2], [2]], np.float32)
    for i, ((x1, y1, x2, y2), s, c) in enumerate(zip(boxes_xyxy, scores, classes)):
        p[0:4, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        p[4 + c, i] = s
    if nm:
        p[4 + NC :, :] = np.arange(nm * N, dtype=np.float32).reshape(nm, N)
    return p


CASES = {
    # name: (boxes, scores, classes, iou threshold)
    "disjoint": ([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.5),
    "duplicate": ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], 0.5),
    "other_class_survives": ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 1], 0.5),
    # IoU exactly 0.5 is not suppressed ("> iou"), as in torchvision
    "iou_at_threshold": ([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], [0, 0], 0.5),
    "iou_just_above": ([[0, 0, 10, 10], [0, 0, 10, 5.1]], [0.9, 0.8], [0, 0], 0.5),
    # chain: A suppresses B, B would suppress C, but B is gone so C survives
    "chain": ([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.3),
    "long_chain": ([[i * 4.0, 0, i * 4.0 + 10, 10] for i in range(8)], [0.9 - 0.05 * i for i in range(8)], [0] * 8, 0.3),
    "below_conf": ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.2], [0, 0], 0.5),
    "zero_area": ([[5, 5, 5, 5], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], 0.5),
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    return export_post(tmp_path_factory.mktemp("nms"), topk=32, iters=8, max_det=16)


def run(session: ort.InferenceSession, preds: np.ndarray, conf: float, iou: float) -> dict[str, np.ndarray]:
    outs = session.run(None, {"preds": preds, "conf": np.array([conf], np.float32), "iou": np.array([iou], np.float32)})
    return dict(zip([o.name for o in session.get_outputs()], outs))


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_nms_matches_greedy_reference(session: ort.InferenceSession, case: str) -> None:
    boxes, scores, classes, iou = CASES[case]
    preds = make_preds(boxes, scores, classes)
    got = run(session, preds[None], 0.25, iou)
    ref = decode_nms(preds, NC, 0.25, iou, 16)
    n = int(got["num_dets"][0])
    assert n == len(ref.scores), case
    np.testing.assert_allclose(got["scores"][0, :n], ref.scores, rtol=1e-6)
    np.testing.assert_allclose(got["boxes"][0, :n], ref.boxes, atol=1e-4)
    np.testing.assert_array_equal(got["class_ids"][0, :n], ref.class_ids)
    assert np.all(got["scores"][0, n:] == 0), "padding rows must score 0"


def test_long_chain_needs_its_depth_in_iterations(tmp_path: Path) -> None:
    """With fewer iterations than the chain is deep, the fixed point is not reached: the
    iteration count matters, and nms_chain_depth() says how many a case needs."""
    boxes, scores, classes, iou = CASES["long_chain"]
    preds = make_preds(boxes, scores, classes)
    ref = decode_nms(preds, NC, 0.25, iou, 16)
    depth = nms_chain_depth(np.array(boxes, np.float32), np.array(scores), np.array(classes), iou)
    assert depth >= 3
    shallow = run(export_post(tmp_path, topk=32, iters=1, max_det=16), preds[None], 0.25, iou)
    exact = run(export_post(tmp_path, topk=32, iters=depth, max_det=16), preds[None], 0.25, iou)
    assert int(shallow["num_dets"][0]) != len(ref.scores)
    assert int(exact["num_dets"][0]) == len(ref.scores)


def test_random_batches_match_reference_per_image(session: ort.InferenceSession) -> None:
    """Batch 3 of random clustered boxes: every image equals its own greedy reference."""
    rng = np.random.default_rng(0)
    batch = []
    for _ in range(3):
        centres = rng.uniform(10, 90, (6, 2))
        pick = rng.integers(0, 6, 24)
        xy = centres[pick] + rng.normal(0, 3, (24, 2))
        wh = rng.uniform(8, 20, (24, 2))
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).tolist()
        batch.append(make_preds(boxes, rng.uniform(0.3, 0.99, 24).tolist(), rng.integers(0, NC, 24).tolist()))
    got = run(session, np.stack(batch), 0.25, 0.45)
    for b, preds in enumerate(batch):
        ref = decode_nms(preds, NC, 0.25, 0.45, 16)
        n = int(got["num_dets"][b])
        assert n == min(len(ref.scores), 16)
        np.testing.assert_allclose(got["boxes"][b, :n], ref.boxes[:n], atol=1e-4)


def test_max_det_caps_and_mask_coeffs_follow_their_rows(tmp_path: Path) -> None:
    boxes = [[i * 20.0, 0, i * 20.0 + 10, 10] for i in range(10)]
    preds = make_preds(boxes, [0.9 - 0.01 * i for i in range(10)], [0] * 10, nm=2)
    got = run(export_post(tmp_path, topk=32, iters=4, max_det=4, nm=2), preds[None], 0.25, 0.5)
    assert int(got["num_dets"][0]) == 4
    # coefficient rows must come from the same anchors as the boxes (anchors 0..3)
    np.testing.assert_array_equal(got["mask_coeffs"][0, :, 0], preds[4 + NC, :4])
