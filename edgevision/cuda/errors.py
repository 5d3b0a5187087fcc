"""CUDA error codes -> CudaError.

cuda-python returns (error, *values) from every call instead of raising; check() and
check_value() turn a non-success code into CudaError naming the call and the error.
"""
from __future__ import annotations

from typing import TypeVar

from ..errors import EdgeVisionError
from ._runtime import cudart

T = TypeVar("T")

# cudaError_t values that mean "there is no usable GPU here", not "the program is wrong".
NO_GPU_CODES = {35: "cudaErrorInsufficientDriver", 100: "cudaErrorNoDevice", 999: "cudaErrorUnknown"}


class CudaError(EdgeVisionError):
    """A CUDA runtime call failed. code: the cudaError_t value (35: no or too old driver, 100: no device)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    @property
    def no_gpu(self) -> bool:
        return self.code in NO_GPU_CODES


def describe(err: cudart.cudaError_t) -> str:
    """'cudaErrorInsufficientDriver (CUDA driver version is insufficient ...)' for an error code."""
    ok, text = cudart.cudaGetErrorString(err)
    detail = text.decode(errors="replace") if int(ok) == 0 else ""
    return f"{err.name} ({detail})" if detail else err.name


def check(result: tuple[cudart.cudaError_t], what: str) -> None:
    """Raise CudaError unless a call that returns only `(err,)` succeeded."""
    _raise_on(result[0], what)


def check_value(result: tuple[cudart.cudaError_t, T], what: str) -> T:
    """The value of a successful `(err, value)` call; CudaError otherwise."""
    _raise_on(result[0], what)
    return result[1]


def _raise_on(err: cudart.cudaError_t, what: str) -> None:
    code = int(err)
    if code != 0:
        hint = " (no usable NVIDIA GPU or driver here)" if code in NO_GPU_CODES else ""
        raise CudaError(f"{what} failed: {describe(err)}{hint}", code)
