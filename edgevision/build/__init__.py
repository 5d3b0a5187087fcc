"""The TensorRT engine builder: converted ONNX artifact -> engine + JSON sidecar, built on
the device that will run it (engines are tied to their GPU and TensorRT version).

    from edgevision.build import BuildOptions, build_engine
    result = build_engine("yolo11n.onnx", options=BuildOptions(precision="fp16"))

This is the build side that ships with the runtime: it runs on a Jetson, so it never
imports torch (tests/test_import_boundary.py), and the runtime never imports it. It
writes what the TensorRT backend reads (edgevision.backends.tensorrt: the sidecar, the
engine's key, which TensorRT is installed).

Decisions are pure Python and unit-tested without a GPU: precision path (precision.py),
optimization profiles (profiles.py), DLA fallbacks (dla.py), the graph's summary
(onnx_graph.py), build progress (progress.py), the TensorRT versions a graph is known to
need (requirements.py). TensorRT calls live in builder.py and
progress_monitor.py only. Nothing here imports TensorRT, onnx or CUDA at import time.
"""
from .engine import BuildOptions, BuildResult, build_engine, default_engine_path
from .profiles import BatchRange

__all__ = ["BatchRange", "BuildOptions", "BuildResult", "build_engine", "default_engine_path"]
