"""Roboflow RF-DETR (the rfdetr package): deformable attention sampled with Gathers (no
GridSample), the decoder's top-k in the graph, agreeing with RFDETR.predict on unseen vtest
frames; batch 2 == batch 1; TensorRT-RTX builds the graph.

rfdetr pins a torch whose metadata asks for cuda-bindings 13, which would move this
environment's pins; it runs from a separate target directory (pip install --no-deps --target
DIR rfdetr and its pure-Python dependencies, then PYTHONPATH=DIR). Without it these tests skip.
The model: tests/rfdetr_models.py (RFDETRNano from its config, random weights, 320x320); its
head is calibrated on frames 0-7, conversion verifies on 16-19, agreement on 20-27.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import edgevision
from edgevision.metrics import agreement
from tests.families import batch_and_single

SITE = Path(__file__).resolve().parents[1] / ".venv" / "rfdetr"  # where `make test` installs it
if SITE.is_dir() and str(SITE) not in sys.path:
    sys.path.append(str(SITE))  # last: the venv's own packages win where both have one
rfdetr = pytest.importorskip("rfdetr", reason="rfdetr installs only beside this environment (see the docstring)")

CONF = 0.5  # RFDETR.predict's default threshold


def test_gather_sampling_equals_rfdetr_core() -> None:
    """RF-DETR's own deformable-attention core (value [bs, heads, dims, keys]) with Gathers
    equals it with GridSample, points inside and outside the maps."""
    from rfdetr.models.ops.functions import ms_deform_attn_func as core

    from converters.deformable import rfdetr_gather_sampling

    g = torch.Generator().manual_seed(0)
    shapes = [(10, 10), (5, 5), (3, 3)]
    bs, heads, dims, queries, points = 2, 8, 16, 30, 4
    value = torch.randn(bs, heads, dims, sum(h * w for h, w in shapes), generator=g)
    loc = torch.rand(bs, queries, heads, len(shapes) * points, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(bs, queries, heads, len(shapes) * points, generator=g).softmax(-1)
    spatial = torch.tensor(shapes)
    original = core._bilinear_grid_sample
    want = core.ms_deform_attn_core_pytorch(value, spatial, loc, weights, shapes)
    with rfdetr_gather_sampling():
        assert core._bilinear_grid_sample is not original
        got = core.ms_deform_attn_core_pytorch(value, spatial, loc, weights, shapes)
    assert core._bilinear_grid_sample is original  # restored
    assert want.shape == got.shape and (got - want).abs().max() <= 1e-5


@pytest.fixture(scope="module")
def rf(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, verified ONNX) of the test RF-DETR, converted through `convert`."""
    from converters.export import ExportOptions, convert
    from tests.rfdetr_models import rfdetr_checkpoint

    tmp = tmp_path_factory.mktemp("rfdetr")
    ckpt = rfdetr_checkpoint(vtest_frames40[:8], tmp / "rf-detr-nano-3cls.pth", per_frame=30.0, conf=CONF)
    result = convert(ckpt, tmp / "out", ExportOptions(), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return ckpt, result.onnx_path


@pytest.mark.slow
def test_graph_has_no_grid_sample_and_agrees_with_rfdetr_predict(rf: tuple[Path, Path],
                                                                   vtest_frames40: list[np.ndarray]) -> None:
    from converters.families.rfdetr import load_rfdetr, rfdetr_reference

    ckpt, path = rf
    g = onnx.load(str(path)).graph
    ops = {n.op_type for n in g.node}
    assert "GridSample" not in ops and not ops & {"NonMaxSuppression", "Loop", "If"}
    assert [i.name for i in g.input] == ["images", "conf_threshold"]
    model = edgevision.load(path, backend="onnxruntime")
    assert model.manifest.family == "rfdetr" and model.manifest.max_det == 300
    assert model.manifest.class_names == ("a", "b", "c", "class3")  # RF-DETR keeps one slot more than classes
    frames = vtest_frames40[20:28]
    refs = rfdetr_reference(load_rfdetr(ckpt), frames, model.manifest)  # RFDETR.predict, threshold 0.5
    a = agreement([model(f) for f in frames], refs)
    print(f"\nRF-DETR-Nano (random weights, 320) vs RFDETR.predict: {a.summary()}")
    assert a.reference_detections >= 100
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()


@pytest.mark.slow
def test_batch_of_two_equals_two_single_runs(rf: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    batch_and_single(edgevision.load(rf[1], backend="onnxruntime"), vtest_frames40[28:30])


@pytest.mark.slow
def test_builds_with_tensorrt_rtx(rf: tuple[Path, Path]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is the CI builder")
    from edgevision.build import build_engine
    from tests.test_engine_rtx import CHECK

    result = build_engine(rf[1], options=CHECK)
    print(f"\nRF-DETR-Nano: {result.layers} layers, built in {result.seconds:.1f} s")
    assert result.network_inputs["images"][1:] == (3, 320, 320)
    assert result.network_outputs["boxes"][1:] == (300, 4)
