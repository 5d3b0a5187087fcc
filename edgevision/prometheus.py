"""Run statistics in the Prometheus text exposition format (version 0.0.4), for GET /metrics.

Reads the dict that `RunStats.to_dict()` returns (with its "sources" list; see webpreview.py,
which fills one in where the pipeline reports none). Every per-source series carries the
labels source (index) and uri; stage latencies carry stage and quantile. Families are
written whole (HELP, TYPE, then their samples), label values escaped, unknown values (None)
left out rather than written as 0, so a missing number never reads as a real one.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .health import SourceState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, object]
Sample = tuple[Labels, object]


def escape_label(value: object) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int) -> str:
    """A sample value: integers as integers, floats as Go's ParseFloat reads them (NaN, +Inf, -Inf)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _number(value: object) -> float | int | None:
    """The sample value of a statistic, or None where it is unknown or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """One metric family's lines; no lines at all when none of its samples has a value."""
    lines = []
    for labels, raw in samples:
        value = _number(raw)
        if value is None:
            continue
        body = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{body}}} {format_value(value)}" if body else f"{name} {format_value(value)}")
    if not lines:
        return []
    return [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}", *lines]


def prometheus_text(stats: Mapping[str, Any]) -> str:
    """stats: RunStats.to_dict() plus "sources" -> the /metrics body (ends with a newline)."""
    sources = list(stats.get("sources") or [])

    def per_source(key: str) -> list[Sample]:
        return [({"source": s.get("index", i), "uri": s.get("uri") or ""}, s.get(key)) for i, s in enumerate(sources)]

    def source_labels(i: int, s: Mapping[str, Any], **extra: object) -> dict[str, object]:
        return {"source": s.get("index", i), "uri": s.get("uri") or "", **extra}

    events = [(source_labels(i, s, kind=kind), n) for i, s in enumerate(sources)
              for kind, n in sorted((s.get("events") or {}).items())]
    # queue: a depth, or {queue name: depth} where a source has several
    queues: list[Sample] = []
    for i, s in enumerate(sources):
        q = s.get("queue")
        if isinstance(q, Mapping):
            queues += [(source_labels(i, s, queue=name), depth) for name, depth in sorted(q.items())]
        else:
            queues.append((source_labels(i, s), q))
    # state as an enum: one series per state, 1 for the current one (the Prometheus way to expose a state)
    states = [(source_labels(i, s, state=state.value), int(s.get("state") == state.value))
              for i, s in enumerate(sources) if s.get("state") for state in SourceState]
    stages = [({"stage": stage, "quantile": q}, d.get(key))
              for stage, d in (stats.get("stages_ms") or {}).items() for q, key in (("0.5", "p50"), ("0.99", "p99"))]
    means = [({"stage": stage}, d.get("mean")) for stage, d in (stats.get("stages_ms") or {}).items()]
    lines = [
        *family("edgevision_frames_total", "counter", "Frames processed, per source.", per_source("frames")),
        *family("edgevision_fps", "gauge", "Frames processed per second, per source.", per_source("fps")),
        *family("edgevision_dropped_frames_total", "counter",
                "Frames a live source dropped because inference was behind, per source.", per_source("dropped")),
        *family("edgevision_reconnects_total", "counter", "Reconnections of a source.", per_source("reconnects")),
        *family("edgevision_source_events_total", "counter", "Health events of a source, by kind.", events),
        *family("edgevision_queue_depth", "gauge", "Frames waiting in a source's queue.", queues),
        *family("edgevision_source_state", "gauge", "1 for the state a source is in, 0 for the others.", states),
        *family("edgevision_stage_ms", "gauge", "Per-stage latency quantiles in milliseconds, over the run.", stages),
        *family("edgevision_stage_mean_ms", "gauge", "Per-stage mean latency in milliseconds, over the run.", means),
        *family("edgevision_run_seconds", "gauge", "Seconds since the run started.", [({}, stats.get("seconds"))]),
    ]
    return "\n".join(lines) + "\n"
