"""Per-stage latency statistics: every frame carries its timings; the run reports p50/p99."""
from __future__ import annotations

import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .health import EventKind, SourceState

if TYPE_CHECKING:
    from .health import SourceEvent

# Bits of the graph's nms_limits output (converters/nms.py writes them; the runtime reads the values).
NMS_CAPPED = 1  # more anchors above conf than the graph's candidate cap, and fewer than max_det kept
NMS_UNCONVERGED = 2  # the fixed-point NMS needed more iterations than the graph has


# Per-source FPS is measured over this recent window, so a camera that stalls shows it
# within seconds instead of being averaged away over the whole run.
FPS_WINDOW_S = 5.0


@dataclass
class SourceStats:
    """One source's health in a run. The pipeline that runs the source updates it (each field
    from one thread: frames from the writer, dropped and queue from the source's reader,
    state, reconnects and events from the source's events), so to_dict() may be read at any
    time, e.g. by a web view.

    frames: frames processed; dropped: frames read but never processed (a live source's stale
    frames, or frames over its FPS cap); queue: frames waiting for inference right now.
    """

    index: int
    uri: str
    state: SourceState = SourceState.CONNECTING
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    queue: int = 0
    events: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=512), repr=False)

    def frame_done(self, now: float | None = None) -> None:
        """One frame of this source processed (now: time.perf_counter())."""
        self.frames += 1
        self._recent.append(time.perf_counter() if now is None else now)

    def event(self, kind: EventKind | str) -> None:
        self.events[EventKind(kind).value] += 1

    def fps(self, now: float | None = None) -> float:
        """Frames per second over the last FPS_WINDOW_S seconds (0 for a source that stalled)."""
        now = time.perf_counter() if now is None else now
        recent = sum(1 for t in list(self._recent) if 0.0 <= now - t <= FPS_WINDOW_S)
        # a run (or source) younger than the window is measured over its own age
        return recent / max(min(FPS_WINDOW_S, now - self.started), 1e-3)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """now: the time FPS is measured at (a finished run passes its end)."""
        return {"index": self.index, "uri": self.uri, "state": SourceState(self.state).value,
                "frames": self.frames, "fps": round(self.fps(now), 2), "dropped": self.dropped,
                "reconnects": self.reconnects, "events": dict(self.events), "queue": self.queue}


class StageSamples(list[float]):
    """One stage's timings (ms): every value up to CAP, then a uniform sample of all of them
    (reservoir sampling), with the count (`seen`) and the mean kept exact. A camera app runs for days:
    a list of every frame's timings grew without bound (about 6 MiB an hour at 25 FPS; the soak
    benchmark saw it) and made every percentile slower. CAP samples give p99 within a fraction
    of a percentile; runs up to CAP frames stay exact."""

    CAP = 8192

    def __init__(self) -> None:
        super().__init__()
        self.seen, self.total = 0, 0.0
        self._rng = random.Random(0)  # seeded: the same run reports the same percentiles

    def append(self, ms: float) -> None:
        self.seen += 1
        self.total += ms
        if len(self) < self.CAP:
            super().append(ms)
        elif (j := self._rng.randrange(self.seen)) < self.CAP:
            self[j] = ms

    @property
    def mean(self) -> float:
        return self.total / self.seen if self.seen else 0.0


@dataclass
class RunStats:
    """Collects per-frame stage timings (milliseconds) and detections per class."""

    stage_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(StageSamples))
    per_class: Counter[str] = field(default_factory=Counter)
    frames: int = 0
    dropped: int = 0
    # frames whose in-graph NMS reported a limit (candidate cap: 1, unconverged: 2), per bit
    nms_capped: int = 0
    nms_unconverged: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0
    sources: list[SourceStats] = field(default_factory=list)  # one per source, by index

    def source(self, index: int, uri: str = "") -> SourceStats:
        """The counters of source `index` (made on first use)."""
        for s in self.sources:
            if s.index == index:
                return s
        self.sources.append(SourceStats(index, uri))
        return self.sources[-1]

    def count_event(self, event: SourceEvent) -> None:
        """Count one source event (edgevision.health.SourceEvent) for its source."""
        self.source(event.source, event.uri).event(event.kind)

    def add(self, timings: dict[str, float], class_names: list[str], nms_limits: int = 0,
            source: int | None = None) -> None:
        """One frame: stage timings (ms), the names to count, the graph's nms_limits bits, and
        the index of the source it came from (counted per source when given)."""
        self.frames += 1
        if source is not None:
            self.source(source).frame_done()
        self.nms_capped += bool(nms_limits & NMS_CAPPED)
        self.nms_unconverged += bool(nms_limits & NMS_UNCONVERGED)
        for stage, ms in timings.items():
            self.stage_ms[stage].append(ms)
        self.per_class.update(class_names)

    def finish(self) -> None:
        self.ended = time.perf_counter()

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentiles(self) -> dict[str, dict[str, float]]:
        return {
            stage: {
                "p50": float(np.percentile(v, 50)),
                "p99": float(np.percentile(v, 99)),
                "mean": v.mean if isinstance(v, StageSamples) else float(np.mean(v)),
            }
            for stage, v in self.stage_ms.items()
            if v
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stages_ms": {s: {k: round(x, 3) for k, x in d.items()} for s, d in self.percentiles().items()},
            "detections_per_class": dict(self.per_class.most_common()),
            "nms_inexact_frames": {"candidate_cap": self.nms_capped, "unconverged": self.nms_unconverged},
            "sources": [s.to_dict(self.ended or None) for s in self.sources],
        }

    def summary(self) -> str:
        lines = [f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.1f} FPS"
                 + (f", {self.dropped} stale frames dropped" if self.dropped else "")]
        lines.append(f"{'stage':<12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for stage, d in self.percentiles().items():
            lines.append(f"{stage:<12} {d['p50']:>8.2f} {d['p99']:>8.2f} {d['mean']:>8.2f}")
        if self.nms_capped or self.nms_unconverged:
            lines.append(
                f"NMS not exact on {self.nms_capped} frame(s) (more candidates than --pre-nms-topk) and "
                f"{self.nms_unconverged} (chains longer than --nms-iters): re-convert with larger values"
            )
        for src in self.sources:  # several sources: a line each; one: only when something happened to it
            if len(self.sources) > 1 or src.reconnects or src.events.keys() - {"ended"}:
                events = ", ".join(f"{k} {n}" for k, n in sorted(src.events.items()))
                lines.append(f"source {src.index} {src.uri}: {src.frames} frames, {src.dropped} dropped, "
                             f"{SourceState(src.state).value}, {src.reconnects} reconnect(s)"
                             + (f" ({events})" if events else ""))
        if self.per_class:
            per = ", ".join(f"{name} {n}" for name, n in self.per_class.most_common())
            lines.append(f"detections: {per}")
        else:
            lines.append("detections: none")
        return "\n".join(lines)
