"""Device buffers and pinned (page-locked) host buffers, allocated once and reused.

Pinned memory is what makes cudaMemcpyAsync really asynchronous: from pageable memory
the driver stages through a pinned bounce buffer and the copy blocks the host thread.
"""
from __future__ import annotations

import ctypes

import numpy as np

from ._runtime import cudart
from .errors import check, check_value


class DeviceBuffer:
    """nbytes of device memory. ptr: the device address (int), for TensorRT's set_tensor_address."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"DeviceBuffer needs a positive size, got {nbytes}")
        self.nbytes = nbytes
        self.ptr: int = check_value(cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)")

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            check(cudart.cudaFree(ptr), "cudaFree")

    def __del__(self) -> None:
        # Best effort at interpreter exit, when the CUDA runtime may already be gone.
        try:
            self.free()
        except Exception:  # noqa: BLE001
            pass


class PinnedBuffer:
    """nbytes of page-locked host memory, seen from numpy through view()."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"PinnedBuffer needs a positive size, got {nbytes}")
        self.nbytes = nbytes
        self.ptr: int = check_value(cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes} bytes)")
        # uint8[nbytes] over the pinned block; it does not own the memory (free() does).
        self._bytes = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(self.ptr))

    def view(self, dtype: np.dtype | type, shape: tuple[int, ...]) -> np.ndarray:
        """An array of `shape` over the start of the buffer (no copy). Raises if it does not fit."""
        dt = np.dtype(dtype)
        need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if need > self.nbytes:
            raise ValueError(f"{shape} {dt} needs {need} bytes; the pinned buffer holds {self.nbytes}")
        return self._bytes[:need].view(dt).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self._bytes = np.zeros(0, np.uint8)
            check(cudart.cudaFreeHost(ptr), "cudaFreeHost")

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # noqa: BLE001
            pass
