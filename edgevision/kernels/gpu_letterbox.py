"""Letterbox on the GPU: a uint8 BGR frame goes to the device as it is (a quarter of the
bytes of the float tensor) and letterbox.cu writes the network input in place.

Compiled once per process by NVRTC for the device's own architecture (a cubin: nothing
for the driver to JIT). Twin: letterbox_ref.letterbox_nchw, tested on the CPU.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..cuda import DeviceBuffer, PinnedBuffer, Stream
from ..errors import EdgeVisionError
from ..manifest import Preprocess
from ..preprocess import Letterbox, letterbox_geometry
from . import kernel_source
from .nvrtc import compile_kernel, target_for

KERNEL = "letterbox_bgr_to_nchw"
BLOCK = (32, 8)  # 256 threads; rows of 32 keep the NCHW stores coalesced


def _ok(result: tuple[Any, ...], what: str) -> Any:
    err = result[0]
    if int(err) != 0:
        raise EdgeVisionError(f"{what} failed: {getattr(err, 'name', err)}")
    return result[1] if len(result) > 1 else None


def supports(pre: Preprocess, input_dtype: np.dtype) -> str:
    """'' when the kernel computes exactly what the CPU path would, else why not."""
    if pre.resize != "letterbox" or pre.interpolation != "linear":
        return f"the kernel does bilinear letterbox only (manifest: {pre.resize}, {pre.interpolation})"
    if input_dtype != np.float32:
        return f"the kernel writes float32 and the engine's input is {input_dtype}"
    return ""


class GpuLetterbox:
    """Frames -> slots of a float32[B, 3, H, W] device tensor, queued on a stream.

    compute_capability: (major, minor) of the device, e.g. (8, 7) on Orin. The calling
    thread must have the device's primary context current (cudaSetDevice does that).
    """

    def __init__(self, compute_capability: tuple[int, int]) -> None:
        arch = target_for(compute_capability)
        compiled = compile_kernel(kernel_source("letterbox"), "letterbox", arch)
        from cuda.bindings import driver as cu  # imported on use: the runtime imports with numpy alone

        self._module: cu.CUmodule | None = _ok(cu.cuModuleLoadData(compiled.cubin), f"cuModuleLoadData(letterbox, {arch})")
        self._function = _ok(cu.cuModuleGetFunction(self._module, KERNEL.encode()), f"cuModuleGetFunction({KERNEL})")
        # One pinned + device frame buffer per batch slot, so queued uploads never share memory.
        self._slots: list[tuple[PinnedBuffer, DeviceBuffer]] = []

    def _staging(self, slot: int, nbytes: int) -> tuple[PinnedBuffer, DeviceBuffer]:
        while len(self._slots) <= slot:
            self._slots.append((PinnedBuffer(nbytes), DeviceBuffer(nbytes)))
        host, dev = self._slots[slot]
        if host.nbytes < nbytes:  # a larger frame than before: grow this slot
            host.free()
            dev.free()
            host, dev = self._slots[slot] = (PinnedBuffer(nbytes), DeviceBuffer(nbytes))
        return host, dev

    def enqueue(self, frame: np.ndarray, slot: int, dst_ptr: int, input_hw: tuple[int, int], pre: Preprocess,
                stream: Stream) -> Letterbox:
        """Queue upload + kernel for one frame into float32[3, H, W] at dst_ptr (batch slot `slot`).
        The caller synchronises the stream before it enqueues the same slot again."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EdgeVisionError(f"expected a uint8 HxWx3 BGR frame, got {frame.dtype} array of shape {frame.shape}")
        h, w = frame.shape[:2]
        out_h, out_w = input_hw
        geo = letterbox_geometry((h, w), input_hw)
        host, dev = self._staging(slot, frame.nbytes)
        host.view(np.uint8, frame.shape)[...] = frame
        stream.copy_to_device(dev, host, frame.nbytes)
        mean = [float(m) for m in pre.mean]
        inv_std = [float(np.float32(1) / np.float32(s)) for s in pre.std]  # float32, as the twin
        values = (dev.ptr, w, h, w * 3, dst_ptr, out_w, out_h, geo.left, geo.top, geo.new_hw[1], geo.new_hw[0],
                  float(pre.pad_value), int(pre.color == "RGB"), float(pre.scale), *mean, *inv_std)
        types = (ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                 ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                 ctypes.c_int, ctypes.c_float, *([ctypes.c_float] * 6))
        grid = ((out_w + BLOCK[0] - 1) // BLOCK[0], (out_h + BLOCK[1] - 1) // BLOCK[1])
        from cuda.bindings import driver as cu

        _ok(cu.cuLaunchKernel(self._function, grid[0], grid[1], 1, BLOCK[0], BLOCK[1], 1, 0,
                                     stream.handle, (values, types), 0), f"cuLaunchKernel({KERNEL})")
        return geo

    def close(self) -> None:
        for host, dev in self._slots:
            host.free()
            dev.free()
        self._slots.clear()
        if self._module is not None:
            from cuda.bindings import driver as cu

            _ok(cu.cuModuleUnload(self._module), "cuModuleUnload(letterbox)")
            self._module = None
