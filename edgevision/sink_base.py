"""The sink contract: what every destination of results implements.

Its own module so that sinks.py (which picks a sink by URI) and each sink that lives in a
module of its own (webpreview.py) both import it, and neither imports the other back.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .results import ClassMap
from .results import Result as TaskResult
from .sources import Frame

if TYPE_CHECKING:
    from .stats import RunStats


class Sink:
    """Receives every processed frame. `needs_annotated`: wants the drawn frame."""

    needs_annotated = False

    def bind(self, stats: RunStats) -> None:
        """Called once by the pipeline before the first write: the run's live statistics
        (a web view reads `stats.to_dict()` from it). Most sinks ignore it."""

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def frame_record(frame: Frame, dets: TaskResult, rle: bool = False,
                 source: dict[str, Any] | None = None) -> dict[str, Any]:
    """One frame's result as JSON-ready data: {"frame": i, "source"?: {"index", "uri"}, ...the
    result's fields, "image"?}. The JSON lines writer and the web view's /api/detections both
    write this; `source` is given where a run has several sources."""
    fields = dets.to_json(rle=rle) if isinstance(dets, ClassMap) else dets.to_json()
    record: dict[str, Any] = {"frame": frame.index}
    if source is not None:
        record["source"] = source
    record.update(fields)
    if frame.name:
        record["image"] = frame.name
    return record
