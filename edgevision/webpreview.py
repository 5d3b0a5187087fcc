"""A live MJPEG preview in the browser: http://host:port shows the annotated stream.

Standard library HTTP server in a daemon thread; clients get the newest frame only,
so a slow browser never slows the pipeline. Binds to the host in the URI (use
127.0.0.1 unless you mean to expose the camera on the network).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ._lazy import lazy_import
from .results import Result as TaskResult
from .errors import EdgeVisionError
from .sink_base import Sink
from .sources import Frame

_PAGE = b"""<!doctype html><title>edgevision</title>
<body style="margin:0;background:#111"><img src="/stream" style="max-width:100%"></body>"""


class WebPreviewSink(Sink):
    needs_annotated = True

    def __init__(self, uri: str, quality: int = 80) -> None:
        url = urlparse(uri)
        self.quality = quality
        self._jpeg: bytes = b""
        self._cond = threading.Condition()
        self._closed = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the run's output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/":
                    self._send(200, "text/html", _PAGE)
                elif self.path == "/frame.jpg":
                    self._send(200, "image/jpeg", sink.latest(timeout=5.0))
                elif self.path == "/stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.end_headers()
                    try:
                        while not sink._closed:
                            jpeg = sink.latest(timeout=1.0, newer_than=True)
                            if jpeg:
                                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            self.server = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8080), Handler)
        except OSError as exc:
            raise EdgeVisionError(f"cannot serve the preview on {uri}: {exc}") from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webpreview").start()

    def latest(self, timeout: float, newer_than: bool = False) -> bytes:
        with self._cond:
            if newer_than or not self._jpeg:
                self._cond.wait(timeout)
            return self._jpeg

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        cv2 = lazy_import("cv2")
        ok, buf = cv2.imencode(".jpg", frame.image if annotated is None else annotated,
                               [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._cond:
                self._jpeg = buf.tobytes()
                self._cond.notify_all()

    def close(self) -> None:
        self._closed = True
        with self._cond:
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
