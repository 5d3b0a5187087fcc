"""What a camera app needs to know about each source: its state and what happened to it.

A source moves   connecting -> live -> (reconnecting -> live)* -> ended | failed
A file only ever goes connecting -> live -> ended (it is never "reconnected").
Events are delivered to the user's callback and counted in the run statistics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum


class SourceState(str, Enum):
    """Where one source stands. str-valued so it goes straight into JSON."""

    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"    # a finite source (file, images) reached its end
    FAILED = "failed"  # gave up: could not open, or reconnect attempts exhausted


class EventKind(str, Enum):
    """Things that happen to a source."""

    LOST = "lost"          # a live source stopped delivering frames
    RESTORED = "restored"  # it delivers again after a loss
    FROZEN = "frozen"      # identical frames for longer than the freeze limit
    BLACK = "black"        # black frames for longer than the black limit
    ENDED = "ended"        # end of a finite source
    FAILED = "failed"      # gave up on the source


@dataclass(frozen=True)
class SourceEvent:
    """One event. source: index in the run; uri: what the user passed; at: time.monotonic()."""

    kind: EventKind
    source: int
    uri: str
    detail: str = ""
    at: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, object]:
        return {"event": self.kind.value, "source": self.source, "uri": self.uri,
                "detail": self.detail, "at": self.at}
