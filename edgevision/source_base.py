"""What every frame source is: Frame, Source (with its health: state, events) and SourceLost.

Kept apart from sources.py (which opens sources by URI) so that sources built on top of
others, such as edgevision.reconnect's ReconnectingSource, can subclass Source while
open_source() uses them, without an import cycle. edgevision.sources re-exports all three.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import EdgeVisionError
from .health import EventKind, SourceEvent, SourceState


@dataclass
class Frame:
    """One decoded frame. image: uint8[H, W, 3] BGR. index counts from 0 per source.

    source: the index of the source it came from in a multi-source run (0 with one source).
    """

    image: np.ndarray
    index: int
    timestamp: float = field(default_factory=time.monotonic)
    name: str = ""
    source: int = 0


class SourceLost(EdgeVisionError):
    """A live source stopped delivering frames (camera unplugged, stream dropped)."""


class Source:
    """Base class: iterate to get Frames; `live` sources may drop frames, files never do.

    Health: `state` (edgevision.health.SourceState) says where the source stands; `emit()`
    hands a SourceEvent to `on_event` (set by whoever runs the source, e.g. a multi-source
    pipeline, together with `index`, the source's position in the run).
    """

    live: bool = False
    uri: str = ""
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)  # (W, H), 0 when unknown
    frame_count: int = 0  # 0 when unknown or endless
    index: int = 0
    state: SourceState = SourceState.CONNECTING
    reconnects: int = 0
    on_event: Callable[[SourceEvent], None] | None = None

    def emit(self, kind: EventKind, detail: str = "") -> None:
        """Deliver one event to `on_event` (if anyone listens)."""
        if self.on_event is not None:
            self.on_event(SourceEvent(kind, self.index, self.uri, detail))

    def _ended(self) -> None:
        """A finite source ran out: state ENDED, one ENDED event."""
        if self.state != SourceState.ENDED:
            self.state = SourceState.ENDED
            self.emit(EventKind.ENDED)

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a finite source."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
