"""The two ways a pipeline hands frames between its threads, shared by Pipeline and MultiPipeline.

    put_newest           live sources: never block; a full queue drops its stalest frame, so a
                         slow model never builds up latency (the drops are counted by the caller)
    put_until_stopped    files and results: block, losing nothing, but give up once the run is
                         stopping; an end marker (force) then makes room instead
"""
from __future__ import annotations

import queue
import threading
from typing import Any


def put_newest(q: queue.Queue[Any], item: Any) -> int:
    """Put `item`, dropping the oldest queued items to make room. Returns how many were dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:  # a consumer took one meanwhile: try again
                pass


def put_until_stopped(q: queue.Queue[Any], item: Any, stop: threading.Event, force: bool = False) -> None:
    """Blocking put that gives up once `stop` is set; `force` (an end marker) then makes room
    instead, because nobody may be left to consume the queue."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if not stop.is_set():
                continue
            if not force:
                return
            try:
                q.get_nowait()
            except queue.Empty:
                pass
