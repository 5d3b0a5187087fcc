"""CUDA events: points in a stream's work, for GPU-side timing and cross-stream ordering.

Host timers around asynchronous work measure when the host queued it, not when the GPU
ran it; two events recorded on the stream bracket the GPU's own time (what the per-stage
timings of the TensorRT path need).
"""
from __future__ import annotations

from ._runtime import cudart
from .errors import check, check_value
from .stream import Stream


class Event:
    """One cudaEvent_t. timing=False makes a lighter event that only orders work."""

    def __init__(self, timing: bool = True) -> None:
        flags = cudart.cudaEventDefault if timing else cudart.cudaEventDisableTiming
        self._event: cudart.cudaEvent_t | None = check_value(cudart.cudaEventCreateWithFlags(flags),
                                                             "cudaEventCreateWithFlags")

    @property
    def raw(self) -> cudart.cudaEvent_t:
        if self._event is None:
            raise ValueError("the event is closed")
        return self._event

    def record(self, stream: Stream) -> None:
        """Mark the point after everything queued on `stream` so far."""
        check(cudart.cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

    def done(self) -> bool:
        """Has the GPU passed this point? (cudaEventQuery: never blocks)."""
        err = cudart.cudaEventQuery(self.raw)[0]
        if int(err) == int(cudart.cudaError_t.cudaErrorNotReady):
            return False
        check((err,), "cudaEventQuery")
        return True

    def synchronize(self) -> None:
        check(cudart.cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def elapsed_ms(self, start: Event) -> float:
        """GPU milliseconds from `start` to this event (both recorded, this one completed)."""
        return float(check_value(cudart.cudaEventElapsedTime(start.raw, self.raw), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self._event is not None:
            event, self._event = self._event, None
            check(cudart.cudaEventDestroy(event), "cudaEventDestroy")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
