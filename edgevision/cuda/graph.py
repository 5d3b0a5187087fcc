"""CUDA graph capture: record the work a function queues on a stream, replay it in one launch.

For a TensorRT engine with fixed shapes this replaces dozens of kernel launches (and
the host-side enqueue) by one cudaGraphLaunch, which matters on Jetson's slower CPU.
A graph freezes the shapes and addresses it was captured with, so callers keep one per
input shape and reuse the same buffers.
"""
from __future__ import annotations

from collections.abc import Callable

from ._runtime import cudart
from .errors import CudaError, check, check_value
from .stream import Stream


class CudaGraph:
    """An instantiated graph of the work `record(stream)` queued during capture."""

    def __init__(self, graph: cudart.cudaGraph_t, exec_: cudart.cudaGraphExec_t) -> None:
        self._graph: cudart.cudaGraph_t | None = graph
        self._exec: cudart.cudaGraphExec_t | None = exec_

    @classmethod
    def capture(cls, stream: Stream, record: Callable[[Stream], object]) -> CudaGraph:
        """Capture what `record` queues on `stream` (nothing runs during capture).

        Thread-local mode: other threads' CUDA calls (other cameras' model instances) are
        neither captured nor forbidden while this thread captures.
        """
        check(cudart.cudaStreamBeginCapture(stream.raw, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture")
        try:
            record(stream)
        except BaseException:
            # End the capture whatever happened, or the stream stays unusable.
            cudart.cudaStreamEndCapture(stream.raw)
            raise
        graph = check_value(cudart.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
        try:
            exec_ = check_value(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except CudaError:
            cudart.cudaGraphDestroy(graph)
            raise
        return cls(graph, exec_)

    def launch(self, stream: Stream) -> None:
        if self._exec is None:
            raise ValueError("the CUDA graph is closed")
        check(cudart.cudaGraphLaunch(self._exec, stream.raw), "cudaGraphLaunch")

    def close(self) -> None:
        if self._exec is not None:
            exec_, self._exec = self._exec, None
            check(cudart.cudaGraphExecDestroy(exec_), "cudaGraphExecDestroy")
        if self._graph is not None:
            graph, self._graph = self._graph, None
            check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
