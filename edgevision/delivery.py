"""The writer side both runners share (Pipeline, MultiPipeline): one processed frame to its
sinks, timed and counted; and the writer thread's error surfaced in the caller's thread."""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .detections import Detections
from .draw import annotate
from .errors import EdgeVisionError
from .sink_base import Sink
from .sinks import DisplaySink

if TYPE_CHECKING:
    from .results import Result as TaskResult
    from .sources import Frame
    from .stats import RunStats


def deliver(frame: Frame, dets: TaskResult, timings: dict[str, float], sinks: Sequence[Sink], stats: RunStats,
            stop: threading.Event) -> float:
    """One processed frame (a pipeline Result's frame, detections and timings): annotate (only if
    a sink wants the drawing), write every sink, add the annotate / write / latency timings (ms)
    to `timings` and count the frame in `stats`. A display sink's q / Esc sets `stop`. Returns
    the time (perf_counter) the frame was done."""
    t0 = time.perf_counter()
    drawn = annotate(frame.image, dets) if any(s.needs_annotated for s in sinks) else None
    t1 = time.perf_counter()
    for sink in sinks:
        sink.write(frame, dets, drawn)
        if isinstance(sink, DisplaySink) and sink.stop_requested:
            stop.set()
    t2 = time.perf_counter()
    timings["annotate"] = (t1 - t0) * 1e3
    timings["write"] = (t2 - t1) * 1e3
    timings["latency"] = (t2 - frame.timestamp) * 1e3
    limits = dets.frame_data.get("nms_limits", 0) if isinstance(dets, Detections) else 0
    stats.add(timings, dets.count_names(), int(limits))
    return t2


def raise_writer_error(exc: BaseException | None) -> None:
    """Re-raise what ended the writer thread, as the one user-facing error type."""
    if exc is None:
        return
    if isinstance(exc, EdgeVisionError):
        raise exc
    raise EdgeVisionError(f"writing results failed: {exc}") from exc
