"""Live sources that come back: reconnect with backoff, report what happened.

ReconnectingSource wraps an opener (a function that opens a live Source, e.g. an RTSP
CaptureSource). A worker thread owns the connection: it reads frames, and when the source
fails to open, raises SourceLost (no frame for `stall_s`) or errors, it goes RECONNECTING,
reports LOST once, and reopens with exponential backoff until frames flow again (RESTORED,
LIVE, `reconnects` += 1) or the attempts run out (FAILED; read() then returns None).

Why a worker thread: OpenCV's open and read cannot be interrupted, and a dead stream may
hold them for their whole timeout. With the worker, read() waits on a queue, so `close()`
from any thread makes it return None at once, and a multi-source run never waits on one
camera's reconnects. The worker hands frames over a small blocking queue (a source drops
nothing itself; dropping stale frames is the consumer's policy, e.g. the pipeline's).

Events (edgevision.health) are delivered by read(), in the caller's thread, in order with
the frames: LOST comes after the last frame before the loss, RESTORED before the first frame
after it. `state` is where the source stands now (set by the worker as things happen).
Frame.index counts on across reconnects. A finite source (a file) is never reconnected: at
its end the state is ENDED and one ENDED event is delivered. Frozen and black pictures are
reported too (edgevision.frame_health: FROZEN / BLACK, then RESTORED when the picture moves).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EdgeVisionError
from .frame_health import FrameHealth
from .health import EventKind, SourceEvent, SourceState
from .source_base import Frame, Source

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source is kept alive and watched. Times in seconds.

    initial_s, factor, max_delay_s: the wait before reconnect attempt k is
        min(initial_s * factor**(k-1), max_delay_s).
    max_attempts: attempts per loss before giving up (FAILED); None: never give up.
    stall_s: no frame for this long means the stream is lost.
    open_timeout_s: how long one open may take (FFmpeg's open timeout for network streams).
    wait_for_first: False: the first open happens in the constructor and a failure is an
        error (a wrong URL is reported at once); True: start CONNECTING and retry as after a loss.
    freeze_s, black_s, black_level: see edgevision.frame_health.FrameHealth (None: off).
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 10.0
    max_attempts: int | None = None
    stall_s: float = 5.0
    open_timeout_s: float = 5.0
    wait_for_first: bool = False
    freeze_s: float | None = 10.0
    black_s: float | None = 5.0
    black_level: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt` (1-based)."""
        return float(min(self.initial_s * self.factor ** max(attempt - 1, 0), self.max_delay_s))


class ReconnectingSource(Source):
    """A live source that reconnects: see the module docstring.

    opener: returns an opened Source (raises on failure); called again for every reconnect.
    uri: what the user passed (for events and messages).
    """

    live = True

    def __init__(self, opener: Callable[[], Source], uri: str, policy: ReconnectPolicy | None = None) -> None:
        self.opener, self.uri = opener, uri
        self.policy = policy or ReconnectPolicy()
        self.health = FrameHealth(self.policy.freeze_s, self.policy.black_s, self.policy.black_level)
        self.failure = ""  # why the source gave up (FAILED), for messages
        self._queue: queue.Queue[object] = queue.Queue(maxsize=4)
        self._closed = threading.Event()
        self._worker: threading.Thread | None = None
        self._started = threading.Lock()
        self._next_index = 0
        self._done = False
        self._inner: Source | None = None
        self.state = SourceState.CONNECTING
        if not self.policy.wait_for_first:
            self._adopt(opener())  # a failure here is the user's error, raised as it is
            self.state = SourceState.LIVE

    # -- the caller's side ------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame; blocks while reconnecting. None once FAILED, ENDED or closed."""
        self._start()
        while not self._done and not self._closed.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                self._done = True
            elif isinstance(item, SourceEvent):
                if self.on_event is not None:
                    self.on_event(item)
            else:
                assert isinstance(item, Frame)
                return item
        return None

    def close(self) -> None:
        """Stop; safe from any thread. A read() blocked in another thread returns None at once.
        The worker releases the connection as soon as its current OpenCV call returns."""
        self._closed.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=0.5)
        elif worker is None and self._inner is not None:
            self._inner.close()
            self._inner = None

    # -- the worker's side ------------------------------------------------------------------
    def _start(self) -> None:
        with self._started:
            if self._worker is None and not self._closed.is_set():
                self._worker = threading.Thread(target=self._run, name=f"edgevision-source-{self.index}", daemon=True)
                self._worker.start()

    def _adopt(self, inner: Source) -> None:
        self._inner = inner
        self.fps = inner.fps or self.fps
        self.size = inner.size if inner.size != (0, 0) else self.size
        self.live = inner.live

    def _push(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _event(self, kind: EventKind, detail: str = "") -> None:
        log.debug("source %d %s: %s %s", self.index, self.uri, kind.value, detail)
        self._push(SourceEvent(kind, self.index, self.uri, detail))

    def _run(self) -> None:
        lost_since: float | None = None  # set while a loss (or the first connection) lasts
        attempt = 0
        if self._inner is None:
            lost_since = time.monotonic()
        try:
            while not self._closed.is_set():
                if self._inner is None:
                    attempt += 1
                    if self.policy.max_attempts is not None and attempt > self.policy.max_attempts:
                        self.state = SourceState.FAILED
                        self.failure = f"gave up after {attempt - 1} attempt(s) to reconnect"
                        self._event(EventKind.FAILED, self.failure)
                        return
                    if self._closed.wait(self.policy.delay(attempt)):
                        return
                    try:
                        self._adopt(self.opener())
                    except Exception as exc:  # noqa: BLE001 - any failure to open is one failed attempt
                        log.debug("reconnect attempt %d to %s failed: %s", attempt, self.uri, exc)
                        continue
                try:
                    assert self._inner is not None
                    frame = self._inner.read()
                except Exception as exc:  # noqa: BLE001 - SourceLost, or a backend error: both a loss
                    self._lose(str(exc))
                    lost_since = lost_since or time.monotonic()
                    continue
                if frame is None:
                    if not self._inner.live:  # a file: it ended, it is not lost
                        self.state = SourceState.ENDED
                        self._event(EventKind.ENDED)
                        return
                    self._lose("the stream ended")
                    lost_since = lost_since or time.monotonic()
                    continue
                if lost_since is not None:  # frames flow again
                    if self.state == SourceState.RECONNECTING:
                        self.reconnects += 1
                        self._event(EventKind.RESTORED,
                                    f"after {time.monotonic() - lost_since:.1f} s and {attempt} attempt(s)")
                    self.state, lost_since, attempt = SourceState.LIVE, None, 0
                self._deliver(frame)
        except BaseException as exc:  # noqa: BLE001 - never die silently: the reader must see an end
            self.state = SourceState.FAILED
            self.failure = f"source worker failed: {exc!r}"
            log.exception("source %s", self.uri)
            self._event(EventKind.FAILED, self.failure)
        finally:
            if self._inner is not None:
                self._inner.close()
                self._inner = None
            self._push(_END)

    def _lose(self, detail: str) -> None:
        """The connection is gone: close it; LOST once per loss (not per failed attempt)."""
        if self._inner is not None:
            self._inner.close()
            self._inner = None
        self.health.reset()
        if self.state == SourceState.LIVE:
            self.state = SourceState.RECONNECTING
            self._event(EventKind.LOST, detail)

    def _deliver(self, frame: Frame) -> None:
        for kind, detail in self.health.check(frame.image, frame.timestamp):
            self._event(kind, detail)
        out = Frame(frame.image, self._next_index, frame.timestamp, frame.name, self.index)
        self._next_index += 1
        self._push(out)


def check_policy(policy: ReconnectPolicy) -> ReconnectPolicy:
    """Reject settings that cannot work, with a clear message."""
    bad = [f"{name}={getattr(policy, name)}" for name in ("initial_s", "stall_s", "open_timeout_s")
           if getattr(policy, name) <= 0]
    if policy.factor < 1:
        bad.append(f"factor={policy.factor} (must be >= 1)")
    if policy.max_attempts is not None and policy.max_attempts < 1:
        bad.append(f"max_attempts={policy.max_attempts} (must be >= 1, or None for no limit)")
    if bad:
        raise EdgeVisionError(f"invalid reconnect policy: {', '.join(bad)}")
    return policy
