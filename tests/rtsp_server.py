"""A real RTSP server on loopback for the stream tests (Debian's GStreamer RTSP server).

Run by the *system* python3 (python3-gi, gir1.2-gst-rtsp-server-1.0), as its own process:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --video vtest.avi

serves
    rtsp://127.0.0.1:PORT/video   the video, looping forever, at its own frame rate, H.264
    rtsp://127.0.0.1:PORT/black   black frames (videotestsrc), 10 fps, H.264
prints "READY rtsp://127.0.0.1:PORT" on stdout once it listens, and exits on SIGTERM/SIGINT.

Why appsrc and a second pipeline for the video: the RTSP media owns its pipeline's bus, so a
file cannot be looped there by seeking on EOS. A private decoder pipeline (ours, seeked back
to 0 at its end) feeds raw frames to the media's appsrc, which stamps them on one continuous
timeline; the media's sink syncs to the clock, so clients get the video in real time.
"""
from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# Short GOP: a client that (re)connects decodes a picture within a second.
ENCODE = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=2000 ! rtph264pay name=pay0 pt=96"


class LoopingVideo:
    """Decodes `path` to raw I420 frames forever (seeks back to 0 at the end)."""

    def __init__(self, path: str) -> None:
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! decodebin ! videoconvert ! video/x-raw,format=I420 '
            "! appsink name=sink sync=false max-buffers=4"
        )
        self.sink = self.pipeline.get_by_name("sink")
        self.pipeline.set_state(Gst.State.PAUSED)
        self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
        sample = self.sink.emit("pull-preroll")
        caps = sample.get_caps().get_structure(0)
        ok, num, den = caps.get_fraction("framerate")
        self.fps = (num, den) if ok and num > 0 else (10, 1)
        self.caps = (f"video/x-raw,format=I420,width={caps.get_value('width')},"
                     f"height={caps.get_value('height')},framerate={self.fps[0]}/{self.fps[1]}")
        self.pipeline.set_state(Gst.State.PLAYING)

    def next_buffer(self) -> Gst.Buffer | None:
        for _ in range(2):
            sample = self.sink.emit("try-pull-sample", Gst.SECOND)
            if sample is not None:
                return sample.get_buffer()
            if self.sink.get_property("eos"):
                self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return None


class VideoFactory(GstRtspServer.RTSPMediaFactory):
    """One shared media: every client sees the same live stream."""

    def __init__(self, video: LoopingVideo) -> None:
        super().__init__()
        self.video = video
        self.set_shared(True)
        self.connect("media-configure", self._configure)

    def do_create_element(self, url: GstRtspServer.RTSPUrl) -> Gst.Element:
        return Gst.parse_launch(
            f'( appsrc name=src is-live=true format=time do-timestamp=false caps="{self.video.caps}" '
            f"! videoconvert ! {ENCODE} )"
        )

    def _configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name("src")
        duration = Gst.util_uint64_scale(Gst.SECOND, self.video.fps[1], self.video.fps[0])
        state = {"n": 0}

        def need_data(appsrc: Gst.Element, _length: int) -> None:
            buf = self.video.next_buffer()
            if buf is None:
                appsrc.emit("end-of-stream")
                return
            buf = buf.copy()
            buf.pts = state["n"] * duration  # one continuous timeline across the loops
            buf.duration = duration
            state["n"] += 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--video", required=True, help="a video file GStreamer decodes (looped)")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    mounts.add_factory("/video", VideoFactory(LoopingVideo(args.video)))
    black = GstRtspServer.RTSPMediaFactory()
    black.set_launch(f"( videotestsrc pattern=black is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 "
                     f"! videoconvert ! {ENCODE} )")
    black.set_shared(True)
    mounts.add_factory("/black", black)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
