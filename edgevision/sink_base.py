"""The sink contract: what every destination of results implements.

Its own module so that sinks.py (which picks a sink by URI) and each sink that lives in a
module of its own (webpreview.py) both import it, and neither imports the other back.
"""
from __future__ import annotations

import numpy as np

from .results import Result as TaskResult
from .sources import Frame


class Sink:
    """Receives every processed frame. `needs_annotated`: wants the drawn frame."""

    needs_annotated = False

    def write(self, frame: Frame, dets: TaskResult, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass
