"""Is there a usable NVIDIA GPU here? Answered without crashing on machines that have none.
And does this CPU multiply 8-bit integers exactly (u8s8_saturates)? How many cores may this
process use (usable_cores)?

cuda-python imports without a driver; cudaGetDeviceCount then returns an error code
(35, insufficient driver / 100, no device), and the driver API raises when libcuda is
missing. Both mean "no GPU". TensorRT is never touched here: constructing its runtime
without a GPU can hand back a broken object that segfaults later.
"""
from __future__ import annotations

import functools
import os
import platform
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


# CPU flags (Linux /proc/cpuinfo names) of the instructions that multiply u8 x s8 into int32 exactly.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def u8s8_saturates() -> bool:
    """Would ONNX Runtime's fast uint8-activation x int8-weight kernels lose accuracy on this CPU?

    On x86-64 without VNNI (AVX2, AVX-512 without VNNI), MLAS multiplies u8 x s8 with
    `vpmaddubsw`, which adds two products into a *saturating* int16: 255 * 127 * 2 > 32767. With
    8-bit weights that clips sums whenever activations and weights are both large (measured on
    an AVX2-only EPYC, yolo11n-seg's CPU INT8 file: F1 0.85 vs FP32 instead of 0.96). VNNI /
    AMX multiply into int32 exactly. Not x86: no such kernel. An x86 CPU whose flags cannot be
    read counts as saturating: the exact kernels then cost speed, never accuracy.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        flags = None
    return flags is None or not any(flag in flags for flag in VNNI_FLAGS)


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, a container's cpuset, a
    pinned test worker), not the machine's count. Runtimes left to their defaults size their
    thread pools by the machine (ONNX Runtime: all physical cores), and on a process pinned to
    fewer cores the extra threads only take turns and spin (a test file pinned to one core of two:
    70 s with ONNX Runtime's and torch's default threads, 66 s with one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def restricted_threads() -> int | None:
    """usable_cores() where the process may use fewer cores than the machine has, else None
    (the runtimes' own defaults stand: they count physical cores, without hyper-threads)."""
    n = usable_cores()
    return n if n < (os.cpu_count() or n) else None
