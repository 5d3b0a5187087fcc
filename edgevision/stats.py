"""Per-stage latency statistics: every frame carries its timings; the run reports p50/p99."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .health import SourceEvent

# Bits of the graph's nms_limits output (converters/nms.py writes them; the runtime reads the values).
NMS_CAPPED = 1  # more anchors above conf than the graph's candidate cap, and fewer than max_det kept
NMS_UNCONVERGED = 2  # the fixed-point NMS needed more iterations than the graph has


@dataclass
class SourceStats:
    """One source's counters in a run. state: an edgevision.health.SourceState value.

    frames: frames processed; dropped: stale frames dropped for this source (live sources);
    reconnects: successful reconnections; events: event kind -> count; queue: frames waiting
    for inference (the last depth seen).
    """

    index: int
    uri: str
    state: str = "connecting"
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    events: Counter[str] = field(default_factory=Counter)
    queue: int = 0

    def to_dict(self, seconds: float) -> dict[str, Any]:
        return {"index": self.index, "uri": self.uri, "state": self.state, "frames": self.frames,
                "fps": round(self.frames / seconds, 2) if seconds > 0 else 0.0, "dropped": self.dropped,
                "reconnects": self.reconnects, "events": dict(self.events), "queue": self.queue}


@dataclass
class RunStats:
    """Collects per-frame stage timings (milliseconds) and detections per class."""

    stage_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    per_class: Counter[str] = field(default_factory=Counter)
    frames: int = 0
    dropped: int = 0
    # frames whose in-graph NMS reported a limit (candidate cap: 1, unconverged: 2), per bit
    nms_capped: int = 0
    nms_unconverged: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0
    sources: list[SourceStats] = field(default_factory=list)

    def source(self, index: int, uri: str = "") -> SourceStats:
        """The counters of source `index` (made on first use)."""
        for s in self.sources:
            if s.index == index:
                return s
        self.sources.append(SourceStats(index, uri))
        return self.sources[-1]

    def count_event(self, event: SourceEvent) -> None:
        """Count one source event (edgevision.health.SourceEvent) for its source."""
        self.source(event.source, event.uri).events[event.kind.value] += 1

    def add(self, timings: dict[str, float], class_names: list[str], nms_limits: int = 0,
            source: int | None = None) -> None:
        """One frame: stage timings (ms), the names to count, the graph's nms_limits bits, and
        the index of the source it came from (counted per source when given)."""
        self.frames += 1
        if source is not None:
            self.source(source).frames += 1
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
                "mean": float(np.mean(v)),
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
            "sources": [s.to_dict(self.seconds) for s in self.sources],
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
        for src in self.sources:
            if src.reconnects or src.events.keys() - {"ended"}:
                events = ", ".join(f"{k} {n}" for k, n in sorted(src.events.items()))
                lines.append(f"source {src.index} {src.uri}: {src.state}, {src.reconnects} reconnect(s); events: {events}")
        if self.per_class:
            per = ", ".join(f"{name} {n}" for name, n in self.per_class.most_common())
            lines.append(f"detections: {per}")
        else:
            lines.append("detections: none")
        return "\n".join(lines)
