"""The in-graph rotated NMS (converters.nms_rotated), exported to ONNX and run by ONNX Runtime,
against its numpy twin (converters.reference.decode_nms_rotated) and the twin against
Ultralytics' own non_max_suppression(rotated=True), on seeded inputs built to sit on the
edges: clusters of same-class boxes at many angles (chains of overlaps), exact duplicates,
near-square boxes (angle barely matters), thin boxes, score ties, other classes on top."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from converters.nms import NMS_CAPPED
from converters.nms_rotated import RotatedPostprocess, pairwise_probiou
from converters.reference import decode_nms_rotated, probiou

NC, N = 3, 96


def rotated_preds(seed: int, batch: int = 2) -> np.ndarray:
    """float32[B, 4+NC+1, N] head outputs: cx, cy, w, h, NC class scores, angle."""
    rng = np.random.default_rng(seed)
    out = np.zeros((batch, 4 + NC + 1, N), np.float32)
    for b in range(batch):
        centres = rng.uniform(20, 300, (6, 2))
        which = rng.integers(0, 6, N)
        out[b, :2] = (centres[which] + rng.normal(0, 4, (N, 2))).T
        out[b, 2] = rng.uniform(4, 60, N)
        out[b, 3] = np.where(rng.random(N) < 0.2, out[b, 2] * rng.uniform(0.97, 1.03, N), rng.uniform(2, 60, N))
        out[b, 4 : 4 + NC] = rng.random((NC, N)) ** 2
        out[b, -1] = rng.uniform(-np.pi / 4, 3 * np.pi / 4, N)
        dup = rng.integers(0, N, 8)
        out[b, :, dup[4:]] = out[b, :, dup[:4]]  # exact duplicates (probiou 1)
        out[b, 4, rng.integers(0, N, 6)] = 0.5  # score ties
    return out


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], ort.InferenceSession]:
    """RotatedPostprocess exported as (K, block): K = N (no cap) in one block and in blocks of 16
    (the upper block triangle), K = 24 (capped) in blocks of 8; max_det 20."""
    sessions = {}
    for k, block in ((N, 256), (N, 16), (24, 8)):
        path = Path(tmp_path_factory.mktemp("rot")) / f"rot{k}_{block}.onnx"
        module = RotatedPostprocess(NC, 20, k, block).eval()
        args = (torch.from_numpy(rotated_preds(0)), torch.tensor([0.25]), torch.tensor([0.5]))
        torch.onnx.export(module, args, str(path), opset_version=17, dynamo=False,
                          input_names=["preds", "conf", "iou"], output_names=["xywhr", "scores", "cls", "num", "lim"],
                          dynamic_axes={"preds": {0: "b"}})
        sessions[k, block] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sessions


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.1, 0.45, 0.7, 0.9])
def test_graph_equals_numpy_twin(graph: dict[tuple[int, int], ort.InferenceSession], seed: int, iou: float) -> None:
    preds = rotated_preds(seed)
    conf = 0.25
    for (k, _), session in graph.items():
        xywhr, scores, cls, num, lim = session.run(None, {"preds": preds, "conf": np.array([conf], np.float32),
                                                          "iou": np.array([iou], np.float32)})
        for b in range(len(preds)):
            ref = decode_nms_rotated(preds[b], NC, conf, iou, 20, k)
            n = int(num[b])
            assert n == len(ref.scores), (k, b)
            np.testing.assert_array_equal(cls[b, :n], ref.class_ids)
            np.testing.assert_array_equal(scores[b, :n], ref.scores)
            np.testing.assert_array_equal(xywhr[b, :n], ref.boxes)
            assert (scores[b, n:] == 0).all()
            above = int((preds[b, 4 : 4 + NC].max(0) > conf).sum())
            capped = above > k and n < 20
            assert int(lim[b]) == (NMS_CAPPED if capped else 0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.1, 0.45, 0.7, 0.9])
def test_numpy_twin_equals_ultralytics(seed: int, iou: float) -> None:
    from ultralytics.utils.nms import non_max_suppression

    preds = rotated_preds(seed)
    theirs = non_max_suppression(torch.from_numpy(preds), 0.25, iou, nc=NC, max_det=20, rotated=True)
    for b, t in enumerate(theirs):
        ref = decode_nms_rotated(preds[b], NC, 0.25, iou, 20)
        t = t.numpy()  # [n, 7]: x, y, w, h, conf, class, angle
        assert len(t) == len(ref.scores) > 0
        np.testing.assert_array_equal(t[:, 4], ref.scores)
        np.testing.assert_array_equal(t[:, 5].astype(np.int32), ref.class_ids)
        np.testing.assert_array_equal(np.concatenate([t[:, :4], t[:, 6:]], 1), ref.boxes)


def test_probiou_twins_agree_with_ultralytics() -> None:
    from ultralytics.utils.metrics import batch_probiou

    boxes = rotated_preds(3)[0][[0, 1, 2, 3, 7]].T  # [N, 5] xywhr
    theirs = batch_probiou(torch.from_numpy(boxes), torch.from_numpy(boxes)).numpy()
    ours_graph = pairwise_probiou(torch.from_numpy(boxes)[None])[0].numpy()
    np.testing.assert_array_equal(ours_graph, theirs)  # the same torch ops in the same order: bit for bit
    # numpy's float32 exp/log differ from torch's by an ulp; near probiou 1 (bd ~ eps) the final
    # sqrt(1 - exp(-bd) + eps) magnifies that to ~1e-4, far above any NMS threshold in use
    twin = probiou(boxes, boxes)
    np.testing.assert_allclose(twin[theirs < 0.99], theirs[theirs < 0.99], atol=2e-6)
    np.testing.assert_allclose(twin, theirs, atol=2e-4)
    assert (np.diag(theirs) > 0.99).all() and (theirs < 0.5).mean() > 0.5  # the inputs really differ
