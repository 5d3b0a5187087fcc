"""Where results go, chosen by URI: video files, JSON lines, a window, a web preview, callbacks.

    out.mp4 | out.avi           annotated video (written as frames arrive; closed cleanly on stop)
    out.jsonl                   one JSON object per frame, flushed per line
    display://0                 an OpenCV window (needs a desktop session)
    http://127.0.0.1:8080       live web view: streams, statistics, JSON, Prometheus (edgevision/webpreview.py)
    a Python callable           called with (frame, detections)
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._lazy import lazy_import
from .errors import EdgeVisionError
from .results import Result as TaskResult
from .sink_base import Sink, frame_record
from .sources import Frame
from .stats import RunStats

__all__ = ["CallbackSink", "DisplaySink", "JsonlSink", "Sink", "VideoSink", "frame_record", "open_sink"]


class VideoSink(Sink):
    """Annotated frames -> a video file (mp4v in .mp4, MJPG in .avi). Opened at the first frame."""

    needs_annotated = True

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path, self.fps = Path(path), fps or 25.0
        self.writer: Any = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        cv2 = lazy_import("cv2")
        image = frame.image if annotated is None else annotated
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise EdgeVisionError(f"cannot write video to {self.path} (codec unavailable or folder not writable)")
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()  # writes the index: the file is playable from here on
            self.writer = None


class JsonlSink(Sink):
    """One line per frame: {"frame": i, ...the result's fields}. Detectors: "detections":
    [{"xyxy": [...], "confidence": f, "class_id": i, "class_name": s}] (+ "keypoints" for pose, "corners"
    for obb); semantic segmenters:
    "pixels": {class name: count} (+ "rle" with rle=True); classifiers: "classes": top-k.
    In a run over several sources every line also has "source": {"index": i, "uri": s}
    (index 0-based, in the order the sources were given); one source: no such field, as before."""

    def __init__(self, path: str | Path, rle: bool = False) -> None:
        self.rle = rle
        self.uris: list[str] = []  # the run's sources, learnt in bind(); [] or one: no "source" field
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def bind(self, stats: RunStats) -> None:
        self.uris = [s.uri for s in stats.sources]

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        source = {"index": frame.source, "uri": self.uris[frame.source]} if len(self.uris) > 1 else None
        self.file.write(json.dumps(frame_record(frame, dets, self.rle, source)) + "\n")
        self.file.flush()  # a crash or unplugged camera keeps every line written so far

    def close(self) -> None:
        self.file.close()


class DisplaySink(Sink):
    """An OpenCV window. 'q' or Esc in the window stops the run."""

    needs_annotated = True

    def __init__(self, title: str = "edgevision") -> None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise EdgeVisionError("--show needs a desktop session (no DISPLAY); use --save or a http:// preview instead")
        self.title = title
        self.stop_requested = False

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        cv2 = lazy_import("cv2")
        cv2.imshow(self.title, frame.image if annotated is None else annotated)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        cv2 = lazy_import("cv2")
        cv2.destroyWindow(self.title)


class CallbackSink(Sink):
    """Calls fn(frame, detections) for every frame."""

    def __init__(self, fn: Callable[[Frame, TaskResult], None]) -> None:
        self.fn = fn

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        self.fn(frame, dets)


def open_sink(target: str | Path | Callable[[Frame, TaskResult], None], fps: float = 25.0) -> Sink:
    """A sink from a URI, a path or a callable (see the module docstring)."""
    if callable(target):
        return CallbackSink(target)
    uri = str(target)
    if uri.startswith("display://"):
        return DisplaySink()
    if uri.startswith("http://"):
        from .webpreview import WebPreviewSink

        return WebPreviewSink(uri)
    suffix = Path(uri).suffix.lower()
    if suffix in (".mp4", ".avi", ".mkv", ".mov"):
        return VideoSink(uri, fps)
    if suffix in (".jsonl", ".json"):
        return JsonlSink(uri)
    raise EdgeVisionError(f"don't know how to write {uri!r}: use .mp4/.avi, .jsonl, display://0 or http://host:port")
