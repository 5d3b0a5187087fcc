"""The R-CNN family's front door without a conversion: which builders it takes, how the fixed
sizes follow the options (into manifest.extra and into the verification reference), and the
one-sentence refusals. Real torchvision models with seeded random weights (MobileNet-320: a
build and one probe forward, seconds)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from converters.export import ExportOptions
from converters.families import find_family
from converters.families.base import Request
from converters.families.torchvision_rcnn import TWO_STAGE, TorchvisionRcnnFamily
from converters.intake import open_checkpoint
from edgevision.errors import EdgeVisionError

NAME = "fasterrcnn_mobilenet_v3_large_320_fpn"


@pytest.fixture(scope="module")
def state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.get_model(NAME, weights=None, weights_backbone=None, num_classes=5)
    path = tmp_path_factory.mktemp("rcnn") / "m.pth"
    torch.save(model.state_dict(), path)
    return path


def _prepare(path: Path, **opts: object):  # type: ignore[no-untyped-def]
    o = ExportOptions(arch=f"torchvision:{NAME}", **opts)  # type: ignore[arg-type]
    req = Request(path, o.arch, imgsz=(320, 448), options=o)
    ckpt = open_checkpoint(path)
    return find_family(ckpt, req), ckpt, req


@pytest.mark.parametrize("name", TWO_STAGE)
def test_every_two_stage_builder_is_taken_by_this_family(name: str, state_dict: Path) -> None:
    ckpt = open_checkpoint(state_dict)
    assert isinstance(find_family(ckpt, Request(state_dict, f"torchvision:{name}")), TorchvisionRcnnFamily)


def test_keypoint_rcnn_is_not_taken(state_dict: Path) -> None:
    ckpt = open_checkpoint(state_dict)
    with pytest.raises(EdgeVisionError, match="no supported model family"):
        find_family(ckpt, Request(state_dict, "torchvision:keypointrcnn_resnet50_fpn"))


def test_sizes_follow_the_options_and_the_reference_runs_them(state_dict: Path) -> None:
    family, ckpt, req = _prepare(state_dict, pre_nms_topk=60, proposals=50, max_det=20)
    ex = family.prepare(ckpt, req)
    e = ex.manifest.extra
    assert ex.manifest.task == "detect" and ex.manifest.input_hw == (320, 448) and ex.manifest.max_det == 20
    assert e["rpn_candidates_per_level"] == [60, 60, 60] and e["proposals"] == 50 and e["max_det"] == 20
    assert e["nms_candidates"] == 50 * 4 and e["roi_align"] == "gather"  # 50 proposals x 4 foreground classes
    assert ex.output_names == ["boxes", "scores", "class_ids", "num_dets", "nms_limits"]
    heads = ex.module.box_predictor
    assert heads.cls_score.out_features == 5
    # defaults: the builder's test-time sizes (MobileNet-320: 150 / 150)
    family, ckpt, req = _prepare(state_dict)
    e = family.prepare(ckpt, req).manifest.extra
    assert e["rpn_candidates_per_level"] == [150, 150, 150] and e["proposals"] == 150 and e["max_det"] == 100


@pytest.mark.parametrize("opts, says", [
    ({"proposals": 0}, "--proposals 0"),
    ({"pre_nms_topk": 0}, "--pre-nms-topk 0"),
    ({"roi_align": "grid"}, "--roi-align grid"),
])
def test_bad_sizes_are_refused_in_one_sentence(state_dict: Path, opts: dict, says: str) -> None:
    family, ckpt, req = _prepare(state_dict, **opts)
    with pytest.raises(EdgeVisionError, match=says):
        family.prepare(ckpt, req)


def test_a_state_dict_of_another_builder_is_refused(state_dict: Path) -> None:
    ckpt = open_checkpoint(state_dict)
    o = ExportOptions(arch="torchvision:maskrcnn_resnet50_fpn")
    with pytest.raises(EdgeVisionError, match="does not fit torchvision:maskrcnn_resnet50_fpn"):
        TorchvisionRcnnFamily().prepare(ckpt, Request(state_dict, o.arch, imgsz=(320, 448), options=o))
