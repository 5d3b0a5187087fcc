"""What TensorRT is doing during a build, as one status line. Pure Python.

TensorRT 10+ reports build phases through IProgressMonitor (see progress_monitor.py, which
forwards to BuildProgress); with older TensorRT there are no phases and the line shows
the elapsed time only. TensorRT calls back from its own threads, hence the lock.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass
class _Phase:
    parent: str | None
    steps: int
    done: int = 0


class BuildProgress:
    """Receives phase_start / step_complete / phase_finish; tick() prints the status.

    interactive: rewrite one line with '\\r' (a terminal); otherwise print a line when a
    top-level phase changes and at most every `log_every` seconds (CI logs, files).
    """

    def __init__(
        self,
        out: TextIO | None = None,
        interactive: bool | None = None,
        log_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.interactive = self.out.isatty() if interactive is None else interactive
        self.log_every = log_every
        self.clock = clock
        self.start = clock()
        self.cancelled = False
        self.phases_seen = 0
        self._lock = threading.Lock()
        self._active: dict[str, _Phase] = {}  # insertion order = nesting order
        self._last_line = ""
        self._last_print = float("-inf")
        self._last_top = ""

    # -- called by TensorRT (through progress_monitor) -------------------------------------
    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self._active[name] = _Phase(parent or None, max(int(steps), 1))
            self.phases_seen += 1

    def step_complete(self, name: str, step: int) -> bool:
        """Record a step; False asks TensorRT to cancel the build (after cancel())."""
        with self._lock:
            phase = self._active.get(name)
            if phase is not None:
                phase.done = max(phase.done, int(step) + 1)
            return not self.cancelled

    def phase_finish(self, name: str) -> None:
        with self._lock:
            self._active.pop(name, None)

    def cancel(self) -> None:
        self.cancelled = True

    # -- rendering ----------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.start

    def line(self) -> str:
        """'[  12.3 s] Building engine 1/1 > Timing tactics 5/8' (the chain of active phases)."""
        with self._lock:
            chain = [f"{name} {p.done}/{p.steps}" for name, p in self._active.items()]
        head = f"[{self.elapsed():7.1f} s]"
        return f"{head} {' > '.join(chain)}" if chain else f"{head} building"

    def _top(self) -> str:
        with self._lock:
            tops = [n for n, p in self._active.items() if p.parent is None]
        return tops[0] if tops else ""

    def tick(self) -> None:
        """Print the status if it is due (called by the waiting thread, a few times a second)."""
        text = self.line()
        now = self.clock()
        if self.interactive:
            if text != self._last_line:
                self.out.write("\r" + text[:160].ljust(len(self._last_line[:160])))
                self.out.flush()
                self._last_line = text
            return
        top = self._top()
        if top != self._last_top or now - self._last_print >= self.log_every:
            self.out.write(text + "\n")
            self.out.flush()
            self._last_print, self._last_top = now, top

    def finish(self, summary: str) -> None:
        if self.interactive and self._last_line:
            self.out.write("\r" + " " * len(self._last_line[:160]) + "\r")
        self.out.write(f"[{self.elapsed():7.1f} s] {summary}\n")
        self.out.flush()
