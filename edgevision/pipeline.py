"""Source -> model -> sinks, with decode, inference and writing overlapped in threads.

    reader thread      decode frames into a bounded queue (a live source drops the oldest
                       frame when inference falls behind, so latency never builds up;
                       a file blocks instead and loses nothing)
    caller's thread    pre-process, infer, post-process (ONNX Runtime / TensorRT release the GIL)
    writer thread      annotate and write to the sinks

Every Result carries its per-stage timings in milliseconds; RunStats aggregates them.
"""
from __future__ import annotations

import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .detections import Detections
from .device import usable_cores
from .results import Result as TaskResult
from .errors import EdgeVisionError
from .delivery import deliver, raise_writer_error
from .frame_queue import put_newest, put_until_stopped
from .health import SourceEvent, SourceState
from .model import Model
from .reconnect import ReconnectingSource
from .sinks import Sink, open_sink
from .sources import Frame, Source, SourceLost, open_source
from .stats import RunStats

_END = object()


class Tracker(Protocol):
    """What Pipeline(track=...) calls once per frame, in frame order (edgevision.tracking.ByteTracker)."""

    def update(self, dets: Detections) -> Detections: ...


@dataclass
class Result:
    """One processed frame. timings: stage -> ms (decode, wait, preprocess, infer, postprocess)."""

    frame: Frame
    detections: TaskResult  # Detections, ClassMap or Classification, by the model's task
    timings: dict[str, float]

    @property
    def source(self) -> int:
        """The index of the source the frame came from (0 with one source)."""
        return self.frame.source


class Pipeline:
    """Run `model` over `source` into `sinks`.

    source: a Source or a URI (see edgevision.sources). sinks: Sinks, URIs or callables.
    workers: frames inferred at once. On a CPU, 2+ workers over a model loaded with
    threads=1 beat one multi-threaded inference in throughput (less synchronisation,
    pre/post-processing overlaps); keep 1 for a live camera, where latency matters.
    Iterate for Results, or call run() for the final RunStats. `error` holds why a live
    source ended early (SourceLost: it failed for good), after the run has closed every sink
    cleanly. A live source opened from a URI reconnects (edgevision.reconnect): the run goes on
    through the loss. on_event: called with every SourceEvent (lost, restored, frozen, black,
    ended, failed) in the reader thread, as it happens; keep it short. Events are also counted
    per source in `stats` (stats.to_dict()["sources"]).
    track: give detections track ids (edgevision.tracking.ByteTracker at the source's frame
    rate; a tracker object with `update(Detections) -> Detections` may be passed instead).
    Tracked results keep only the detections of confirmed tracks (see ByteTracker.update).
    """

    def __init__(
        self,
        model: Model,
        source: Source | str | int,
        sinks: Sequence[Sink | str | Path | Callable[[Frame, TaskResult], None]] = (),
        max_frames: int | None = None,
        queue_size: int = 4,
        workers: int = 1,
        track: bool | Tracker = False,
        on_event: Callable[[SourceEvent], None] | None = None,
    ) -> None:
        if track is not False and not model.manifest.detects:
            raise EdgeVisionError(f"tracking follows detections; this artifact's task is {model.manifest.task}")
        self.model = model
        self.source = source if isinstance(source, Source) else open_source(source)
        self.on_event = on_event
        fps = self.source.fps or 25.0
        self.sinks = [s if isinstance(s, Sink) else open_sink(s, fps) for s in sinks]
        self.max_frames = max_frames
        self.workers = max(1, workers)
        self.tracker: Tracker | None = None
        if track is True:
            from .tracking import ByteTracker

            self.tracker = ByteTracker(frame_rate=fps)
        elif track is not False:
            self.tracker = track
        self.stats = RunStats()
        self.error: EdgeVisionError | None = None
        self._in: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._writer_error: BaseException | None = None
        self._source_stats = self.stats.source(self.source.index, self.source.uri)
        self._reader_error: BaseException | None = None
        self._their_on_event = self.source.on_event  # whoever listened before keeps listening
        self.source.on_event = self._event
        for sink in self.sinks:
            sink.bind(self.stats)

    def _event(self, event: SourceEvent) -> None:
        self.stats.count_event(event)
        self._sync_source()
        for listener in (self.on_event, self._their_on_event):
            if listener is not None:
                listener(event)

    def _sync_source(self) -> None:
        s = self._source_stats
        s.state, s.reconnects, s.queue = self.source.state, self.source.reconnects, self._in.qsize()

    # -- threads ---------------------------------------------------------------------------
    def _read(self) -> None:
        count = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or count < self.max_frames):
                t0 = time.perf_counter()
                frame = self.source.read()
                self._sync_source()
                if frame is None:
                    if self.source.state == SourceState.FAILED:
                        why = getattr(self.source, "failure", "") or "it failed"
                        self.error = SourceLost(f"source {self.source.uri!r} is gone: {why}")
                    break
                item = (frame, (time.perf_counter() - t0) * 1e3, time.perf_counter())
                count += 1
                if self.source.live:
                    dropped = put_newest(self._in, item)  # newest wins: the stalest queued frame goes
                    self.stats.dropped += dropped
                    self._source_stats.dropped += dropped
                else:
                    put_until_stopped(self._in, item, self._stop)
        except EdgeVisionError as exc:  # SourceLost among them: the run ends cleanly, error kept
            self.error = exc
        except BaseException as exc:  # noqa: BLE001 - e.g. the user's on_event raised: surfaced in the caller's thread
            self._reader_error = exc
        finally:
            put_until_stopped(self._in, _END, self._stop, force=True)

    def _write(self) -> None:
        try:
            while (item := self._out.get()) is not _END:
                result: Result = item
                deliver(result.frame, result.detections, result.timings, self.sinks, self.stats, self._stop)
                self._source_stats.frame_done()
        except BaseException as exc:  # noqa: BLE001 - surfaced in the caller's thread
            self._writer_error = exc
            self._stop.set()
            while self._out.get() is not _END:  # keep draining so the producer never blocks
                pass

    # -- public ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        reader = threading.Thread(target=self._read, name="edgevision-reader", daemon=True)
        writer = threading.Thread(target=self._write, name="edgevision-writer", daemon=True)
        reader.start()
        writer.start()
        # Frames in flight: `workers` inferences run at once on a thread-safe backend (ONNX
        # Runtime); results are still handed out in frame order.
        workers = self.workers if self.model.backend.thread_safe else 1
        pool = ThreadPoolExecutor(workers, thread_name_prefix="edgevision-infer")
        pending: deque[tuple[Frame, float, float, Future[Any]]] = deque()
        ended = False
        try:
            while not self._stop.is_set():
                while not ended and len(pending) < workers:
                    t_wait = time.perf_counter()
                    item = self._in.get()
                    if item is _END:
                        ended = True
                        break
                    frame, decode_ms, queued_at = item
                    frame.timestamp = queued_at - decode_ms / 1e3
                    waited = (time.perf_counter() - t_wait) * 1e3
                    pending.append((frame, decode_ms, waited, pool.submit(self.model.predict_timed, [frame.image])))
                if not pending:
                    break
                frame, decode_ms, waited, future = pending.popleft()
                dets, timings = future.result()
                out = dets[0]
                if self.tracker is not None and isinstance(out, Detections):
                    # here, not in the workers: results are in frame order, which a tracker needs
                    t0 = time.perf_counter()
                    out = self.tracker.update(out)
                    timings = {**timings, "track": (time.perf_counter() - t0) * 1e3}
                result = Result(frame, out, {"decode": decode_ms, "wait": waited, **timings})
                put_until_stopped(self._out, result, self._stop)
                yield result
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._out.put(_END)  # the writer is alive until it sees this, so it will be consumed
            writer.join()
            self._interrupt_source()
            reader.join(timeout=5)
            self.source.close()
            self._sync_source()
            for sink in self.sinks:
                sink.close()
            self.stats.finish()
        if self._reader_error is not None:
            raise EdgeVisionError(f"reading the source failed: {self._reader_error!r}") from self._reader_error
        raise_writer_error(self._writer_error)

    def run(self) -> RunStats:
        """Process everything (or until stopped / max_frames) and return the statistics."""
        for _ in self:
            pass
        return self.stats

    def stop(self) -> None:
        """End the run soon; safe from another thread (a source that is reconnecting is interrupted)."""
        self._stop.set()
        self._interrupt_source()

    def _interrupt_source(self) -> None:
        # A reconnecting source may block its read() for a long time; its close() is thread-safe
        # and makes that read return. A plain capture's close() is not, so it waits for the reader.
        if isinstance(self.source, ReconnectingSource):
            self.source.close()


def plan_workers(live: bool, artifact: str | Path, backend: str | None,
                 workers: int | None = None) -> tuple[int, dict[str, Any]]:
    """(frames in flight, backend options) for a run.

    Files on a CPU backend (ONNX Runtime, OpenVINO): one single-threaded inference per core
    (throughput); live sources: one inference with every core (latency); other backends:
    theirs to decide. backend None: the one `open_backend` would choose for the file here.
    """
    from .backends import choose_backend, run_options

    cores = usable_cores()
    if workers is None:
        workers = 1 if live else max(1, min(cores, 4))
    if workers <= 1:
        return workers, {}
    try:
        name = choose_backend(Path(artifact), backend)
    except EdgeVisionError:
        return workers, {}
    return workers, run_options(name, max(1, cores // workers), workers)
