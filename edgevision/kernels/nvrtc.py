"""Compile the kernels with NVRTC, for the GPU at hand or (in CI) for every Jetson.

NVRTC must be CUDA 12's: JetPack 6 drivers are CUDA 12.6, and NVRTC 13 emits PTX they
cannot load and refuses sm_72/sm_53. cuda-bindings picks whichever libnvrtc it finds
first (a CUDA 13 one comes with torch's wheels), so the CUDA 12 library is loaded
explicitly before `cuda.bindings.nvrtc` is imported.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import EdgeVisionError

# Where a CUDA 12 NVRTC lives: an explicit override, JetPack / a CUDA toolkit, the pip wheel.
_CANDIDATES = (
    os.environ.get("EDGEVISION_NVRTC", ""),
    "/usr/local/cuda/lib64/libnvrtc.so.12",
    "/usr/local/cuda-12*/lib64/libnvrtc.so.12",
    *(f"{p}/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" for p in sys.path if p),
)
WANT_MAJOR = 12


@dataclass(frozen=True)
class CompiledKernel:
    """arch: "sm_87" (cubin: a device binary) or "compute_90" (cubin holds PTX for the driver
    to JIT, for GPUs newer than this NVRTC knows). log: NVRTC's log (ptxas resource usage)."""

    name: str
    arch: str
    cubin: bytes
    log: str


@lru_cache(maxsize=1)
def nvrtc() -> Any:
    """cuda.bindings.nvrtc, bound to a CUDA 12 libnvrtc."""
    for pattern in _CANDIDATES:
        paths = sorted(glob.glob(pattern), reverse=True) if pattern else []  # newest cuda-12.x first
        if paths:
            try:
                # Loaded first, so cuda-bindings finds this libnvrtc already in the process.
                ctypes.CDLL(paths[0], mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise EdgeVisionError(f"cannot load NVRTC from {paths[0]}: {exc}") from exc
            break
    try:
        from cuda.bindings import nvrtc as mod  # type: ignore[attr-defined]  # no stubs: NVRTC is only called here
    except ImportError as exc:
        raise EdgeVisionError("compiling CUDA kernels needs cuda-python: pip install 'edgevision[trt]'") from exc
    err, major, minor = mod.nvrtcVersion()
    if int(err) != 0 or major != WANT_MAJOR:
        raise EdgeVisionError(
            f"found NVRTC {major}.{minor}; kernels are compiled with CUDA {WANT_MAJOR}'s NVRTC "
            f"(pip install 'nvidia-cuda-nvrtc-cu12==12.6.*', or set EDGEVISION_NVRTC to a libnvrtc.so.12)"
        )
    return mod


def _check(result: Any, what: str, log: str = "") -> None:
    if int(result) != 0:
        raise EdgeVisionError(f"NVRTC {what} failed ({result.name if hasattr(result, 'name') else result}){': ' + log if log else ''}")


def supported_archs() -> list[int]:
    """Real architectures this NVRTC can compile for, e.g. [50, 52, ..., 90] for CUDA 12.6."""
    mod = nvrtc()
    err, n = mod.nvrtcGetNumSupportedArchs()
    _check(err, "nvrtcGetNumSupportedArchs")
    err, archs = mod.nvrtcGetSupportedArchs()
    _check(err, "nvrtcGetSupportedArchs")
    return sorted(int(a) for a in archs)


def target_for(compute_capability: tuple[int, int]) -> str:
    """A cubin for a GPU this NVRTC knows ("sm_87"), else PTX of the newest architecture it
    knows ("compute_90"), which the driver of a newer GPU (Blackwell, Thor) compiles itself."""
    cc = compute_capability[0] * 10 + compute_capability[1]
    archs = supported_archs()
    return f"sm_{cc}" if cc in archs else f"compute_{max(a for a in archs if a <= cc) if min(archs) <= cc else archs[0]}"


@lru_cache(maxsize=16)
def compile_kernel(source: str, name: str, arch: str) -> CompiledKernel:
    """CUDA C source -> cubin for `arch` ("sm_87"; "compute_90" gives PTX), with ptxas resource
    usage in the log. Cached: every model instance on a device shares one compilation."""
    mod = nvrtc()
    err, prog = mod.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], [])
    _check(err, "nvrtcCreateProgram")
    try:
        # No fast math and no fused multiply-add: the numpy twin must match bit for bit.
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++14", b"--fmad=false"]
        if arch.startswith("sm_"):
            opts.append(b"--ptxas-options=-v")  # register / spill report in the log
        (result,) = mod.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = mod.nvrtcGetProgramLogSize(prog)
        buf = bytearray(size)  # NVRTC writes into it: never an (interned) bytes object
        (err,) = mod.nvrtcGetProgramLog(prog, buf)
        log = buf.decode(errors="replace").rstrip("\x00 \n")
        _check(result, f"compilation of {name} for {arch}", log)
        ptx = arch.startswith("compute_")
        get_size, get = (mod.nvrtcGetPTXSize, mod.nvrtcGetPTX) if ptx else (mod.nvrtcGetCUBINSize, mod.nvrtcGetCUBIN)
        err, size = get_size(prog)
        _check(err, "getting the compiled size")
        binary = bytearray(size)
        (err,) = get(prog, binary)
        _check(err, "getting the compiled code")
        return CompiledKernel(name, arch, bytes(binary), log)
    finally:
        mod.nvrtcDestroyProgram(prog)

