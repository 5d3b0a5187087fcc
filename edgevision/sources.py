"""Frame sources chosen by URI: files, images, folders, globs, V4L2, RTSP and CSI cameras.

    video.mp4 | image.jpg | folder/ | "frames/*.png"     files (nothing is dropped)
    /dev/video0 | v4l2://0 | 0                           USB / V4L2 camera (live)
    rtsp://host/stream                                   network stream (live)
    csi://0                                              Jetson CSI camera via nvarguscamerasrc (live)

Live sources come back after a drop: open_source wraps them in edgevision.reconnect's
ReconnectingSource (backoff, LOST / RESTORED / FROZEN / BLACK events) unless reconnect=False.
"""
from __future__ import annotations

import glob
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._lazy import lazy_import
from .errors import EdgeVisionError
from .health import EventKind, SourceState
from .source_base import Frame, Source, SourceLost

if TYPE_CHECKING:
    from .reconnect import ReconnectPolicy

# Frame, Source and SourceLost live in source_base.py; this module is where users find them.
__all__ = ["CaptureSource", "Frame", "ImageSource", "Source", "SourceLost", "open_source", "sample_frames"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".h265"}


class ImageSource(Source):
    """A list of image files, read in order."""

    def __init__(self, paths: list[Path], uri: str) -> None:
        if not paths:
            raise EdgeVisionError(f"no images found at {uri}")
        self.paths, self.uri, self.frame_count, self._i = paths, uri, len(paths), 0
        self.state = SourceState.LIVE

    def read(self) -> Frame | None:
        cv2 = lazy_import("cv2")
        while self._i < len(self.paths):
            path = self.paths[self._i]
            self._i += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return Frame(image, self._i - 1, name=path.name, source=self.index)
        self._ended()
        return None


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: files, V4L2 devices, RTSP, GStreamer pipelines.

    A live source that returns no frame for `timeout_s` raises SourceLost; a file simply ends.
    """

    def __init__(self, target: Any, uri: str, live: bool, api: int | None = None, timeout_s: float = 5.0,
                 params: Sequence[int] = ()) -> None:
        cv2 = lazy_import("cv2")
        self.uri, self.live, self.timeout_s = uri, live, timeout_s
        # params: cv2.CAP_PROP_* id/value pairs for the open, e.g. FFmpeg's open/read timeouts
        if params:
            self.cap = cv2.VideoCapture(target, cv2.CAP_ANY if api is None else api, list(params))
        else:
            self.cap = cv2.VideoCapture(target, api) if api is not None else cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise EdgeVisionError(f"cannot open source {uri!r}" + _open_hint(uri))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_count = 0 if live else max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self._i = 0
        self.state = SourceState.LIVE

    def read(self) -> Frame | None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            ok, image = self.cap.read()
            if ok and image is not None:
                self._i += 1
                return Frame(image, self._i - 1, source=self.index)
            if not self.live:
                self._ended()
                return None
            if time.monotonic() > deadline:
                self.emit(EventKind.LOST, f"no frame for {self.timeout_s:g} s")
                raise SourceLost(f"source {self.uri!r} stopped delivering frames after {self._i} frames")
            time.sleep(0.05)

    def close(self) -> None:
        self.cap.release()


def _open_hint(uri: str) -> str:
    if uri.startswith(("/dev/video", "v4l2://")) or uri.isdigit():
        cams = sorted(glob.glob("/dev/video*"))
        return f": no such camera (cameras here: {', '.join(cams) or 'none'})"
    if uri.startswith("rtsp://"):
        return ": the stream is unreachable or refused the connection"
    if not Path(uri).exists():
        return ": no such file"
    return ": the file is not a video OpenCV can decode (corrupt, or an unsupported codec)"


def csi_pipeline(sensor_id: int, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc), ending in BGR appsink."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
        f"framerate={fps}/1, format=NV12 ! nvvidconv flip-method={flip} ! video/x-raw, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def gstreamer_available() -> bool:
    cv2 = lazy_import("cv2")
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


def _image_paths(pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(pattern) if Path(p).suffix.lower() in IMAGE_SUFFIXES)


def open_source(uri: str | int, timeout_s: float = 5.0, reconnect: ReconnectPolicy | bool = True) -> Source:
    """Open a source by URI (see the module docstring).

    Live sources (cameras, streams) reconnect when they drop (edgevision.reconnect):
    reconnect=True uses the default ReconnectPolicy with `timeout_s` as its stall limit, a
    ReconnectPolicy sets everything, False gives the bare capture that raises SourceLost after
    `timeout_s` without frames. Files, images and folders are never reconnected.
    """
    from .reconnect import ReconnectingSource, ReconnectPolicy, check_policy

    uri = str(uri)
    policy = check_policy(reconnect if isinstance(reconnect, ReconnectPolicy) else ReconnectPolicy(stall_s=timeout_s))
    opener = _live_opener(uri, policy)
    if opener is None:
        return _open_finite(uri, timeout_s)
    if reconnect is False:
        return opener()
    return ReconnectingSource(opener, uri, policy)


def _live_opener(uri: str, policy: ReconnectPolicy) -> Callable[[], Source] | None:
    """A function that opens the live source `uri` once; None when `uri` is not live."""
    cv2 = lazy_import("cv2")
    if uri.startswith("csi://"):
        if not gstreamer_available():
            raise EdgeVisionError(
                "csi:// needs OpenCV built with GStreamer (JetPack's system OpenCV has it; "
                "the pip opencv-python wheels do not). On a Jetson: use the system python3-opencv."
            )
        pipeline = csi_pipeline(int(uri[6:] or 0))
        return lambda: CaptureSource(pipeline, uri, True, cv2.CAP_GSTREAMER, policy.stall_s)
    if uri.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        # FFmpeg would otherwise wait on a dead server for as long as the OS lets a socket hang
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(policy.open_timeout_s * 1e3),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(min(policy.stall_s, policy.open_timeout_s) * 1e3)]
        return lambda: CaptureSource(uri, uri, True, cv2.CAP_FFMPEG, policy.stall_s, params)
    m = re.fullmatch(r"(?:v4l2://|/dev/video)?(\d+)", uri)
    if m:
        dev, number = f"/dev/video{m.group(1)}", int(m.group(1))

        def open_camera() -> Source:
            if not Path(dev).exists():
                raise EdgeVisionError(f"cannot open source {uri!r}" + _open_hint(uri))
            return CaptureSource(number, uri, True, cv2.CAP_V4L2, policy.stall_s)

        return open_camera
    return None


def _open_finite(uri: str, timeout_s: float) -> Source:
    """Files, images, folders and globs."""
    path = Path(uri)
    if path.is_dir():
        return ImageSource(_image_paths(str(path / "*")), uri)
    if any(ch in uri for ch in "*?["):
        return ImageSource(_image_paths(uri), uri)
    if not path.exists():
        raise EdgeVisionError(f"source not found: {uri}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], uri)
    return CaptureSource(str(path), uri, False, timeout_s=timeout_s)


def sample_frames(uri: str | Path, count: int, skip: set[int] | None = None) -> tuple[list[np.ndarray], list[int]]:
    """Up to `count` frames spread evenly across a finite source (video, folder, glob).

    skip: frame indices not to take (keeps validation frames apart from calibration ones).
    Returns (frames, their indices).
    """
    src = open_source(str(uri))
    try:
        if src.live:
            raise EdgeVisionError(f"{uri} is a live source; sample frames from a file, folder or glob")
        total = src.frame_count
        if total <= 0:  # unknown length: read everything once
            frames = [f.image for f in src]
            total = len(frames)
            picks = _spread(total, count, skip)
            return [frames[i] for i in picks], picks
        picks = _spread(total, count, skip)
        pairs: list[tuple[int, np.ndarray | None]]
        if isinstance(src, ImageSource):
            cv2 = lazy_import("cv2")
            pairs = [(i, cv2.imread(str(src.paths[i]), cv2.IMREAD_COLOR)) for i in picks]
        else:
            assert isinstance(src, CaptureSource)
            pairs = []
            wanted = set(picks)
            # Sequential grab()/retrieve(): frame-accurate on every codec, unlike seeking.
            for i in range(max(picks) + 1 if picks else 0):
                if not src.cap.grab():
                    break
                if i in wanted:
                    pairs.append((i, src.cap.retrieve()[1]))
        kept = [(i, image) for i, image in pairs if image is not None]
        return [image for _, image in kept], [i for i, _ in kept]
    finally:
        src.close()


def _spread(total: int, count: int, skip: set[int] | None) -> list[int]:
    pool = [i for i in range(total) if not skip or i not in skip]
    if count >= len(pool):
        return pool
    step = len(pool) / count
    return [pool[int(k * step)] for k in range(count)]
