"""Stubs for the few functions of cuda-python's driver API (cuda.bindings.driver, 12.x) that
edgevision calls to load and launch its NVRTC-compiled kernels. tests/test_kernels.py
checks them against the installed module (parameter names, returned tuple sizes)."""
from typing import Any, ClassVar

class CUresult:
    CUDA_SUCCESS: ClassVar[CUresult]
    name: str
    value: int
    def __int__(self) -> int: ...

class CUmodule:
    def __init__(self, init_value: int = 0) -> None: ...
    def __int__(self) -> int: ...

class CUfunction:
    def __init__(self, init_value: int = 0) -> None: ...
    def __int__(self) -> int: ...

class CUstream:
    def __init__(self, init_value: int = 0) -> None: ...
    def __int__(self) -> int: ...

def cuModuleLoadData(image: bytes) -> tuple[CUresult, CUmodule]: ...
def cuModuleGetFunction(hmod: CUmodule, name: bytes) -> tuple[CUresult, CUfunction]: ...
def cuModuleUnload(hmod: CUmodule) -> tuple[CUresult]: ...
def cuLaunchKernel(
    f: CUfunction,
    gridDimX: int,
    gridDimY: int,
    gridDimZ: int,
    blockDimX: int,
    blockDimY: int,
    blockDimZ: int,
    sharedMemBytes: int,
    hStream: CUstream | int,
    kernelParams: tuple[tuple[Any, ...], tuple[Any, ...]] | int,
    extra: int,
) -> tuple[CUresult]: ...
