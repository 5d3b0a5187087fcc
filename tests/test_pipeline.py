"""The threaded video pipeline on the real video: outputs, live-source dropping, a camera
that disappears mid-run, and per-stage statistics."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgevision
from edgevision.device import usable_cores
from edgevision.pipeline import Pipeline
from edgevision.sources import CaptureSource, Frame, SourceLost


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_file_run_writes_every_frame(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    model = edgevision.load(seg_onnx)
    seen: list[int] = []
    pipe = Pipeline(model, str(vtest), [tmp_path / "a.mp4", tmp_path / "a.jsonl", lambda f, d: seen.append(f.index)],
                    max_frames=12)
    results = list(pipe)
    assert [r.frame.index for r in results] == list(range(12)) == seen
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))
    # JSON boxes are the model's boxes for that frame, in frame pixels
    direct = model(results[5].frame.image)
    assert [d["xyxy"] for d in lines[5]["detections"]] == [[round(v, 2) for v in b] for b in direct.xyxy.tolist()]
    assert video_frames(tmp_path / "a.mp4") == 12
    s = pipe.stats.to_dict()
    assert s["frames"] == 12 and s["dropped"] == 0
    assert {"decode", "preprocess", "infer", "postprocess", "annotate", "write", "latency"} <= set(s["stages_ms"])
    assert s["detections_per_class"]["person"] > 12


class PacedCamera(CaptureSource):
    """The real video delivered like a camera: live, at a fixed frame rate, never waiting."""

    def __init__(self, path: Path, fps: float, lose_after: int | None = None) -> None:
        super().__init__(str(path), f"paced:{path.name}", live=True)
        self.period, self.lose_after, self.next_at = 1.0 / fps, lose_after, time.monotonic()

    def read(self) -> Frame | None:
        if self.lose_after is not None and self._i >= self.lose_after:
            raise SourceLost(f"source {self.uri!r} stopped delivering frames after {self._i} frames")
        time.sleep(max(0.0, self.next_at - time.monotonic()))
        self.next_at += self.period
        ok, image = self.cap.read()
        if not ok:
            return None
        self._i += 1
        return Frame(image, self._i - 1)


def test_live_source_drops_stale_frames_instead_of_queueing(seg_onnx: Path, vtest: Path) -> None:
    """A camera faster than inference: processed frames skip ahead, the queue never grows."""
    model = edgevision.load(seg_onnx, masks=False)
    pipe = Pipeline(model, PacedCamera(vtest, fps=200), max_frames=120, queue_size=2)
    indices = [r.frame.index for r in pipe]
    assert pipe.stats.dropped > 0
    assert len(indices) + pipe.stats.dropped == 120
    assert indices == sorted(indices) and max(np.diff(indices)) > 1


def test_camera_that_disappears_ends_cleanly_and_keeps_outputs(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    model = edgevision.load(seg_onnx)
    pipe = Pipeline(model, PacedCamera(vtest, fps=1000, lose_after=9), [tmp_path / "cut.mp4", tmp_path / "cut.jsonl"],
                    queue_size=16)
    results = list(pipe)
    assert isinstance(pipe.error, SourceLost) and "after 9 frames" in str(pipe.error)
    assert len(results) == 9
    assert video_frames(tmp_path / "cut.mp4") == 9, "the video must be finalised and playable"
    assert len((tmp_path / "cut.jsonl").read_text().splitlines()) == 9


def test_stopping_early_closes_everything(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    pipe = Pipeline(edgevision.load(seg_onnx), str(vtest), [tmp_path / "early.mp4"])
    for r in pipe:
        if r.frame.index == 4:
            break
    assert video_frames(tmp_path / "early.mp4") == 5
    assert pipe.stats.frames == 5


def test_a_failing_sink_surfaces_as_an_error(seg_onnx: Path, vtest: Path) -> None:
    def boom(frame: Frame, dets: edgevision.Detections) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(edgevision.EdgeVisionError, match="disk full"):
        Pipeline(edgevision.load(seg_onnx, masks=False), str(vtest), [boom], max_frames=5).run()


def test_several_workers_keep_frame_order_and_results(seg_onnx: Path, vtest: Path) -> None:
    one = list(Pipeline(edgevision.load(seg_onnx, masks=False), str(vtest), max_frames=10))
    many = list(Pipeline(edgevision.load(seg_onnx, masks=False, threads=1), str(vtest), max_frames=10, workers=3))
    assert [r.frame.index for r in many] == list(range(10))
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.detections.xyxy, b.detections.xyxy, atol=1e-3)


@pytest.mark.parametrize("live, artifact, backend, workers, expect", [
    (True, "m.onnx", None, None, (1, {})),
    (False, "m.onnx", None, 1, (1, {})),
    (False, "m.engine", "tensorrt", 2, (2, {})),
    (False, "m.onnx", None, 2, (2, {"threads": max(1, usable_cores() // 2)})),
    (False, "m.onnx", "openvino", 2, (2, {"threads": max(1, usable_cores() // 2), "streams": 2})),
])
def test_worker_plan(live: bool, artifact: str, backend: str | None, workers: int | None, expect: tuple) -> None:
    from edgevision.pipeline import plan_workers

    assert plan_workers(live, artifact, backend, workers) == expect
