"""Compile the kernels with NVRTC, for the GPU at hand or (in CI) for every Jetson.

Two CUDA generations meet edgevision: CUDA 12 (JetPack 6's driver is 12.6; cuda-bindings 12)
and CUDA 13 (desktop drivers; cuda-bindings 13). NVRTC 12 is preferred wherever it is found:
its cubins and PTX load on any driver from 12 up, and it is the only one that still compiles
for sm_72 / sm_53 (NVRTC 13 refuses them, and JetPack 6's driver cannot load its PTX). NVRTC
13 serves where it is all there is and the driver is a CUDA 13 one (a desktop with
cuda-bindings 13 and no CUDA 12 libraries). cuda-bindings binds whichever libnvrtc is
already in the process, so the chosen library is loaded explicitly before
`cuda.bindings.nvrtc` is imported; cuda-bindings 12 takes only libnvrtc.so.12.
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

# Where each NVRTC generation lives: JetPack / a CUDA toolkit, then the pip wheels
# (nvidia-cuda-nvrtc-cu12 and CUDA 13's nvidia-cuda-nvrtc lay their files out differently).
LIB_PATTERNS: dict[int, tuple[str, ...]] = {
    12: ("/usr/local/cuda/lib64/libnvrtc.so.12", "/usr/local/cuda-12*/lib64/libnvrtc.so.12",
         "{site}/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"),
    13: ("/usr/local/cuda/lib64/libnvrtc.so.13", "/usr/local/cuda-13*/lib64/libnvrtc.so.13",
         "{site}/nvidia/cu13/lib/libnvrtc.so.13", "{site}/nvidia/cuda_nvrtc/lib/libnvrtc.so.13"),
}
JETSON_MAJOR = 12  # the NVRTC that compiles for every Jetson the project targets
BINDINGS_ACCEPT = {12: (12,), 13: (12, 13)}  # libnvrtc majors each cuda-bindings major binds


@dataclass(frozen=True)
class CompiledKernel:
    """arch: "sm_87" (cubin: a device binary) or "compute_90" (cubin holds PTX for the driver
    to JIT, for GPUs newer than this NVRTC knows). log: NVRTC's log (ptxas resource usage)."""

    name: str
    arch: str
    cubin: bytes
    log: str


def find_libnvrtc(major: int, search: list[str] | None = None) -> list[str]:
    """Paths of libnvrtc.so.<major> on this machine, best first (newest toolkit, then pip)."""
    found: list[str] = []
    for pattern in LIB_PATTERNS[major]:
        roots = (search if search is not None else [p for p in sys.path if p]) if "{site}" in pattern else [""]
        for root in roots:
            found += sorted(glob.glob(pattern.format(site=root)), reverse=True)  # newest cuda-1x.y first
    return list(dict.fromkeys(found))


def choose_libnvrtc(bindings_major: int, driver_major: int, found: dict[int, list[str]]) -> tuple[int, str]:
    """(major, path) of the NVRTC to load. driver_major: the CUDA version the driver supports
    (0: no driver here, so compiling only). Raises EdgeVisionError saying what is missing."""
    accepted = BINDINGS_ACCEPT.get(bindings_major, (bindings_major,))
    usable = [m for m in accepted if found.get(m) and (driver_major == 0 or m <= driver_major)]
    if usable:
        major = min(usable)  # 12 first: it serves every driver and every Jetson
        return major, found[major][0]
    have = ", ".join(f"libnvrtc.so.{m}" for m in sorted(found) if found[m]) or "none"
    need = " or ".join(f"libnvrtc.so.{m}" for m in accepted if driver_major == 0 or m <= driver_major) or "nothing usable"
    raise EdgeVisionError(
        f"no usable NVRTC: cuda-bindings {bindings_major} with a CUDA {driver_major or '(no driver)'} driver needs "
        f"{need}, found {have}. Install pip install 'nvidia-cuda-nvrtc-cu12==12.6.*' (JetPack 6 and any CUDA 12+ "
        "driver), or set EDGEVISION_NVRTC to a libnvrtc.so"
    )


def _driver_major() -> int:
    """The CUDA major version the installed driver supports; 0 without a driver."""
    try:
        from ..cuda._runtime import cudart

        err, version = cudart.cudaDriverGetVersion()
        return int(version) // 1000 if int(err) == 0 else 0
    except Exception:  # noqa: BLE001 - no cuda-python or no libcuda: no driver to satisfy
        return 0


def _bindings_major() -> int:
    try:
        import cuda.bindings as bindings
    except ImportError as exc:
        raise EdgeVisionError("compiling CUDA kernels needs cuda-python: pip install 'edgevision[trt]'") from exc
    return int(str(getattr(bindings, "__version__", "12")).split(".")[0])


@lru_cache(maxsize=1)
def nvrtc() -> Any:
    """cuda.bindings.nvrtc, bound to the libnvrtc chosen by choose_libnvrtc (or EDGEVISION_NVRTC)."""
    path = os.environ.get("EDGEVISION_NVRTC", "")
    if not path:
        found = {m: find_libnvrtc(m) for m in LIB_PATTERNS}
        _, path = choose_libnvrtc(_bindings_major(), _driver_major(), found)
    try:
        # NVRTC opens its builtins library by name at compile time; pip wheels put it beside
        # libnvrtc without a search path that finds it, so it is loaded first, then libnvrtc
        # (cuda-bindings then finds this libnvrtc already in the process).
        for builtins in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*"))):
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise EdgeVisionError(f"cannot load NVRTC from {path}: {exc}") from exc
    try:
        from cuda.bindings import nvrtc as mod  # type: ignore[attr-defined]  # no stubs: NVRTC is only called here
    except ImportError as exc:
        raise EdgeVisionError("compiling CUDA kernels needs cuda-python: pip install 'edgevision[trt]'") from exc
    err, major, minor = mod.nvrtcVersion()
    if int(err) != 0 or major not in LIB_PATTERNS:
        raise EdgeVisionError(f"NVRTC {major}.{minor} from {path} is not CUDA 12 or 13, which edgevision compiles with")
    return mod


def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC in use, e.g. (12, 6)."""
    _, major, minor = nvrtc().nvrtcVersion()
    return int(major), int(minor)


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
    if cc < archs[0]:
        major, minor = nvrtc_version()
        raise EdgeVisionError(f"NVRTC {major}.{minor} cannot compile for sm_{cc} (it knows sm_{archs[0]} and newer); "
                              "use CUDA 12's NVRTC: pip install 'nvidia-cuda-nvrtc-cu12==12.6.*'")
    return f"sm_{cc}" if cc in archs else f"compute_{max(a for a in archs if a <= cc)}"


@lru_cache(maxsize=16)
def compile_kernel(source: str, name: str, arch: str) -> CompiledKernel:
    """CUDA C source -> cubin for `arch` ("sm_87"; "compute_90" gives PTX), with ptxas resource
    usage in the log. Cached: every model instance on a device shares one compilation."""
    mod = nvrtc()
    number = int(arch.split("_")[1]) if arch.split("_")[-1].isdigit() else 0
    archs = supported_archs()
    if number and number not in archs:
        major, minor = nvrtc_version()
        jetson = f" Jetson targets need CUDA {JETSON_MAJOR}'s NVRTC: pip install 'nvidia-cuda-nvrtc-cu12==12.6.*'" if major > JETSON_MAJOR else ""
        raise EdgeVisionError(f"NVRTC {major}.{minor} cannot compile for {arch} (it knows sm_{archs[0]}..sm_{archs[-1]}).{jetson}")
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

