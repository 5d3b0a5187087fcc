"""Thin CUDA helpers over cuda-python (cuda.bindings.runtime): device buffers, pinned
host memory, a stream with async copies, events, and CUDA graph capture.

Nothing here runs at import time: cuda-python is imported on the first CUDA call, and
every failed call raises CudaError (an EdgeVisionError) naming the call and the CUDA
error, e.g. "cudaMalloc(1024 bytes): cudaErrorInsufficientDriver (...)" on a machine
without a driver. Decisions live elsewhere; these classes only own handles.
"""
from .errors import CudaError
from .event import Event
from .graph import CudaGraph
from .memory import DeviceBuffer, PinnedBuffer
from .stream import Stream

__all__ = ["CudaError", "Event", "CudaGraph", "DeviceBuffer", "PinnedBuffer", "Stream"]
