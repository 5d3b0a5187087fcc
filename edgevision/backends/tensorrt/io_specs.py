"""An engine's inputs and outputs, and checking what a caller feeds them. Pure Python + numpy.

TensorRT's v3 API addresses tensors by name. Device and pinned buffers are sized once
for the largest shapes the optimization profile allows, so checking a feed against the
profile here is also what keeps every copy inside its buffer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import EdgeVisionError, closest

# TensorRT DataType member name -> numpy dtype (those a detector's I/O can use).
TRT_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
}


def numpy_dtype(trt_name: str, tensor: str) -> np.dtype:
    try:
        return TRT_DTYPES[trt_name]
    except KeyError:
        raise EdgeVisionError(f"tensor {tensor!r} has TensorRT type {trt_name}, which edgevision cannot feed or read") from None


@dataclass(frozen=True)
class TensorSpec:
    """One I/O tensor. shape: as the engine declares it (-1 dynamic). min_shape / max_shape:
    the profile's range for inputs; for outputs, the shape at the largest input shapes."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    min_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    @property
    def max_nbytes(self) -> int:
        return max(int(np.prod(self.max_shape, dtype=np.int64)) * self.dtype.itemsize, 1)

    def nbytes(self, shape: Sequence[int]) -> int:
        return int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize


def check_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C-contiguous arrays of the engine's dtypes, one per input, each within the profile.

    Raises EdgeVisionError naming the input and the allowed range (e.g. a batch above
    the engine's max batch), never lets TensorRT fail on it.
    """
    inputs = [s for s in specs if s.is_input]
    names = [s.name for s in inputs]
    unknown = [k for k in feeds if k not in names]
    if unknown:
        raise EdgeVisionError(
            f"the engine has no input {unknown[0]!r}{closest(unknown[0], names)}; its inputs are {', '.join(names)}"
        )
    out: dict[str, np.ndarray] = {}
    for s in inputs:
        if s.name not in feeds:
            raise EdgeVisionError(f"missing input {s.name!r}; the engine takes {', '.join(names)}")
        arr = np.asarray(feeds[s.name])
        if arr.dtype != s.dtype:
            if not np.can_cast(arr.dtype, s.dtype, casting="same_kind"):
                raise EdgeVisionError(f"input {s.name!r} is {arr.dtype}; the engine takes {s.dtype}")
            arr = arr.astype(s.dtype)
        check_shape(s, tuple(int(d) for d in arr.shape))
        out[s.name] = np.ascontiguousarray(arr)
    return out


def check_shape(s: TensorSpec, shape: tuple[int, ...]) -> None:
    """Raise EdgeVisionError unless `shape` fits input `s`'s profile (also for inputs the
    GPU fills itself, which have no host array to check)."""
    if len(shape) != len(s.shape):
        raise EdgeVisionError(f"input {s.name!r} has shape {shape}; the engine takes {_fmt(s.shape)}")
    for axis, (got, lo, hi) in enumerate(zip(shape, s.min_shape, s.max_shape)):
        if not lo <= got <= hi:
            what = "batch" if axis == 0 and lo != hi else f"axis {axis}"
            raise EdgeVisionError(
                f"input {s.name!r}: {what} {got} is outside the engine's range {lo}..{hi} "
                f"(shape {shape}, engine {_fmt(s.shape)}). "
                + ("Feed fewer frames per call, or rebuild with a larger --max-batch" if what == "batch" else "")
            )


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join("B" if i == 0 and d < 0 else "?" if d < 0 else str(d) for i, d in enumerate(shape)) + "]"
