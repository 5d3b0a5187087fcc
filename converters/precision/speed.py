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
from edgevision.backends.onnxruntime import make_session
from edgevision.device import u8s8_saturates



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
    """An ONNX Runtime session on the CPU alone (what the speed figures are measured on)."""
    return make_session(path, threads)


def measure_runs(
    runs: Mapping[str, tuple[str | Path, str, Mapping[str, Any]]], image: np.ndarray, rounds: int = 10, warmup: int = 2,
) -> dict[str, Latency]:
    """name -> Latency of each (artifact, backend, options) through the runtime's own backends,
    one inference each per round, round-robin (what `edgevision run` runs, compared under one load).
    image: one pre-processed float32[1, 3, H, W]."""
    import edgevision

    models: dict[str, Any] = {}
    times: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for name, (path, backend, opts) in runs.items():
            models[name] = edgevision.load(path, backend=backend, masks=False, **dict(opts))
        for r in range(warmup + rounds):
            for name, model in models.items():
                t0 = time.perf_counter()
                model.infer(image)
                if r >= warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    finally:
        for model in models.values():
            model.close()
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
        isa = [f for f in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "avx512_fp16") if f" {f}" in flags]
    except OSError:
        isa = []
    info = {"cpu": cpu, "cores": os.cpu_count(), "isa": isa, "onnxruntime": ort.__version__, "provider": "CPUExecutionProvider",
            # which integer kernels the INT8 figures ran on (u8u8: exact on x86 without VNNI, slower)
            "onnxruntime_int8_kernels": "u8u8 (no VNNI)" if u8s8_saturates() else "u8s8"}
    try:
        import openvino

        info["openvino"] = openvino.__version__.split("-")[0]
    except ImportError:
        pass
    return info
