"""The output schema: one result type per task, decoded by task; declared pre-processing with one
geometry per frame; torchvision's arithmetic reproduced where its families need it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgevision.draw import annotate
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest, Preprocess
from edgevision.postprocess import paste_masks
from edgevision.preprocess import geometry, preprocess
from edgevision.resample import PIL_BITS, resize_antialias
from edgevision.results import Classification, ClassMap


def test_resize_antialias_is_bit_exact_with_torch(vtest_frames: list[np.ndarray]) -> None:
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    rgb = np.ascontiguousarray(vtest_frames[0][:, :, ::-1])
    t = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    for size in [(256, 341), (100, 77), (800, 1067)]:
        for mode, kind in ((InterpolationMode.BILINEAR, "linear"), (InterpolationMode.BICUBIC, "cubic")):
            want = F.resize(t, list(size), interpolation=mode, antialias=True).permute(1, 2, 0).numpy()
            assert np.array_equal(resize_antialias(rgb, size, kind), want), (size, kind)


def test_resize_antialias_with_pil_bits_is_bit_exact_with_pil(vtest_frames: list[np.ndarray]) -> None:
    """PIL's fixed 22-bit weights (timm's transforms resize PIL images): bit-exact with
    Image.resize, where torch's per-resize bits differ from PIL in some pixels."""
    from PIL import Image

    rgb = np.ascontiguousarray(vtest_frames[0][:, :, ::-1])
    differs = 0
    for size in [(256, 341), (100, 77), (800, 1067)]:
        for resample, kind in ((Image.BILINEAR, "linear"), (Image.BICUBIC, "cubic")):
            want = np.asarray(Image.fromarray(rgb).resize(size[::-1], resample))
            assert np.array_equal(resize_antialias(rgb, size, kind, PIL_BITS), want), (size, kind)
            differs += int((resize_antialias(rgb, size, kind) != want).sum())
    assert differs > 0, "torch's and PIL's arithmetic differ somewhere on these sizes, or one mode would do"


def test_presets_match_torchvision_input_tensors(vtest_frames: list[np.ndarray]) -> None:
    """center_crop and fit produce the tensors torchvision's presets produce from the same frame."""
    from torchvision.transforms._presets import ImageClassification, SemanticSegmentation

    frame = vtest_frames[1]
    t = torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1).contiguous()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    common = dict(mean=mean, std=std, antialias=True, resize_dtype="float32-rounded")
    level = 1 / 255 / min(std) + 1e-5  # one uint8 step after normalisation

    def same(a: np.ndarray, b: np.ndarray) -> None:
        # torch resizes in float32 and rounds to uint8: a sum that lands within float error of
        # x.5 may round the other way (14 of 262144 values on this frame), never by more than one step
        d = np.abs(a - b)
        assert d.max() <= level and (d > 1e-5).mean() < 1e-3, (d.max(), (d > 1e-5).mean())

    x, geo = preprocess(frame, (224, 224), Preprocess(resize="center_crop", resize_size=256, **common))
    same(x[0], ImageClassification(crop_size=224, resize_size=256)(t).numpy())
    assert geo.new_hw == (256, 341)
    pre = Preprocess(resize="fit", min_size=520, pad_normalized=True, **common)
    x, geo = preprocess(frame, (520, 704), pre)
    want = SemanticSegmentation(resize_size=520)(t).numpy()
    assert geo.new_hw == want.shape[1:] == (520, 693)
    same(x[0, :, :, :693], want)
    assert not x[0, :, :, 693:].any(), "padding is zero after normalisation, as torchvision batches"


@pytest.mark.parametrize("pre, input_hw", [
    (Preprocess(), (640, 640)),
    (Preprocess(resize="fit", min_size=800, max_size=1333), (800, 1088)),
    (Preprocess(resize="stretch"), (320, 480)),
    (Preprocess(resize="center_crop", resize_size=256), (224, 224)),
])
def test_geometry_maps_boxes_back_to_the_frame(pre: Preprocess, input_hw: tuple[int, int]) -> None:
    geo = geometry((576, 768), input_hw, pre)
    frame_boxes = np.array([[100, 120, 300, 400], [500, 200, 700, 560]], np.float32)
    gx, gy = geo.gains
    net = frame_boxes * np.array([gx, gy, gx, gy], np.float32) + np.array([geo.left, geo.top] * 2, np.float32)
    assert np.allclose(geo.boxes_to_frame(net), frame_boxes, atol=1e-3)


def test_fit_follows_torchvision_min_max_side() -> None:
    pre = Preprocess(resize="fit", min_size=800, max_size=1333)
    assert geometry((576, 768), (1088, 1088), pre).new_hw == (800, 1066)  # 800 / 576 bounds it
    assert geometry((400, 1600), (1088, 1344), pre).new_hw == (333, 1333)  # the long side is capped
    assert geometry((576, 768), (512, 512), pre).new_hw == (384, 512)  # too big for the graph: fitted


def test_class_map_maps_back_with_pixel_centres() -> None:
    cmap = np.arange(6, dtype=np.int32).reshape(2, 3)
    geo = geometry((4, 6), (2, 3), Preprocess(resize="stretch"))
    want = torch.nn.functional.interpolate(torch.from_numpy(cmap)[None, None].float(), size=(4, 6),
                                           mode="nearest-exact")[0, 0].int().numpy()
    assert np.array_equal(geo.map_to_frame(cmap), want)


def test_paste_masks_matches_torchvision() -> None:
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(0)
    probs = rng.random((5, 28, 28)).astype(np.float32)
    boxes = np.array([[10.3, 20.7, 90.2, 60.1], [-5, -5, 30, 30], [100, 50, 159.9, 119.9], [40, 40, 41, 41],
                      [0, 0, 160, 120]], np.float32)
    want = paste_masks_in_image(torch.from_numpy(probs)[:, None], torch.from_numpy(boxes), (120, 160))[:, 0] > 0.5
    got = paste_masks(probs, boxes, (120, 160))
    assert got.shape == want.shape and (got == want.numpy()).mean() > 0.999


def test_result_types_validate_and_serialise(vtest_frames: list[np.ndarray]) -> None:
    with pytest.raises(EdgeVisionError, match="best first"):
        Classification([1, 2], [0.1, 0.9])
    with pytest.raises(EdgeVisionError, match="integer"):
        ClassMap(np.zeros((4, 4), np.float32))
    frame = vtest_frames[0]
    cls = Classification([3, 1], [0.7, 0.2], ("a", "b", "c", "d"))
    assert cls.count_names() == ["d"] and json.loads(json.dumps(cls.to_json()))["classes"][0]["class_name"] == "d"
    cmap = np.zeros(frame.shape[:2], np.int32)
    cmap[100:200, 300:400] = 2
    cm = ClassMap(cmap, ("bg", "x", "person"))
    assert cm.count_names() == ["person"] and cm.to_json()["pixels"] == {"bg": cmap.size - 10000, "person": 10000}
    drawn = annotate(frame, cm)
    assert (drawn[150, 350] != frame[150, 350]).any() and (drawn[500, 700] == frame[500, 700]).all()
    assert (annotate(frame, cls)[5:20, 5:40] != frame[5:20, 5:40]).any()


def test_manifest_declares_task_outputs() -> None:
    m = Manifest(task="classify", class_names=("a", "b"), input_hw=(224, 224), max_det=0, topk=2)
    assert m.outputs == ("topk_class_ids", "topk_probs") and Manifest.from_json(m.to_json()) == m
    with pytest.raises(EdgeVisionError, match="topk"):
        Manifest(task="classify", class_names=("a",), input_hw=(8, 8), max_det=0)
    with pytest.raises(EdgeVisionError, match="mask_hw"):
        Manifest(task="segment", class_names=("a",), input_hw=(8, 8), max_det=1, mask_kind="per_detection")
    with pytest.raises(EdgeVisionError, match="not one of"):
        Preprocess(resize="squash")


@pytest.mark.slow
def test_verification_on_empty_frames_is_not_a_pass(det_checkpoint: Path, tmp_path: Path) -> None:
    from converters.export import ExportOptions, convert

    blank = [np.full((480, 640, 3), 114, np.uint8)] * 2
    with pytest.raises(EdgeVisionError, match="not verified: the model found nothing"):
        convert(det_checkpoint, tmp_path / "a", ExportOptions(imgsz=(320, 320)), blank)
    assert not list((tmp_path / "a").glob("*.onnx"))
    result = convert(det_checkpoint, tmp_path / "b", ExportOptions(imgsz=(320, 320), accept_unverified=True), blank)
    assert result.onnx_path.is_file() and any("not verified" in n for n in result.notes)


def test_detections_carry_tracker_ids_and_data_through_indexing(vtest_frames: list[np.ndarray]) -> None:
    from edgevision.detections import Detections

    d = Detections([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], [0.9, 0.5, 0.3], [0, 1, 0],
                   tracker_id=[7, 8, 9], data={"keypoints": np.arange(3 * 17 * 3).reshape(3, 17, 3)})
    kept = d[d.confidence > 0.4]
    assert kept.tracker_id.tolist() == [7, 8] and kept.data["keypoints"].shape == (2, 17, 3)
    assert kept.to_records()[1]["tracker_id"] == 8
    with pytest.raises(EdgeVisionError, match="tracker_id has 2 rows"):
        Detections([[0, 0, 1, 1]] * 3, [0.5] * 3, [0] * 3, tracker_id=[1, 2])
    with pytest.raises(EdgeVisionError, match=r"data\['k'\] has 1 rows"):
        Detections([[0, 0, 1, 1]] * 3, [0.5] * 3, [0] * 3, data={"k": np.zeros(1)})
    drawn = annotate(vtest_frames[0], Detections([[100, 100, 200, 200]], [0.9], [0], tracker_id=[42]))
    assert (drawn != vtest_frames[0]).any()


def test_run_statistics_count_frames_where_nms_was_not_exact() -> None:
    from edgevision.stats import RunStats

    stats = RunStats()
    for limits in (0, 1, 2, 3, 0):
        stats.add({"infer": 1.0}, ["person"], limits)
    assert stats.to_dict()["nms_inexact_frames"] == {"candidate_cap": 2, "unconverged": 2}
    assert "NMS not exact on 2 frame(s)" in stats.summary()
    quiet = RunStats()
    quiet.add({"infer": 1.0}, [], 0)
    assert "NMS not exact" not in quiet.summary()
