"""Letterbox + normalisation against Ultralytics' own LetterBox on real frames (bit-exact)."""
from __future__ import annotations

import numpy as np
import pytest

from edgevision.manifest import Preprocess
from edgevision.preprocess import letterbox_geometry, letterbox_image, letterbox_into, preprocess, to_tensor


@pytest.mark.parametrize("input_hw", [(640, 640), (480, 640), (320, 320), (640, 416)])
@pytest.mark.parametrize("frame_hw", [(576, 768), (480, 640), (101, 333), (720, 1280), (640, 640)])
def test_letterbox_is_bit_exact_with_ultralytics(frame_hw: tuple[int, int], input_hw: tuple[int, int],
                                                 vtest_frames: list[np.ndarray]) -> None:
    import cv2
    from ultralytics.data.augment import LetterBox

    frame = vtest_frames[3]
    if frame.shape[:2] != frame_hw:
        frame = cv2.resize(frame, frame_hw[::-1], interpolation=cv2.INTER_AREA)
    ours, geo = letterbox_image(frame, input_hw, Preprocess())
    theirs = LetterBox(input_hw, auto=False, stride=32)(image=frame)
    np.testing.assert_array_equal(ours, theirs)
    assert geo.frame_hw == frame_hw


@pytest.mark.parametrize("pre", [Preprocess(), Preprocess(color="BGR", pad_value=0),
                                 Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
@pytest.mark.parametrize("input_hw", [(640, 640), (480, 640), (640, 416), (576, 768)])
def test_letterbox_into_equals_canvas_then_tensor(pre: Preprocess, input_hw: tuple[int, int],
                                                  vtest_frames: list[np.ndarray]) -> None:
    """The runtime's one-pass letterbox (no canvas, planes scaled one at a time) writes the
    same float32 bits as scaling the padded canvas, border and content, every cell overwritten."""
    frame = vtest_frames[5]
    canvas, geo_ref = letterbox_image(frame, input_hw, pre)
    want = to_tensor(canvas, pre)
    got = np.full((3, *input_hw), np.nan, np.float32)  # NaN wherever nothing was written
    geo = letterbox_into(frame, input_hw, pre, got)
    assert geo == geo_ref
    np.testing.assert_array_equal(got, want)


def test_tensor_is_rgb_scaled_nchw(vtest_frames: list[np.ndarray]) -> None:
    frame = vtest_frames[0]
    x, geo = preprocess(frame, (640, 640), Preprocess())
    assert x.shape == (1, 3, 640, 640) and x.dtype == np.float32
    canvas, _ = letterbox_image(frame, (640, 640), Preprocess())
    np.testing.assert_allclose(x[0, 0], canvas[:, :, 2] / 255.0, rtol=1e-6)  # R first
    np.testing.assert_allclose(x[0, 2], canvas[:, :, 0] / 255.0, rtol=1e-6)
    assert x[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # the pad grey


def test_mean_std_are_applied_in_network_channel_order(vtest_frames: list[np.ndarray]) -> None:
    pre = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x, _ = preprocess(vtest_frames[0], (320, 320), pre)
    plain, _ = preprocess(vtest_frames[0], (320, 320), Preprocess())
    np.testing.assert_allclose(x[0, 1], (plain[0, 1] - 0.456) / 0.224, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frame_hw", [(576, 768), (1080, 1920), (100, 50)])
def test_boxes_round_trip_to_frame_pixels(frame_hw: tuple[int, int]) -> None:
    geo = letterbox_geometry(frame_hw, (640, 640))
    h, w = frame_hw
    frame_boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.5, w * 0.5, h * 0.75]], np.float32)
    net = frame_boxes * geo.gain + np.array([geo.left, geo.top, geo.left, geo.top], np.float32)
    np.testing.assert_allclose(geo.boxes_to_frame(net), frame_boxes, atol=1e-3)
    # boxes reaching into the padding are clipped to the frame
    assert geo.boxes_to_frame(np.array([[-50, -50, 700, 700]], np.float32)).tolist() == [[0, 0, w, h]]


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((5, 5, 4), np.uint8)])
def test_wrong_frames_get_a_clear_error(bad: np.ndarray) -> None:
    from edgevision.errors import EdgeVisionError

    with pytest.raises(EdgeVisionError, match="uint8 HxWx3"):
        letterbox_image(bad, (64, 64), Preprocess())
