"""torchvision two-stage detectors (Faster R-CNN, Mask R-CNN) through `edgevision convert`: a
state_dict and --arch, verified against torchvision's own model (its transform, RPN, RoI heads
and mask pasting) in PyTorch, then run through edgevision.load() on ONNX Runtime on frames the
conversion never saw; the graph is plain ONNX (no NonZero / NonMaxSuppression / Loop / If,
constant TopK K) and builds whole with TensorRT-RTX.

The weights are random (no download here), made meaningful by tests.families.rcnn_state_dict:
real-frame BatchNorm statistics, an RPN whose objectness and boxes vary with the picture, and a
box predictor that lets about 150 (proposal, class) pairs per frame pass score_thresh.
vtest's 576x768 frames run at 320x448 (content 320x426: the in-graph clip to the content is
exercised end to end). The Mask R-CNN case keeps a 2-core run short with the RPN at 300
candidates per level and 300 proposals (--pre-nms-topk / --proposals; torchvision's reference
is built with the same rpn_*_nms_top_n_test); the MobileNet case runs its builder's defaults
(150 / 150). The other variants run with EDGEVISION_ALL_FAMILIES=1, at torchvision's defaults.

Time on the 2-core build machine: this file's default cases with test_roi_align.py and
test_rcnn_family.py 5.6 min when it was quiet (Mask R-CNN's fixture 2 min of it); 3.6 + 8 min
while other jobs shared it. EDGEVISION_ALL_FAMILIES=1 variants at 1000/1000: Faster R-CNN v1
2.3 min (quiet), Mask R-CNN v2 7.4 min, Faster R-CNN v2 22 min (shared).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import edgevision
from converters.export import ConvertResult, ExportOptions, convert
from converters.families.base import Checkpoint
from converters.families.torchvision_rcnn import TwoStageDetect, build_rcnn
from converters.precision.evaluate import matched_mask_iou
from edgevision.detections import Detections
from edgevision.metrics import agreement
from tests.families import batch_and_single, rcnn_state_dict, torchvision_detector

pytestmark = pytest.mark.slow

NUM_CLASSES = 8


@dataclass
class Case:
    """One variant under test: builder name, transform sides and RPN sizes (None: the builder's)."""

    name: str
    min_size: int | None = None
    max_size: int | None = None
    rpn: dict[str, int] = field(default_factory=dict)  # rpn_pre_nms_top_n_test / rpn_post_nms_top_n_test

    @property
    def sides(self) -> dict[str, int]:
        return {} if self.min_size is None else {"min_size": self.min_size, "max_size": self.max_size}

    @property
    def masks(self) -> bool:
        return self.name.startswith("maskrcnn")

    def options(self) -> dict[str, Any]:
        """ExportOptions for the same sizes."""
        return {**self.sides, "pre_nms_topk": self.rpn.get("rpn_pre_nms_top_n_test"),
                "proposals": self.rpn.get("rpn_post_nms_top_n_test")}


SMALL_RPN = {"rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_test": 300}
CASES = {
    "mobilenet_320": Case("fasterrcnn_mobilenet_v3_large_320_fpn"),
    "maskrcnn": Case("maskrcnn_resnet50_fpn", 320, 512, SMALL_RPN),
    "fasterrcnn": Case("fasterrcnn_resnet50_fpn", 320, 512),
    "fasterrcnn_v2": Case("fasterrcnn_resnet50_fpn_v2", 320, 512),
    "mobilenet": Case("fasterrcnn_mobilenet_v3_large_fpn", 320, 512),
    "maskrcnn_v2": Case("maskrcnn_resnet50_fpn_v2", 320, 512),
}
DEFAULT = ("mobilenet_320", "maskrcnn")
TESTED = [c for c in CASES if c in DEFAULT or os.environ.get("EDGEVISION_ALL_FAMILIES") == "1"]


@dataclass
class Converted:
    case: Case
    state_dict: Path
    result: ConvertResult


@pytest.fixture(scope="module", params=TESTED)
def converted(request: pytest.FixtureRequest, vtest_frames40: list[np.ndarray],
              tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """A random-weight detector's state_dict (BN statistics from frames 0-7), converted and
    verified on frames 8-11. Frames 20+ are left unseen for the tests."""
    case = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    sd = rcnn_state_dict(case.name, vtest_frames40[:8], tmp / f"{request.param}.pth", num_classes=NUM_CLASSES,
                         **case.sides, **case.rpn)
    result = convert(sd, tmp / "out", ExportOptions(arch=f"torchvision:{case.name}", **case.options()),
                     vtest_frames40[8:12])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent, result.verdict
    print(f"\n{case.name} verification: {result.verdict.summary} ({result.seconds:.1f} s)")
    return Converted(case, sd, result)


def torchvision_model(c: Converted) -> torch.nn.Module:
    """The model as a torchvision user builds it from the state_dict."""
    return torchvision_detector(c.case.name, c.state_dict, num_classes=NUM_CLASSES, **c.case.sides, **c.case.rpn)


def _rgb(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255


def test_matches_torchvision_on_unseen_frames(converted: Converted, vtest_frames40: list[np.ndarray]) -> None:
    c = converted
    m = c.result.manifest
    assert m.task == ("segment" if c.case.masks else "detect") and m.input_hw == (320, 448)
    if c.case.masks:
        assert m.mask_kind == "per_detection" and m.mask_hw == (28, 28)
    net = torchvision_model(c)
    assert m.conf_threshold == pytest.approx(net.roi_heads.score_thresh)
    assert m.iou_threshold == pytest.approx(net.roi_heads.nms_thresh) and m.max_det == net.roi_heads.detections_per_img
    assert m.extra["proposals"] == net.rpn.post_nms_top_n() and m.extra["roi_align"] == "gather"
    frames = vtest_frames40[20:24] if c.case.masks else vtest_frames40[20:28]
    model = edgevision.load(c.result.onnx_path, backend="onnxruntime")
    got = [model(f) for f in frames]
    assert [g.frame_data["nms_limits"] for g in got] == [0] * len(frames), "the graph says its NMS was exact"
    ref = []
    with torch.no_grad():
        for f in frames:  # what a torchvision user gets: model([rgb / 255])
            d = net([_rgb(f)])[0]
            masks = (d["masks"][:, 0] > 0.5).numpy() if c.case.masks else None
            ref.append(Detections(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy(), masks))
    a = agreement(got, ref)
    print(f"\n{c.case.name} on unseen frames: {a.summary()}")
    assert a.reference_detections >= 20
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()
    if c.case.masks:
        assert all(g.masks is not None and g.masks.shape == (len(g), 576, 768) for g in got)
        iou, pairs = matched_mask_iou(got, ref)
        print(f"{c.case.name} masks: mean matched IoU {iou:.4f} over {pairs} pairs")
        assert pairs >= 0.95 * a.reference_detections and iou >= 0.98


def test_network_and_postprocess_halves(converted: Converted, vtest_frames40: list[np.ndarray]) -> None:
    """The exported module on torchvision's own transformed (padded) tensor: its RPN gives
    torchvision's proposals, and from torchvision's proposals its heads give torchvision's
    detections (scores, labels, boxes; masks) to float rounding. Any difference end to end comes
    from the pre-processing's float rounding or near-tied random scores, not from the graph."""
    c = converted
    ckpt = Checkpoint(c.state_dict, "state_dict", torch.load(c.state_dict, weights_only=True))
    model, _ = build_rcnn(c.case.name, ckpt, None, c.case.min_size, c.case.max_size)
    m = c.result.manifest
    pre, post = m.extra["rpn_candidates_per_level"][0], m.extra["proposals"]
    model.rpn._pre_nms_top_n["testing"], model.rpn._post_nms_top_n["testing"] = pre, post
    module = TwoStageDetect(model, (320, 448), pre, post, m.extra["nms_candidates"], m.max_det,
                            m.extra["nms_iters"]).eval()
    conf, iou = torch.tensor([m.conf_threshold]), torch.tensor([m.iou_threshold])
    total = 0
    with torch.no_grad():
        for f in vtest_frames40[20:22]:
            images, _ = model.transform([_rgb(f)])
            assert tuple(images.tensors.shape[-2:]) == (320, 448) and images.image_sizes[0] == (320, 426)
            feats = model.backbone(images.tensors)
            h, w = torch.tensor([320.0]), torch.tensor([426.0])
            # RPN half
            want_props = model.rpn(images, feats)[0][0]
            props, valid, limits = module.propose(list(feats.values()), h, w)
            n = int(valid.sum())
            assert int(limits[0]) == 0 and n == len(want_props) and n > 50
            # the same boxes; tied objectness may come in another order (torchvision's sort is not stable)
            same = (props[0, :n, None, :] - want_props[None]).abs().amax(-1) < 1e-4  # [n, n]
            assert same.any(1).all() and same.any(0).all()
            # heads half, from torchvision's proposals
            want = model.roi_heads(feats, [want_props], images.image_sizes)[0][0]
            padded, valid = torch.zeros(1, post, 4), torch.arange(post)[None] < n
            padded[0, :n] = want_props
            heads = module.detect(feats, padded, valid, h, w, conf, iou, limits)
            k = int(heads[3][0])
            total += k
            assert int(heads[-1][0]) == 0 and k == len(want["scores"])
            assert torch.allclose(heads[1][0, :k], want["scores"], atol=1e-6)
            assert torch.equal(heads[2][0, :k].long(), want["labels"])
            assert torch.allclose(heads[0][0, :k], want["boxes"], atol=1e-4)
            assert (heads[0][0, :k, 0::2] <= 426).all(), "clipped to the content, not the padded input"
            if c.case.masks:
                assert torch.allclose(heads[4][0, :k], want["masks"][:, 0], atol=1e-4)
    assert total >= 20


def test_batch_of_two_equals_two_single_runs(converted: Converted, vtest_frames40: list[np.ndarray]) -> None:
    model = edgevision.load(converted.result.onnx_path, backend="onnxruntime")
    for got, single in batch_and_single(model, vtest_frames40[28:30]):
        assert np.allclose(got.confidence, single.confidence, atol=1e-5)
        if converted.case.masks:
            assert np.mean(got.masks == single.masks) > 0.9999


def test_graph_is_plain_onnx_with_constant_topk(converted: Converted) -> None:
    import onnx

    g = onnx.load(str(converted.result.onnx_path)).graph
    ops = {n.op_type for n in g.node}
    assert not ops & {"NonZero", "NonMaxSuppression", "Loop", "If", "Scan", "RoiAlign"}, ops
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    topks = [n for n in g.node if n.op_type == "TopK"]
    assert len(topks) >= 4 and all(n.input[1] in consts for n in topks)


def test_builds_whole_with_tensorrt_rtx(converted: Converted) -> None:
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import build_engine
    from tests.test_engine_rtx import CHECK

    m = converted.result.manifest
    result = build_engine(converted.result.onnx_path, options=CHECK)
    print(f"\n{converted.case.name}: {result.layers} layers, built in {result.seconds:.1f} s with TensorRT-RTX "
          f"{trt.__version__}")
    assert result.network_inputs["images"] == (-1, 3, *m.input_hw)
    names = ["boxes", "scores", "class_ids", "num_dets"] + (["masks"] if converted.case.masks else []) + ["nms_limits"]
    assert list(result.network_outputs) == names
    assert result.network_outputs["boxes"] == (-1, m.max_det, 4)
    if converted.case.masks:
        assert result.network_outputs["masks"] == (-1, m.max_det, 28, 28)
