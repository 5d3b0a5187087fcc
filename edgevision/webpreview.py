"""The live web view for headless devices: every source's annotated stream, its health and the
run's numbers in a browser, plus JSON and Prometheus endpoints for machines.

    /                       the page (edgevision/webpage.py): a card per source, the stage table
    /stream, /stream/<i>    MJPEG of source i's newest annotated frame (/stream: source 0)
    /frame.jpg, /frame/<i>.jpg   one JPEG of it
    /api/stats              RunStats.to_dict() (+ a "sources" list where the pipeline reports none)
    /api/detections         the newest result per source, as the JSON lines writer writes it
    /metrics                Prometheus text format (edgevision/prometheus.py)

Standard library HTTP server in a daemon thread. Clients get the newest frame only, and a
frame is JPEG-encoded only when a client asks for it (once, however many clients watch), so
neither a slow browser nor an unwatched view slows the pipeline.

Security: it binds 127.0.0.1 unless told otherwise. Any other address needs a token (argument
or $EDGEVISION_SERVE_TOKEN); with a token, every request must carry it (`Authorization: Bearer
T`, or `?token=T`, which the page and its <img> URLs use). Without a token (loopback only) the
Host header must name the loopback too, so a web page cannot reach the camera by DNS rebinding.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np

from ._lazy import lazy_import
from .errors import EdgeVisionError
from .prometheus import CONTENT_TYPE as METRICS_TYPE
from .prometheus import prometheus_text
from .results import Result as TaskResult
from .sink_base import Sink, frame_record
from .sources import Frame
from .webpage import PAGE

if TYPE_CHECKING:
    from .stats import RunStats

TOKEN_ENV = "EDGEVISION_SERVE_TOKEN"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
STATS_TTL_S = 0.5  # /api/stats and /metrics share one RunStats.to_dict() per half second at most
FPS_WINDOW_S = 2.0  # the per-source rate the view computes itself (where the stats have none)


def parse_address(address: str) -> tuple[str, int]:
    """'8080' | ':8080' | 'HOST:PORT' | '[::1]:8080' | 'http://HOST:PORT' -> (host, port).
    No host means 127.0.0.1: the view is private unless the user names another address."""
    text = address.strip()
    if "://" in text:
        url = urlsplit(text)
        try:
            port = url.port
        except ValueError as exc:
            raise EdgeVisionError(f"bad port in --serve {address!r}: {exc}") from exc
        return url.hostname or DEFAULT_HOST, DEFAULT_PORT if port is None else port
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise EdgeVisionError(f"--serve wants [HOST:]PORT (e.g. 8080, 127.0.0.1:8080, 0.0.0.0:8080), got {address!r}")
    return host or DEFAULT_HOST, int(port_text)


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and 'localhost' count: any other name may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_token(host: str, token: str | None = None) -> str | None:
    """The token clients must send: `token`, else $EDGEVISION_SERVE_TOKEN, else None, which only
    a loopback host may have (EdgeVisionError otherwise: the cameras would be open to the network)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise EdgeVisionError(
            f"serving the web view on {host} exposes the cameras beyond this machine: give a token "
            f"(--serve-token TOKEN or ${TOKEN_ENV}), or serve on 127.0.0.1 (--serve PORT)")
    return token


def redact_uri(uri: str) -> str:
    """rtsp://user:secret@cam/... -> rtsp://user:***@cam/...: camera passwords stay off the page and /metrics."""
    try:
        url = urlsplit(uri)
    except ValueError:
        return uri
    if url.password is None:
        return uri
    host = url.netloc.rpartition("@")[2]
    return urlunsplit(url._replace(netloc=f"{url.username}:***@{host}"))


@dataclass
class _SourceView:
    """What the view keeps of one source: the newest annotated frame and result, and its rate."""

    image: np.ndarray | None = None
    seq: int = 0  # frames received; streams wait for it to move
    frame: Frame | None = None
    result: TaskResult | None = None
    frames: int = 0
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    jpeg: bytes = b""
    jpeg_seq: int = -1

    def fps(self, now: float) -> float:
        recent = [t for t in self.arrivals if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # open streams never keep the process alive

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)


class WebPreviewSink(Sink):
    """The web view as a sink. uri: 'http://HOST:PORT' or '[HOST:]PORT' (port 0: any free one;
    read `.port`). token: required from clients; default $EDGEVISION_SERVE_TOKEN; mandatory when
    HOST is not a loopback address. quality: JPEG quality of the streams."""

    needs_annotated = True

    def __init__(self, uri: str, quality: int = 80, token: str | None = None) -> None:
        self.host, port = parse_address(uri)
        self.token = serve_token(self.host, token)
        self.quality = quality
        self.stats: RunStats | None = None
        self._views: dict[int, _SourceView] = {}
        self._cond = threading.Condition()
        self._encode = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats_cache: dict[str, Any] = {}
        self._stats_at = -STATS_TTL_S
        self._closed = False
        try:
            self.server = _Server(self.host, port, _handler(self))
        except OSError as exc:
            raise EdgeVisionError(f"cannot serve the web view on {self.host}:{port}: {exc}") from exc
        self.port: int = self.server.server_address[1]
        # a short poll interval: close() (server.shutdown) returns within it
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True, name="webpreview").start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # -- the sink ------------------------------------------------------------------------
    def bind(self, stats: RunStats) -> None:
        self.stats = stats

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        # Keep references only (annotate() draws on a new copy): the JPEG is made when asked for.
        with self._cond:
            view = self._views.setdefault(frame.source, _SourceView())
            view.image = frame.image if annotated is None else annotated
            view.frame, view.result = frame, dets
            view.seq += 1
            view.frames += 1
            view.arrivals.append(time.monotonic())
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- what the endpoints serve --------------------------------------------------------
    def latest(self, timeout: float, newer_than: bool = False, source: int = 0, after: int | None = None) -> bytes:
        """Source `source`'s newest frame as JPEG ('' if none came within `timeout` s). newer_than:
        wait for a frame after the current one; after: wait for a frame past that sequence number."""
        self._wait(source, timeout, newer_than, after)
        return self.jpeg(source)[0]

    def _wait(self, source: int, timeout: float, newer_than: bool, after: int | None) -> None:
        with self._cond:
            view = self._views.get(source)
            seq = view.seq if view else 0
            target = after if after is not None else seq if (newer_than or not seq) else seq - 1
            self._cond.wait_for(lambda: self._closed or (source in self._views and self._views[source].seq > target),
                                timeout)

    def jpeg(self, source: int) -> tuple[bytes, int]:
        """(JPEG of the newest frame, its sequence number); (b'', 0) before the first frame."""
        with self._cond:
            view = self._views.get(source)
            if view is None or view.image is None:
                return b"", 0
            image, seq = view.image, view.seq
        with self._encode:  # one encode per frame, however many clients watch
            if seq > view.jpeg_seq:  # a client that asked earlier may have encoded a newer frame already
                cv2 = lazy_import("cv2")
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if ok:
                    view.jpeg, view.jpeg_seq = buf.tobytes(), seq
            return view.jpeg, view.jpeg_seq

    def stats_dict(self) -> dict[str, Any]:
        """RunStats.to_dict(), always with a "sources" list (URIs redacted): where the pipeline
        reports none, one entry per source seen, filled from what the view itself counted."""
        data = dict(self._run_stats())
        reported = {s["index"]: s for s in data.get("sources") or [] if isinstance(s, dict) and "index" in s}
        merged = {**self._seen_sources(data, reported), **reported}
        data["sources"] = [{**s, "uri": redact_uri(s["uri"])} if isinstance(s.get("uri"), str) else s
                           for _, s in sorted(merged.items())]
        return data

    def _run_stats(self) -> dict[str, Any]:
        """stats.to_dict(), recomputed at most every STATS_TTL_S however many clients poll. Its cost
        is bounded (RunStats keeps a fixed-size reservoir per stage: ~26 ms after 108k frames), so a
        time-to-live is the only throttle needed."""
        with self._stats_lock:
            now = time.monotonic()
            if self.stats is not None and now - self._stats_at >= STATS_TTL_S:
                for _ in range(5):  # the writer thread may add a stage while to_dict() reads the dict
                    try:
                        self._stats_cache = self.stats.to_dict()
                        break
                    except RuntimeError:
                        time.sleep(0.001)
                self._stats_at = time.monotonic()
            return self._stats_cache

    def _seen_sources(self, data: dict[str, Any], reported: dict[int, Any]) -> dict[int, dict[str, Any]]:
        """Entries for the sources that sent frames but are missing from the run's "sources"."""
        now = time.monotonic()
        with self._cond:
            seen = {i: (v.frames, v.fps(now)) for i, v in self._views.items() if i not in reported}
        # the only source of the run: the run's numbers are its numbers
        single = not reported and len(seen) == 1 and "frames" in data
        return {i: {"index": i, "uri": "", "state": None,
                    "frames": data["frames"] if single else frames,
                    "fps": data.get("fps") if single else round(fps, 2),
                    "dropped": data.get("dropped") if single else None,
                    "reconnects": None, "events": {}, "queue": None} for i, (frames, fps) in seen.items()}

    def detections(self) -> list[dict[str, Any]]:
        """The newest result of every source: its JSON lines record, with "source": {"index", "uri"}
        (the form the JSON lines of a multi-source run have)."""
        uris = {s["index"]: s.get("uri") or "" for s in self.stats_dict()["sources"]}
        with self._cond:
            latest = [(v.frame, v.result) for _, v in sorted(self._views.items()) if v.frame and v.result is not None]
        return [frame_record(frame, result, source={"index": frame.source, "uri": uris.get(frame.source, "")})
                for frame, result in latest]

    def authorized(self, headers: Any, query: str) -> tuple[int, str]:
        """(200, '') or (status, why) for a request with these headers and query string."""
        if self.token is None:  # loopback only: refuse names that are not ours (DNS rebinding)
            host = (headers.get("Host") or "").strip()
            name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
            if host and not is_loopback(name):
                return 403, f"this view answers to 127.0.0.1 / localhost only, not to Host: {host}"
            return 200, ""
        offered = ""
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        else:
            offered = (parse_qs(query).get("token") or [""])[0]
        if offered and hmac.compare_digest(offered.encode(), self.token.encode()):
            return 200, ""
        return 401, "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN"


_STREAM = re.compile(r"^/stream(?:/(\d+))?$")
_FRAME = re.compile(r"^/frame(?:/(\d+))?\.jpg$")


def _handler(sink: WebPreviewSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the run's output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            code, why = sink.authorized(self.headers, url.query)
            if code != 200:
                extra = {"WWW-Authenticate": 'Bearer realm="edgevision"'} if code == 401 else {}
                return self._send(code, "text/plain; charset=utf-8", why.encode(), extra)
            path = url.path
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", PAGE, {"Referrer-Policy": "no-referrer"})
            elif path == "/api/stats":
                self._json(sink.stats_dict())
            elif path == "/api/detections":
                self._json(sink.detections())
            elif path == "/metrics":
                self._send(200, METRICS_TYPE, prometheus_text(sink.stats_dict()).encode())
            elif m := _STREAM.match(path):
                self._stream(int(m.group(1) or 0))
            elif m := _FRAME.match(path):
                jpeg = sink.latest(timeout=5.0, source=int(m.group(1) or 0))
                if jpeg:
                    self._send(200, "image/jpeg", jpeg)
                else:
                    self._send(503, "text/plain; charset=utf-8", b"no frame from this source yet")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found")

        def _stream(self, source: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sent = 0
            try:
                while not sink._closed:
                    sink._wait(source, 1.0, newer_than=False, after=sent)
                    jpeg, seq = sink.jpeg(source)
                    if jpeg and seq > sent:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        sent = seq
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _json(self, data: Any) -> None:
            self._send(200, "application/json", json.dumps(data).encode())

        def _send(self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
