"""Sources and sinks chosen by URI, on real frames: images, folders, globs, cameras that are not
there, CSI without GStreamer, the live web preview over HTTP."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgevision
from edgevision.errors import EdgeVisionError
from edgevision.pipeline import Pipeline
from edgevision.sinks import open_sink
from edgevision.sources import ImageSource, gstreamer_available, open_source, sample_frames


@pytest.fixture()
def image_dir(tmp_path: Path, vtest_frames: list[np.ndarray]) -> Path:
    for i, f in enumerate(vtest_frames[:3]):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), f)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize("uri", ["{d}", "{d}/*.png", "{d}/f1.png"])
def test_images_folders_and_globs(uri: str, image_dir: Path, vtest_frames: list[np.ndarray]) -> None:
    src = open_source(uri.format(d=image_dir))
    assert isinstance(src, ImageSource) and not src.live
    frames = list(src)
    assert len(frames) == (1 if uri.endswith("f1.png") else 3)
    np.testing.assert_array_equal(frames[-1].image, vtest_frames[1] if len(frames) == 1 else vtest_frames[2])
    assert frames[0].name.endswith(".png")


def test_sample_frames_spreads_and_skips(vtest: Path) -> None:
    frames, idx = sample_frames(vtest, 5)
    assert idx == [0, 159, 318, 477, 636] and len(frames) == 5
    again, idx2 = sample_frames(vtest, 5, skip=set(idx))
    assert not set(idx2) & set(idx) and len(again) == 5
    assert not np.array_equal(frames[1], again[1])


@pytest.mark.parametrize("uri, message", [
    ("/dev/video9", "no such camera"),
    ("v4l2://9", "no such camera"),
    ("{d}/missing.mp4", "source not found"),
    ("{d}/*.jpg", "no images found"),
    ("{d}/notes.txt", "cannot open source"),
])
def test_sources_that_cannot_open(uri: str, message: str, image_dir: Path) -> None:
    with pytest.raises(EdgeVisionError, match=message):
        open_source(uri.format(d=image_dir))


def test_rtsp_that_refuses_is_a_clear_error() -> None:
    with pytest.raises(EdgeVisionError, match="unreachable or refused"):
        open_source("rtsp://127.0.0.1:9/stream")


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer; the error path is for wheels without it")
def test_csi_without_gstreamer_says_why() -> None:
    with pytest.raises(EdgeVisionError, match="OpenCV built with GStreamer"):
        open_source("csi://0")


def test_display_without_a_desktop_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(EdgeVisionError, match="desktop session"):
        open_sink("display://0")


def test_web_preview_serves_the_annotated_stream(seg_onnx: Path, vtest: Path) -> None:
    sink = open_sink("http://127.0.0.1:0")
    base = f"http://127.0.0.1:{sink.port}"  # type: ignore[attr-defined]
    assert b"/stream" in urllib.request.urlopen(base + "/", timeout=5).read()
    served: list[np.ndarray] = []

    def fetch(frame: object, dets: object) -> None:  # runs right after the preview got the frame
        jpeg = urllib.request.urlopen(base + "/frame.jpg", timeout=5).read()
        served.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))

    results = list(Pipeline(edgevision.load(seg_onnx), str(vtest), [sink, fetch], max_frames=2))
    assert len(served) == 2 and served[-1].shape == results[-1].frame.image.shape
    # annotated: the served picture differs from the raw frame where boxes are drawn
    assert np.abs(served[-1].astype(int) - results[-1].frame.image).mean() > 1.0
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/", timeout=2)  # closed with the pipeline


def test_jsonl_records_are_valid_json(tmp_path: Path, seg_onnx: Path, vtest: Path) -> None:
    Pipeline(edgevision.load(seg_onnx, masks=False), str(vtest), [tmp_path / "d.jsonl"], max_frames=3).run()
    for line in (tmp_path / "d.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert set(rec) == {"frame", "detections"}
        for d in rec["detections"]:
            assert set(d) == {"xyxy", "confidence", "class_id", "class_name"} and len(d["xyxy"]) == 4
