"""Start, stop and restart the loopback RTSP server (tests/rtsp_server.py) from the tests.

The server runs under the system python3 (GStreamer's Python bindings come from Debian, not
from the venv), in its own process, so a test can kill it mid-stream and start it again on
the same port.
"""
from __future__ import annotations

import select
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
PACKAGES = ("gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-ugly gstreamer1.0-libav")


@lru_cache(maxsize=1)
def missing() -> str:
    """'' when the RTSP server can run here, else why not (for a skip reason)."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc'), 'no x264enc (gstreamer1.0-plugins-ugly)'")
    try:
        res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot run the GStreamer RTSP server: {exc}; apt-get install {PACKAGES}"
    if res.returncode != 0:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        return f"the GStreamer RTSP server is not installed ({why}); `make test` installs it: apt-get install {PACKAGES}"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """rtsp://127.0.0.1:PORT/video (the video, looping) and /black. stop() and start() keep the port."""

    def __init__(self, video: Path, port: int | None = None) -> None:
        self.video, self.port = video, port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    def url(self, name: str = "video") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        """Start the server and wait for its ready line (it listens then)."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--video", str(self.video)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        # the server prints one line once it listens; a server that hangs must not hang the tests
        ready = select.select([self.proc.stdout], [], [], timeout_s)[0]
        line = self.proc.stdout.readline() if ready else f"(nothing after {timeout_s:g} s)"
        if not line.startswith("READY"):
            err = self.proc.communicate(timeout=5)[1] if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"the RTSP server did not start on port {self.port}: {line.strip()} {err[-1000:]}")
        return self

    def stop(self) -> None:
        """Kill the server (SIGTERM, then SIGKILL) and wait for it: its clients lose the stream."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
