"""Is there a usable NVIDIA GPU here? Answered without crashing on machines that have none.

cuda-python imports without a driver; cudaGetDeviceCount then returns an error code
(35, insufficient driver / 100, no device), and the driver API raises when libcuda is
missing. Both mean "no GPU". TensorRT is never touched here: constructing its runtime
without a GPU can hand back a broken object that segfaults later.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuStatus:
    """available: a CUDA device answered. reason: why not, in words, when it did not."""

    available: bool
    reason: str = ""
    name: str = ""
    compute_capability: tuple[int, int] = (0, 0)
    count: int = 0


@functools.lru_cache(maxsize=1)
def gpu_status() -> GpuStatus:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return GpuStatus(False, "cuda-python is not installed (pip install 'edgevision[trt]')")
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001 - missing libcudart / libcuda surface as various errors
        return GpuStatus(False, f"the CUDA runtime cannot load here ({type(exc).__name__}: {exc})")
    if int(err) != 0 or count == 0:
        return GpuStatus(False, f"no CUDA device (cudaGetDeviceCount: {getattr(err, 'name', err)})")
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return GpuStatus(False, f"cannot query CUDA device 0 ({getattr(err, 'name', err)})")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuStatus(True, "", name.strip("\x00").strip(), (props.major, props.minor), count)
