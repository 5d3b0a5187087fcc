"""One CUDA stream and the async copies issued on it."""
from __future__ import annotations

from ._runtime import cudart
from .errors import check, check_value
from .memory import DeviceBuffer, PinnedBuffer


class Stream:
    """A non-blocking stream (it does not serialise with the legacy default stream, which
    CUDA graph capture forbids anyway). handle: the cudaStream_t as an int, for TensorRT."""

    def __init__(self) -> None:
        self._stream: cudart.cudaStream_t | None = check_value(
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags"
        )

    @property
    def raw(self) -> cudart.cudaStream_t:
        if self._stream is None:
            raise ValueError("the stream is closed")
        return self._stream

    @property
    def handle(self) -> int:
        return int(self.raw)

    def copy_to_device(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int) -> None:
        """Queue host -> device of the first nbytes."""
        _fits(nbytes, dst.nbytes, src.nbytes)
        check(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.raw),
              f"cudaMemcpyAsync(host -> device, {nbytes} bytes)")

    def copy_to_host(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int) -> None:
        """Queue device -> host of the first nbytes."""
        _fits(nbytes, dst.nbytes, src.nbytes)
        check(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.raw),
              f"cudaMemcpyAsync(device -> host, {nbytes} bytes)")

    def synchronize(self) -> None:
        check(cudart.cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            check(cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _fits(nbytes: int, *sizes: int) -> None:
    if nbytes < 0 or any(nbytes > s for s in sizes):
        raise ValueError(f"copy of {nbytes} bytes does not fit buffers of {sizes} bytes")
