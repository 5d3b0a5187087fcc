"""Ultralytics RT-DETR: deformable attention sampled with Gathers (no GridSample), the decoder's
top-k in the graph, agreeing with Ultralytics' RTDETRPredictor on real frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import edgevision
from converters.deformable import bilinear_sample, deformable_attention
from converters.export import ExportOptions, convert
from edgevision.detections import Detections
from edgevision.metrics import agreement
from tests.families import batch_and_single, recalibrate_bn

CONF = 0.6  # random weights score every query 0.4-0.75: this keeps tens per frame, not all 300


@pytest.mark.parametrize("seed", range(4))
def test_gather_sampling_equals_grid_sample(seed: int) -> None:
    """Seeded sweep: shapes, points inside, on and outside the map (zero padding), exact pixel
    centres and edges."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w, q, p = (int(v) for v in torch.randint(1, 9, (6,), generator=g))
    value = torch.randn(n, c * 4, h + 1, w + 2, generator=g)
    grid = torch.rand(n, q * 10, p, 2, generator=g) * 2.6 - 1.3
    # points exactly on pixel centres and on the map's outer edges
    grid[:, 0, 0] = torch.tensor([-1.0, -1.0])
    grid[:, 1, 0] = torch.tensor([1.0, 1.0])
    grid[:, 2, 0] = torch.tensor([(2 * 0 + 1) / (w + 2) - 1, (2 * 0 + 1) / (h + 1) - 1])
    want = F.grid_sample(value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    got = bilinear_sample(value, grid)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5 * max(1.0, float(value.abs().max()))


def test_deformable_attention_equals_ultralytics() -> None:
    from ultralytics.nn.modules.utils import multi_scale_deformable_attn_pytorch

    g = torch.Generator().manual_seed(0)
    shapes = [(10, 10), (5, 5), (3, 3)]
    bs, heads, dims, queries, points = 2, 8, 32, 30, 4
    value = torch.randn(bs, sum(h * w for h, w in shapes), heads, dims, generator=g)
    loc = torch.rand(bs, queries, heads, len(shapes) * points, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(bs, queries, heads, len(shapes) * points, generator=g).softmax(-1)
    want = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    got = deformable_attention(value, shapes, loc, weights)
    assert got.shape == want.shape and (got - want).abs().max() <= 1e-5


@pytest.fixture(scope="module")
def rtdetr(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """RT-DETR-l (3 classes), seeded random weights with BatchNorm statistics re-estimated on real
    frames, converted at 320x320 and verified against PyTorch: (checkpoint, ONNX)."""
    from ultralytics.nn.tasks import RTDETRDetectionModel

    tmp = tmp_path_factory.mktemp("rtdetr")
    torch.manual_seed(0)
    model = RTDETRDetectionModel("rtdetr-l.yaml", nc=3, verbose=False)
    model.names = {0: "a", 1: "b", 2: "c"}
    recalibrate_bn(model, vtest_frames40[:4], (320, 320), imagenet=False)
    ckpt = tmp / "rtdetr.pt"
    torch.save({"model": model.eval().half(), "train_args": {"task": "detect"}}, ckpt)
    result = convert(ckpt, tmp / "out", ExportOptions(imgsz=(320, 320), conf=CONF), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return ckpt, result.onnx_path


@pytest.mark.slow
def test_agrees_with_ultralytics_rtdetr_predictor(rtdetr: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    from ultralytics import RTDETR

    ckpt, path = rtdetr
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "GridSample" not in ops and not ops & {"NonZero", "NonMaxSuppression", "Loop", "If"}
    model = edgevision.load(path, backend="onnxruntime")
    assert model.manifest.preprocess.resize == "stretch" and model.manifest.max_det == 300
    predictor = RTDETR(str(ckpt))
    frames = vtest_frames40[20:26]
    ref = []
    for f in frames:
        b = predictor.predict(f, imgsz=320, conf=CONF, verbose=False)[0].boxes
        # RTDETRPredictor does not clip its boxes to the frame; every edgevision result is clipped
        xy = b.xyxy.numpy().copy()
        xy[:, 0::2] = xy[:, 0::2].clip(0, f.shape[1])
        xy[:, 1::2] = xy[:, 1::2].clip(0, f.shape[0])
        ref.append(Detections(xy, b.conf.numpy(), b.cls.numpy().astype(np.int32)))
    a = agreement([model(f) for f in frames], ref)
    print(f"\nRT-DETR-l vs Ultralytics' RTDETRPredictor: {a.summary()}")
    assert a.reference_detections >= 50 and a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()


@pytest.mark.slow
def test_batch_of_two_equals_two_single_runs(rtdetr: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    batch_and_single(edgevision.load(rtdetr[1], backend="onnxruntime"), vtest_frames40[28:30], box_atol=1e-2)


@pytest.mark.slow
def test_builds_with_tensorrt_rtx(rtdetr: tuple[Path, Path]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is the CI builder")
    from edgevision.build import build_engine
    from tests.test_engine_rtx import CHECK

    result = build_engine(rtdetr[1], options=CHECK)
    print(f"\nRT-DETR-l: {result.layers} layers, built in {result.seconds:.1f} s")
    assert result.network_outputs["boxes"][1:] == (300, 4)
