"""Latency of artifacts on ONNX Runtime's CPU provider, measured interleaved.

The build machines are shared: measuring A for a minute and then B would compare two
different machine loads. Round-robin over the sessions, one inference each per round,
and compare medians of the same rounds.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.manifest import Manifest

from .calibration import graph_feeds


@dataclass
class Latency:
    """Milliseconds per inference at batch 1 (the whole graph: network, decode, NMS)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median_ms": round(self.median_ms, 2), "p10_ms": round(self.p10_ms, 2),
                "p90_ms": round(self.p90_ms, 2), "runs": self.runs}


def cpu_session(path: str | Path, threads: int | None = None) -> Any:
    ort = lazy_import("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def measure(
    paths: Mapping[str, str | Path], manifest: Manifest, image: np.ndarray, rounds: int = 10, warmup: int = 2,
    threads: int | None = None,
) -> dict[str, Latency]:
    """name -> Latency for each artifact, on one pre-processed image float32[1, 3, H, W]."""
    sessions = {name: cpu_session(p, threads) for name, p in paths.items()}
    feeds = {name: graph_feeds(manifest, image, [i.name for i in s.get_inputs()]) for name, s in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for r in range(warmup + rounds):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[name])
            if r >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: Latency(float(np.median(t)), float(np.percentile(t, 10)), float(np.percentile(t, 90)), len(t))
        for name, t in times.items()
    }


def machine() -> dict[str, Any]:
    """What the latencies were measured on."""
    ort = lazy_import("onnxruntime")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), cpu)
        flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
        isa = [f for f in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_fp16") if f" {f}" in flags]
    except OSError:
        isa = []
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": isa, "onnxruntime": ort.__version__, "provider": "CPUExecutionProvider"}
