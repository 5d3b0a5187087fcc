"""Many sources, one model: frames from several cameras and files batched into one inference.

    a reader thread per source   decodes into the source's own small queue. Policy "latest"
                                 (live sources): a full queue drops its oldest frame, counted,
                                 so a slow model never builds up latency; "all" (files): the
                                 reader waits, so no frame is ever lost. fps_cap: a live
                                 source's frames above the cap are skipped, a file is paced.
    the caller's thread          the batcher takes up to max_batch frames round-robin across
                                 the sources, waiting at most max_wait_ms after the first one:
                                 a late or dead source is left out, never waited for. One
                                 inference of the batch (Model.predict_timed, the batch path
                                 TensorRT uses too), one tracker per source, results in each
                                 source's frame order, handed out by iterator and/or on_result.
    the writer thread            annotates, writes the sinks, counts the statistics.

    with MultiPipeline(model, ["cam0.mp4", "rtsp://host/cam1"], sinks=[...]) as run:
        for result in run:              # result.source: the source's index
            ...

edgevision.pipeline.Pipeline stays the one-source runner: it keeps several single-frame
inferences in flight (the fastest way through one file on a CPU), which this batcher, one
batch at a time, does not; a MultiPipeline over one source works too.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .detections import Detections
from .delivery import deliver, raise_writer_error
from .errors import EdgeVisionError
from .frame_queue import put_newest, put_until_stopped
from .health import EventKind, SourceEvent, SourceState
from .manifest import IN_IMAGES
from .model import Model
from .pipeline import Result
from .results import Result as TaskResult
from .sinks import Sink, open_sink
from .sources import Frame, Source, open_source
from .stats import RunStats, SourceStats

__all__ = ["MultiPipeline", "Policy", "Tracker", "batch_range", "numbered_path"]

Policy = Literal["latest", "all"]
POLICIES = ("latest", "all")
SinkLike = Sink | str | Path | Callable[[Frame, TaskResult], None]
_END = object()
log = logging.getLogger(__name__)


class Tracker(Protocol):
    """What tracker_factory makes: one per source, fed that source's detections in frame order."""

    def update(self, dets: Detections) -> Detections: ...


@dataclass
class _Lane:
    """One source in the run: its queue, frame policy, sinks and tracker."""

    source: Source
    stats: SourceStats
    queue: queue.Queue[Any]
    policy: Policy
    fps_cap: float | None
    sinks: list[Sink]
    tracker: Tracker | None = None
    ended: bool = False  # the batcher has taken its end marker
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


def batch_range(model: Model) -> tuple[int, int | None]:
    """(smallest, largest or None for unbounded) batch the artifact's image input takes:
    a dynamic ONNX axis (1, None), a TensorRT profile (1, its max), a fixed batch (N, N)."""
    spec = next((s for s in model.backend.inputs if s.name == IN_IMAGES), None)
    if spec is None or spec.shape is None:
        return (1, None) if model.manifest.dynamic_batch else (1, 1)
    return spec.bounds()[0]


def numbered_path(path: str | Path, index: int) -> Path:
    """out.mp4, 2 -> out_2.mp4: where a per-source output of a several-source run goes."""
    p = Path(path)
    return p.with_name(f"{p.stem}_{index}{p.suffix}")


def _per_source(value: Any, n: int, name: str) -> list[Any]:
    """One value for every source, or a sequence with one per source."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise EdgeVisionError(f"{name}: {len(value)} values given for {n} sources; give one, or one per source")
        return list(value)
    return [value] * n


class MultiPipeline:
    """Run one `model` over several `sources`, batching their frames together.

    sources: Sources or URIs (see edgevision.sources); result.source / frame.source is the
    position in this list. sinks: get every source's frames (a JSON lines sink then writes
    a "source" field); source_sinks: one list of sinks per source (e.g. a video each).
    max_batch: frames per inference (default: one per source, within what the artifact
    takes; an artifact with a fixed batch is padded). max_wait_ms: how long a batch waits
    for more frames after its first one. policy: "latest" (drop the oldest queued frame,
    default for live sources) or "all" (never drop, default for files), one for all or one
    per source; fps_cap likewise (None: no cap). queue_size: frames queued per source
    (default 2 for "latest", 4 for "all"). max_frames: stop each source after this many.
    on_result(result): called for every result, in the caller's thread, before the
    iterator yields it. on_event(SourceEvent): every event of every source (from that
    source's reader thread). tracker_factory(): makes one tracker per source, applied to
    its detections in frame order.

    Iterate for Results, call run() to process everything, or start() it in a thread of its
    own and stop() it from anywhere. `errors` maps a source's index to why it stopped early
    (the other sources go on).
    """

    def __init__(
        self,
        model: Model,
        sources: Sequence[Source | str | int],
        sinks: Sequence[SinkLike] = (),
        source_sinks: Sequence[Sequence[SinkLike]] | None = None,
        max_batch: int | None = None,
        max_wait_ms: float = 20.0,
        policy: Policy | Sequence[Policy] | None = None,
        fps_cap: float | Sequence[float | None] | None = None,
        queue_size: int | None = None,
        max_frames: int | None = None,
        on_result: Callable[[Result], None] | None = None,
        on_event: Callable[[SourceEvent], None] | None = None,
        tracker_factory: Callable[[], Tracker] | None = None,
    ) -> None:
        if not sources:
            raise EdgeVisionError("MultiPipeline needs at least one source")
        n = len(sources)
        policies = _per_source(policy, n, "policy")
        caps = _per_source(fps_cap, n, "fps_cap")
        if source_sinks is not None and len(source_sinks) != n:
            raise EdgeVisionError(f"source_sinks: {len(source_sinks)} lists given for {n} sources")
        for p in policies:
            if p is not None and p not in POLICIES:
                raise EdgeVisionError(f"policy {p!r}: use one of {', '.join(POLICIES)}")
        self.model = model
        self.max_wait_s = max(0.0, max_wait_ms) / 1e3
        self.max_frames = max_frames
        self.on_result, self.on_event = on_result, on_event
        self.stats = RunStats()
        self.errors: dict[int, BaseException] = {}
        self.batch_sizes: Counter[int] = Counter()  # frames per inference -> how many inferences
        self._stop = threading.Event()
        self._arrived = threading.Event()  # a reader queued something: the batcher looks again
        self._out: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._writer_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._started = self._closed = False
        self._cursor = 0
        self._lanes: list[_Lane] = []
        try:
            for i, src in enumerate(sources):
                self._lanes.append(self._lane(i, src, policies[i], caps[i], queue_size,
                                              source_sinks[i] if source_sinks is not None else (),
                                              tracker_factory))
            self.sinks = [s if isinstance(s, Sink) else open_sink(s, self._lanes[0].source.fps or 25.0) for s in sinks]
            self.min_batch, self.max_batch = self._plan_batch(max_batch)
        except BaseException:
            self.close()
            raise
        self.stats.sources = [lane.stats for lane in self._lanes]
        for sink in self._all_sinks():
            sink.bind(self.stats)

    def _lane(self, i: int, src: Source | str | int, policy: Policy | None, cap: float | None,
              queue_size: int | None, sinks: Sequence[SinkLike], tracker_factory: Callable[[], Tracker] | None) -> _Lane:
        source = src if isinstance(src, Source) else open_source(src)
        source.index = i
        source.on_event = lambda event, i=i: self._event(i, event)
        pol: Policy = policy or ("latest" if source.live else "all")
        size = queue_size or (2 if pol == "latest" else 4)
        fps = source.fps or 25.0
        return _Lane(source, SourceStats(i, source.uri or str(src), source.state, reconnects=source.reconnects),
                     queue.Queue(maxsize=max(1, size)), pol, cap if cap and cap > 0 else None,
                     [s if isinstance(s, Sink) else open_sink(s, min(fps, cap) if cap else fps) for s in sinks],
                     tracker_factory() if tracker_factory is not None else None)

    def _plan_batch(self, requested: int | None) -> tuple[int, int]:
        """(frames an inference must get, most it may get). Frames short of the first are
        padded with a copy: an artifact with a fixed batch N runs any batch of up to N."""
        lo, hi = batch_range(self.model)
        if requested is not None:
            if requested < 1 or (hi is not None and requested > hi):
                raise EdgeVisionError(
                    f"max_batch {requested}: this artifact takes batches of {lo}..{'' if hi is None else hi} frames"
                    + (" (re-convert with a dynamic batch, or build the engine with a larger --max-batch)"
                       if hi is not None and requested > hi else ""))
            return lo, max(requested, 1)
        want = len(self._lanes)
        return lo, max(1, min(want, hi) if hi is not None else want)

    def _all_sinks(self) -> list[Sink]:
        return [*getattr(self, "sinks", []), *(s for lane in self._lanes for s in lane.sinks)]

    # -- source events -------------------------------------------------------------------
    def _event(self, i: int, event: SourceEvent) -> None:
        lane = self._lanes[i]
        lane.stats.event(event.kind)
        lane.stats.state, lane.stats.reconnects = lane.source.state, lane.source.reconnects
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a failing callback must not take the source down
                log.exception("on_event callback failed on %s", event)

    # -- threads ---------------------------------------------------------------------------
    def _read(self, lane: _Lane) -> None:
        src, st, q = lane.source, lane.stats, lane.queue
        period = 1.0 / lane.fps_cap if lane.fps_cap else 0.0
        next_at = time.perf_counter()
        count = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or count < self.max_frames):
                if period and lane.policy == "all":  # a file is paced (it must not lose frames):
                    if self._stop.wait(max(0.0, next_at - time.perf_counter())):  # read at its slot
                        break
                    next_at = max(next_at + period, time.perf_counter() - period)
                t0 = time.perf_counter()
                frame = src.read()
                if frame is None:
                    break
                now = time.perf_counter()
                st.state, st.reconnects = src.state, src.reconnects
                if period and lane.policy == "latest":
                    if now < next_at - 1e-3:  # above the cap: skip it (a camera cannot be slowed)
                        st.dropped += 1
                        continue
                    # the next slot; after a stall (a frame over half a period late) count from
                    # this frame instead, so the stall buys no burst of frames after it
                    next_at = max(next_at + period, now + period / 2)
                frame.source = lane.stats.index
                frame.timestamp = t0  # latency counts from when the frame was asked for
                item = (frame, (now - t0) * 1e3, time.perf_counter())
                count += 1
                if lane.policy == "latest":
                    st.dropped += put_newest(q, item)  # newest wins: the stalest queued frame goes
                else:
                    put_until_stopped(q, item, self._stop)
                st.queue = q.qsize()
                self._arrived.set()
        except Exception as exc:  # noqa: BLE001 - one source failing must not stop the others
            lane.error = exc
            self.errors[st.index] = exc
            if src.state not in (SourceState.ENDED, SourceState.FAILED):
                src.state = SourceState.FAILED
                src.emit(EventKind.FAILED, str(exc))
            log.warning("source %d (%s) stopped: %s", st.index, st.uri, exc)
        finally:
            st.state, st.reconnects = src.state, src.reconnects
            put_until_stopped(q, _END, self._stop, force=True)
            self._arrived.set()

    def _gather(self) -> list[tuple[_Lane, Any]]:
        """Up to max_batch queued frames, round-robin from where the last batch stopped (so
        every source gets its turn), at most one per source per pass. Waits for the first
        frame as long as it takes, then at most max_wait_s for more. [] when every source
        has ended or the run is stopping."""
        batch: list[tuple[_Lane, Any]] = []
        deadline: float | None = None
        n = len(self._lanes)
        while not self._stop.is_set():
            self._arrived.clear()  # before looking: a frame queued after the look sets it again
            took = False
            for k in range(n):
                if len(batch) >= self.max_batch:
                    break
                i = (self._cursor + k) % n
                lane = self._lanes[i]
                if lane.ended:
                    continue
                try:
                    item = lane.queue.get_nowait()
                except queue.Empty:
                    continue
                lane.stats.queue = lane.queue.qsize()
                if item is _END:
                    lane.ended = True
                    continue
                batch.append((lane, item))
                took = True
            if batch:
                self._cursor = (batch[-1][0].stats.index + 1) % n
            if len(batch) >= self.max_batch or all(lane.ended for lane in self._lanes):
                return batch
            now = time.perf_counter()
            if not batch:
                self._arrived.wait(0.1)  # nothing yet: wait for anyone, but notice stop()
                continue
            deadline = deadline if deadline is not None else now + self.max_wait_s
            if now >= deadline:
                return batch
            if not took:
                self._arrived.wait(deadline - now)
        return []

    def _write(self) -> None:
        try:
            while (item := self._out.get()) is not _END:
                result: Result = item
                lane = self._lanes[result.frame.source]
                lane.stats.frame_done(deliver(result.frame, result.detections, result.timings,
                                              [*self.sinks, *lane.sinks], self.stats, self._stop))
        except BaseException as exc:  # noqa: BLE001 - surfaced in the caller's thread
            self._writer_error = exc
            self._stop.set()
            while self._out.get() is not _END:  # keep draining so the producer never blocks
                pass

    def _infer(self, batch: list[tuple[_Lane, Any]]) -> Iterator[Result]:
        """One inference over the batch; its results, each through its source's tracker."""
        t_batch = time.perf_counter()
        images = [item[0].image for _, item in batch]
        pad = max(0, self.min_batch - len(images))
        dets, timings = self.model.predict_timed(images + [images[-1]] * pad)
        self.batch_sizes[len(images)] += 1
        for (lane, (frame, decode_ms, queued_at)), det in zip(batch, dets):
            extra: dict[str, float] = {}
            if lane.tracker is not None and isinstance(det, Detections):
                t0 = time.perf_counter()
                det = lane.tracker.update(det)
                extra["track"] = (time.perf_counter() - t0) * 1e3
            # wait: queued -> taken into a batch; preprocess/infer/postprocess: the whole batch's
            yield Result(frame, det, {"decode": decode_ms, "wait": (t_batch - queued_at) * 1e3, **timings, **extra})

    # -- public ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        if self._started:
            raise EdgeVisionError("a MultiPipeline runs once; make a new one to run again")
        self._started = True
        self.stats.started = time.perf_counter()  # the run, not the model load, is what FPS is over
        for lane in self._lanes:
            lane.stats.started = self.stats.started
        writer = threading.Thread(target=self._write, name="edgevision-writer", daemon=True)
        writer.start()
        for lane in self._lanes:
            lane.thread = threading.Thread(target=self._read, args=(lane,), daemon=True,
                                           name=f"edgevision-reader-{lane.stats.index}")
            lane.thread.start()
        try:
            while not self._stop.is_set():
                batch = self._gather()
                if not batch:
                    break
                for result in self._infer(batch):
                    put_until_stopped(self._out, result, self._stop)
                    if self.on_result is not None:
                        self.on_result(result)
                    yield result
        finally:
            self._stop.set()
            self._out.put(_END)  # the writer is alive until it sees this, so it will be consumed
            writer.join()
            self.close()
            self.stats.finish()
        raise_writer_error(self._writer_error)

    def run(self) -> RunStats:
        """Process every source to its end (or until stopped) and return the statistics."""
        for _ in self:
            pass
        return self.stats

    def start(self) -> MultiPipeline:
        """run() in a thread of its own (results go to on_result and the sinks); stop() and
        join() end it. Returns self, so `with MultiPipeline(...).start() as run:` works."""
        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - re-raised by join()
                self._thread_error = exc

        self._thread = threading.Thread(target=target, name="edgevision-multi", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> RunStats:
        """Wait for a start()ed run to end; re-raises what ended it, if it failed."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread_error is not None:
            raise self._thread_error
        return self.stats

    def stop(self) -> None:
        """Ask the run to end (from any thread): sources stop, sinks are closed cleanly."""
        self._stop.set()
        self._arrived.set()

    def close(self) -> None:
        """Release the sources and sinks (once; a finished run has already done it). A source
        whose reader is still blocked in read() past 5 s is left to its daemon thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(timeout=5)
                if lane.thread.is_alive():
                    log.warning("source %d (%s) is still blocked in read(); not closed", lane.stats.index, lane.stats.uri)
                    continue
            lane.source.close()
        for sink in self._all_sinks():
            sink.close()

    def __enter__(self) -> MultiPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join()
        self.close()
