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
from pathlib import Path
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
    """arch: e.g. "sm_87". cubin: the device binary. log: NVRTC's log (ptxas resource usage)."""

    name: str
    arch: str
    cubin: bytes
    log: str


@lru_cache(maxsize=1)
def nvrtc() -> Any:
    """cuda.bindings.nvrtc, bound to a CUDA 12 libnvrtc."""
    for pattern in _CANDIDATES:
        for path in sorted(glob.glob(pattern)) if pattern else ():
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            break
        else:
            continue
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


def compile_kernel(source: str, name: str, arch: str) -> CompiledKernel:
    """CUDA C source -> cubin for `arch` ("sm_87"), with ptxas resource usage in the log."""
    mod = nvrtc()
    err, prog = mod.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], [])
    _check(err, "nvrtcCreateProgram")
    try:
        # No fast math and no fused multiply-add: the numpy twin must match bit for bit.
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++14", b"--fmad=false", b"--ptxas-options=-v"]
        (result,) = mod.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = mod.nvrtcGetProgramLogSize(prog)
        buf = b" " * size
        (err,) = mod.nvrtcGetProgramLog(prog, buf)
        log = buf.decode(errors="replace").rstrip("\x00 \n")
        _check(result, f"compilation of {name} for {arch}", log)
        err, size = mod.nvrtcGetCUBINSize(prog)
        _check(err, "nvrtcGetCUBINSize")
        cubin = b" " * size
        (err,) = mod.nvrtcGetCUBIN(prog, cubin)
        _check(err, "nvrtcGetCUBIN")
        return CompiledKernel(name, arch, bytes(cubin), log)
    finally:
        mod.nvrtcDestroyProgram(prog)


def kernel_path(name: str) -> Path:
    return Path(__file__).with_name(f"{name}.cu")
