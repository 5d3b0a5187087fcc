"""Source -> model -> sinks, with decode, inference and writing overlapped in threads.

    reader thread      decode frames into a bounded queue (a live source drops the oldest
                       frame when inference falls behind, so latency never builds up;
                       a file blocks instead and loses nothing)
    caller's thread    pre-process, infer, post-process (ONNX Runtime / TensorRT release the GIL)
    writer thread      annotate and write to the sinks

Every Result carries its per-stage timings in milliseconds; RunStats aggregates them.
"""
from __future__ import annotations

import os
import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .detections import Detections
from .results import Result as TaskResult
from .draw import annotate
from .errors import EdgeVisionError
from .model import Model
from .sinks import DisplaySink, Sink, open_sink
from .sources import Frame, Source, open_source
from .stats import RunStats

_END = object()


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
    source ended early (SourceLost), after the run has closed every sink cleanly.
    """

    def __init__(
        self,
        model: Model,
        source: Source | str | int,
        sinks: Sequence[Sink | str | Path | Callable[[Frame, TaskResult], None]] = (),
        max_frames: int | None = None,
        queue_size: int = 4,
        workers: int = 1,
    ) -> None:
        self.model = model
        self.source = source if isinstance(source, Source) else open_source(source)
        fps = self.source.fps or 25.0
        self.sinks = [s if isinstance(s, Sink) else open_sink(s, fps) for s in sinks]
        self.max_frames = max_frames
        self.workers = max(1, workers)
        self.stats = RunStats()
        self.error: EdgeVisionError | None = None
        self._in: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._writer_error: BaseException | None = None
        self._annotate = any(s.needs_annotated for s in self.sinks)
        for sink in self.sinks:
            sink.bind(self.stats)

    # -- threads ---------------------------------------------------------------------------
    def _read(self) -> None:
        count = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or count < self.max_frames):
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    break
                item = (frame, (time.perf_counter() - t0) * 1e3, time.perf_counter())
                count += 1
                if self.source.live:
                    while True:  # newest wins: drop the stalest queued frame
                        try:
                            self._in.put_nowait(item)
                            break
                        except queue.Full:
                            try:
                                self._in.get_nowait()
                                self.stats.dropped += 1
                            except queue.Empty:
                                pass
                else:
                    self._put(self._in, item)
        except EdgeVisionError as exc:  # SourceLost among them: the run ends cleanly, error kept
            self.error = exc
        finally:
            self._put(self._in, _END, force=True)

    def _put(self, q: queue.Queue[Any], item: Any, force: bool = False) -> None:
        """Blocking put that gives up once the run is stopping; `force` (the end marker)
        then makes room instead, because nobody may be left to consume the queue."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._stop.is_set():
                    continue
                if not force:
                    return
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass

    def _write(self) -> None:
        try:
            while (item := self._out.get()) is not _END:
                result: Result = item
                t0 = time.perf_counter()
                drawn = annotate(result.frame.image, result.detections) if self._annotate else None
                t1 = time.perf_counter()
                for sink in self.sinks:
                    sink.write(result.frame, result.detections, drawn)
                    if isinstance(sink, DisplaySink) and sink.stop_requested:
                        self._stop.set()
                t2 = time.perf_counter()
                result.timings["annotate"] = (t1 - t0) * 1e3
                result.timings["write"] = (t2 - t1) * 1e3
                result.timings["latency"] = (t2 - result.frame.timestamp) * 1e3
                dets = result.detections
                limits = dets.frame_data.get("nms_limits", 0) if isinstance(dets, Detections) else 0
                self.stats.add(result.timings, dets.count_names(), int(limits))
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
                result = Result(frame, dets[0], {"decode": decode_ms, "wait": waited, **timings})
                self._put(self._out, result)
                yield result
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._out.put(_END)  # the writer is alive until it sees this, so it will be consumed
            writer.join()
            reader.join(timeout=5)
            self.source.close()
            for sink in self.sinks:
                sink.close()
            self.stats.finish()
        if self._writer_error is not None:
            if isinstance(self._writer_error, EdgeVisionError):
                raise self._writer_error
            raise EdgeVisionError(f"writing results failed: {self._writer_error}") from self._writer_error

    def run(self) -> RunStats:
        """Process everything (or until stopped / max_frames) and return the statistics."""
        for _ in self:
            pass
        return self.stats

    def stop(self) -> None:
        self._stop.set()


def plan_workers(live: bool, artifact: str | Path, backend: str | None,
                 workers: int | None = None) -> tuple[int, dict[str, Any]]:
    """(frames in flight, backend options) for a run.

    Files on a CPU backend (ONNX Runtime, OpenVINO): one single-threaded inference per core
    (throughput); live sources: one inference with every core (latency); other backends:
    theirs to decide. backend None: the one `open_backend` would choose for the file here.
    """
    from .backends import choose_backend, run_options

    cores = os.cpu_count() or 1
    if workers is None:
        workers = 1 if live else max(1, min(cores, 4))
    if workers <= 1:
        return workers, {}
    try:
        name = choose_backend(Path(artifact), backend)
    except EdgeVisionError:
        return workers, {}
    return workers, run_options(name, max(1, cores // workers), workers)
