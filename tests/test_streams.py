"""Streams that come back: a real RTSP server on loopback (tests/rtsp_server.py, GStreamer) is
killed and restarted under a reading source and a running pipeline; frozen and black pictures
are told from the frames; a file is never reconnected."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edgevision
from edgevision.errors import EdgeVisionError
from edgevision.health import EventKind, SourceEvent, SourceState
from edgevision.pipeline import Pipeline
from edgevision.reconnect import ReconnectingSource, ReconnectPolicy
from edgevision.sources import CaptureSource, Frame, Source, SourceLost, open_source
from tests.rtsp import RtspServer, free_port

# Short waits: a lost stream is noticed after 1 s without frames, reconnects start 0.2 s later.
FAST = ReconnectPolicy(initial_s=0.2, factor=2.0, max_delay_s=1.0, stall_s=1.0, open_timeout_s=3.0)


class Reader:
    """Reads a source in a thread of its own (read() blocks while the stream is away), keeping
    frames and events in the order read() delivered them."""

    def __init__(self, source: Source) -> None:
        self.source, self.log, self.done = source, [], threading.Event()
        self.lock = threading.Lock()
        source.on_event = self._keep
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _keep(self, item: object) -> None:
        with self.lock:
            self.log.append(item)

    def _run(self) -> None:
        while (frame := self.source.read()) is not None:
            self._keep(frame)
        self.done.set()

    def frames(self) -> list[Frame]:
        with self.lock:
            return [x for x in self.log if isinstance(x, Frame)]

    def events(self) -> list[EventKind]:
        with self.lock:
            return [x.kind for x in self.log if isinstance(x, SourceEvent)]

    def wait(self, what: str, until: object, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not until():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {what}; got events {self.events()}"
            time.sleep(0.02)


def test_reads_the_rtsp_stream(rtsp_server: RtspServer, vtest: Path) -> None:
    with open_source(rtsp_server.url(), reconnect=FAST) as src:
        assert isinstance(src, ReconnectingSource) and src.live and src.state == SourceState.LIVE
        frames = [src.read() for _ in range(12)]
    assert all(f is not None for f in frames)
    images = [f.image for f in frames if f is not None]
    assert [f.index for f in frames if f is not None] == list(range(12))
    assert images[0].shape == (576, 768, 3) and images[0].dtype == np.uint8 and src.fps == pytest.approx(10, abs=1)
    # the people walk: consecutive pictures differ, and they are pictures, not black
    assert any(not np.array_equal(a, b) for a, b in zip(images, images[1:]))
    assert 60 < float(np.mean(images)) < 200



def test_a_black_stream_is_reported_black(rtsp_server: RtspServer) -> None:
    """The server's black pattern (videotestsrc, H.264): BLACK once, never FROZEN (black wins)."""
    events: list[SourceEvent] = []
    with open_source(rtsp_server.url("black"), reconnect=ReconnectPolicy(stall_s=2.0, black_s=1.0, freeze_s=1.0)) as src:
        src.on_event = events.append
        for _ in range(80):  # ~30 frames FFmpeg buffered at open, then 10 per second
            frame = src.read()
            assert frame is not None
            if events:
                break
    assert [e.kind for e in events] == [EventKind.BLACK] and "black frames for 1." in events[0].detail
    assert float(frame.image.mean()) < 1

def test_files_are_never_reconnected(vtest: Path) -> None:
    assert isinstance(open_source(str(vtest)), CaptureSource)
    assert not isinstance(open_source(str(vtest), reconnect=FAST), ReconnectingSource)


def test_kill_and_restart_the_server_the_source_comes_back(own_rtsp_server: RtspServer) -> None:
    src = open_source(own_rtsp_server.url(), reconnect=FAST)
    reader = Reader(src)
    try:
        reader.wait("frames", lambda: len(reader.frames()) >= 10)
        own_rtsp_server.stop()
        reader.wait("lost", lambda: EventKind.LOST in reader.events())
        assert src.state == SourceState.RECONNECTING and src.reconnects == 0
        before = len(reader.frames())
        time.sleep(1.5)  # a few refused attempts while the server is away
        assert len(reader.frames()) == before
        own_rtsp_server.start()
        reader.wait("restored", lambda: EventKind.RESTORED in reader.events())
        reader.wait("frames after the restart", lambda: len(reader.frames()) >= before + 10)
        assert src.state == SourceState.LIVE and src.reconnects == 1
    finally:
        src.close()
    assert reader.done.wait(2), "close() must end the reading thread's read()"
    assert reader.events() == [EventKind.LOST, EventKind.RESTORED]
    indices = [f.index for f in reader.frames()]
    assert indices == list(range(len(indices))), "indices count on across the reconnect"
    lost_at = next(i for i, x in enumerate(reader.log) if isinstance(x, SourceEvent))
    assert lost_at == before, "LOST is delivered after the last frame before the loss"


def test_a_server_that_never_comes_back_fails_in_bounded_time(own_rtsp_server: RtspServer) -> None:
    policy = ReconnectPolicy(initial_s=0.1, factor=2.0, max_attempts=3, stall_s=1.0, open_timeout_s=2.0)
    src = open_source(own_rtsp_server.url(), reconnect=policy)
    events: list[SourceEvent] = []
    src.on_event = events.append
    assert src.read() is not None
    own_rtsp_server.stop()
    t0 = time.monotonic()
    while src.read() is not None:
        assert time.monotonic() - t0 < 30, "the source must give up"
    assert [e.kind for e in events] == [EventKind.LOST, EventKind.FAILED]
    assert src.state == SourceState.FAILED and "gave up after 3 attempt(s)" in events[-1].detail
    assert src.read() is None
    src.close()


def test_waiting_for_a_stream_that_never_appears() -> None:
    """wait_for_first: no error at open; CONNECTING, then FAILED (never LOST: it was never live)."""
    url = f"rtsp://127.0.0.1:{free_port()}/video"
    policy = ReconnectPolicy(initial_s=0.05, max_attempts=2, stall_s=1.0, open_timeout_s=1.0, wait_for_first=True)
    src = open_source(url, reconnect=policy)
    assert src.state == SourceState.CONNECTING
    events: list[SourceEvent] = []
    src.on_event = events.append
    assert src.read() is None
    assert [e.kind for e in events] == [EventKind.FAILED] and src.state == SourceState.FAILED


def test_a_stream_that_refuses_is_still_an_error_at_open() -> None:
    with pytest.raises(EdgeVisionError, match="unreachable or refused"):
        open_source(f"rtsp://127.0.0.1:{free_port()}/video", reconnect=FAST)


def test_close_from_another_thread_interrupts_a_reconnecting_read() -> None:
    """The worker is stuck in FFmpeg's open on a server that accepts and never answers;
    close() still makes read() return None at once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/video"
        policy = ReconnectPolicy(initial_s=0.01, stall_s=1.0, open_timeout_s=4.0, wait_for_first=True)
        src = open_source(url, reconnect=policy)
        threading.Timer(0.5, src.close).start()
        t0 = time.monotonic()
        assert src.read() is None
        waited = time.monotonic() - t0
    assert waited < 1.5, f"read() returned {waited:.2f} s after the start, the close came at 0.5 s"
    assert src.state == SourceState.CONNECTING


@pytest.mark.parametrize("policy", [dict(initial_s=0), dict(factor=0.5), dict(max_attempts=0)])
def test_bad_policies_are_clear_errors(policy: dict[str, float]) -> None:
    with pytest.raises(EdgeVisionError, match="invalid reconnect policy"):
        open_source("rtsp://127.0.0.1:9/x", reconnect=ReconnectPolicy(**policy))  # type: ignore[arg-type]


# -- frozen and black pictures, on frames made here -------------------------------------------
class Scripted(Source):
    """A real (finite) Source over frames made in memory, stamped at 10 fps from t=0."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images, self.uri, self._i = images, "scripted", 0

    def read(self) -> Frame | None:
        if self._i == len(self.images):
            return None
        self._i += 1
        return Frame(self.images[self._i - 1], self._i - 1, timestamp=(self._i - 1) / 10)


def pictures(script: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One letter per 1/10 s: m moving (a new noisy picture), s the same picture again, b black."""
    out: list[np.ndarray] = []
    still = rng.integers(40, 220, (48, 64, 3), np.uint8)
    for c in script:
        if c == "m":
            out.append(rng.integers(40, 220, (48, 64, 3), np.uint8))
        elif c == "s":
            out.append(still.copy())
        else:
            out.append(rng.integers(0, 4, (48, 64, 3), np.uint8))  # sensor noise in the dark: black, not frozen
    return out


@pytest.mark.parametrize("script, expect", [
    ("m" * 5 + "s" * 25 + "m" * 5, [(25, "frozen"), (30, "restored:frozen")]),  # 2 s of the same picture
    ("m" * 5 + "s" * 15 + "m" * 5, []),                                          # 1.4 s: below the limit
    ("m" * 5 + "b" * 25 + "m" * 5, [(25, "black"), (30, "restored:black")]),     # black frames differ: BLACK
    ("m" * 5 + "b" * 25, [(25, "black")]),                                       # ends black: no RESTORED
    ("s" * 30 + "b" * 25 + "m", [(20, "frozen"), (30, "restored:frozen"), (50, "black"), (55, "restored:black")]),
    ("m" * 60, []),
])
def test_frozen_and_black_pictures(script: str, expect: list[tuple[int, str]]) -> None:
    opened: list[Source] = []

    def opener() -> Source:
        opened.append(Scripted(pictures(script, np.random.default_rng(0))))
        return opened[-1]

    src = ReconnectingSource(opener, "scripted", ReconnectPolicy(freeze_s=2.0, black_s=2.0))
    log: list[object] = []
    src.on_event = log.append
    while (frame := src.read()) is not None:
        log.append(frame)
    got, seen = [], 0
    for item in log:
        if isinstance(item, Frame):
            seen += 1
        elif item.kind == EventKind.RESTORED:  # type: ignore[attr-defined]
            got.append((seen, "restored:" + ("frozen" if "frozen" in item.detail else "black")))  # type: ignore[attr-defined]
        elif item.kind != EventKind.ENDED:  # type: ignore[attr-defined]
            got.append((seen, item.kind.value))  # type: ignore[attr-defined]
    assert got == expect  # (frames delivered before the event, event)
    # a finite source ends, once, and is never reopened
    assert len(opened) == 1 and src.state == SourceState.ENDED and src.reconnects == 0
    assert [x.kind for x in log if isinstance(x, SourceEvent)][-1] == EventKind.ENDED


# -- the pipeline through a kill and a restart ------------------------------------------------
def test_pipeline_survives_a_server_restart(det_onnx: Path, own_rtsp_server: RtspServer, tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    lost = threading.Event()

    def on_event(event: SourceEvent) -> None:
        events.append(event)
        if event.kind == EventKind.LOST:
            lost.set()

    def restart_when_lost() -> None:  # the run's own threads wait for the stream: restart it from outside
        if lost.wait(30):
            time.sleep(0.5)
            own_rtsp_server.start()

    restarter = threading.Thread(target=restart_when_lost, daemon=True)
    restarter.start()
    model = edgevision.load(det_onnx, masks=False)
    pipe = Pipeline(model, open_source(own_rtsp_server.url(), reconnect=FAST), [tmp_path / "run.jsonl"],
                    on_event=on_event)
    indices: list[int] = []
    after_restore = 0
    for result in pipe:
        indices.append(result.frame.index)
        if len(indices) == 5:
            own_rtsp_server.stop()
        after_restore += any(e.kind == EventKind.RESTORED for e in events)
        if after_restore == 5:
            pipe.stop()
    restarter.join(5)
    assert [e.kind for e in events] == [EventKind.LOST, EventKind.RESTORED]
    assert pipe.error is None
    assert indices == sorted(set(indices)), "frame indices only grow across the reconnect"
    s = pipe.stats.to_dict()
    assert s["frames"] == len(indices) == len((tmp_path / "run.jsonl").read_text().splitlines())
    (src,) = s["sources"]
    assert src["index"] == 0 and src["uri"] == own_rtsp_server.url() and src["reconnects"] == 1
    assert src["events"] == {"lost": 1, "restored": 1} and src["frames"] == len(indices)
    assert set(src) == {"index", "uri", "state", "frames", "fps", "dropped", "reconnects", "events", "queue"}
    model.close()



@pytest.mark.parametrize("ending", ["gives up", "stopped"])
def test_pipeline_ends_cleanly_when_the_stream_stays_away(ending: str, det_onnx: Path, own_rtsp_server: RtspServer) -> None:
    """The server dies for good: with max_attempts the run ends by itself with the reason in
    pipe.error; without, stop() from another thread ends it while the source is reconnecting."""
    policy = ReconnectPolicy(initial_s=0.2, max_delay_s=1.0, stall_s=1.0, open_timeout_s=2.0,
                             max_attempts=2 if ending == "gives up" else None)
    events: list[SourceEvent] = []
    model = edgevision.load(det_onnx, masks=False)
    pipe = Pipeline(model, open_source(own_rtsp_server.url(), reconnect=policy), on_event=events.append)
    if ending == "stopped":
        pipe.on_event = lambda e: (events.append(e), e.kind == EventKind.LOST and threading.Timer(1.0, pipe.stop).start())
    t0, n = time.monotonic(), 0
    for _ in pipe:
        n += 1
        if n == 3:
            own_rtsp_server.stop()
        assert time.monotonic() - t0 < 120
    model.close()
    (src,) = pipe.stats.to_dict()["sources"]
    if ending == "gives up":
        assert [e.kind for e in events] == [EventKind.LOST, EventKind.FAILED] and src["state"] == "failed"
        assert isinstance(pipe.error, SourceLost) and "gave up after 2 attempt(s)" in str(pipe.error)
    else:
        assert [e.kind for e in events] == [EventKind.LOST] and src["state"] == "reconnecting"
        assert pipe.error is None
    assert src["events"] == {e.kind.value: 1 for e in events} and src["frames"] == n >= 3

def test_cli_run_reports_lost_and_restored(det_onnx: Path, own_rtsp_server: RtspServer, tmp_path: Path) -> None:
    """`edgevision run --source rtsp://...` in its own process keeps running through a server
    restart, prints the lost / restored lines on stderr and counts them in --stats-json."""
    import json
    import signal
    import subprocess
    import sys

    jl, err, stats = tmp_path / "o.jsonl", tmp_path / "stderr.txt", tmp_path / "s.json"
    with err.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "edgevision", "run", str(det_onnx), "--source",
                                 own_rtsp_server.url(), "--jsonl", str(jl), "--stats-json",
                                 str(stats)], cwd=Path(__file__).resolve().parents[1], stderr=err_file,
                                stdout=subprocess.PIPE, text=True)
        try:
            def wait(what: str, until: object, timeout_s: float = 60) -> None:
                deadline = time.monotonic() + timeout_s
                while not until():  # type: ignore[operator]
                    assert proc.poll() is None and time.monotonic() < deadline, f"no {what}: {err.read_text()[-2000:]}"
                    time.sleep(0.1)

            wait("frames", lambda: jl.exists() and len(jl.read_text().splitlines()) >= 5)
            own_rtsp_server.stop()
            wait("lost line", lambda: ": lost" in err.read_text())
            own_rtsp_server.start()
            wait("restored line", lambda: ": restored" in err.read_text())
            restored_at = len(jl.read_text().splitlines())
            wait("frames after the restart", lambda: len(jl.read_text().splitlines()) >= restored_at + 3)
            proc.send_signal(signal.SIGINT)  # a live stream has no end: Ctrl-C ends the run, keeping its outputs
            stdout = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
    text = err.read_text()
    assert proc.returncode == 1 and "interrupted after" in text and "Traceback" not in text, text
    assert f"source 0 {own_rtsp_server.url()}: lost: " in text and f"source 0 {own_rtsp_server.url()}: restored: " in text
    assert "1 reconnect(s)" in stdout
    (src,) = json.loads(stats.read_text())["sources"]
    assert src["events"] == {"lost": 1, "restored": 1} and src["reconnects"] == 1
    assert src["frames"] == len(jl.read_text().splitlines())
