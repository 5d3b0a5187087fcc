"""An engine's inputs and outputs, and checking what a caller feeds them. Pure Python + numpy.

TensorRT's v3 API addresses tensors by name. Device and pinned buffers are sized once
for the largest shapes the optimization profile allows, so checking a feed against the
profile (backends/feeds.py, with the profile's range per axis) is also what keeps every
copy inside its buffer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import EdgeVisionError
from .. import feeds as feeds_mod
from ..feeds import InputSpec

# How feed errors name the artifact, and what to do about a batch outside the profile.
NOUN = "engine"
BATCH_HINT = "Feed fewer frames per call, or rebuild with a larger --max-batch"

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

    def as_input(self) -> InputSpec:
        """The backend-neutral spec feeds are checked against (the profile's range per axis)."""
        return InputSpec(self.name, self.dtype, self.shape, self.min_shape, self.max_shape)


def check_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C-contiguous arrays of the engine's dtypes, one per input, each within the profile.

    Raises EdgeVisionError naming the input and the allowed range (e.g. a batch above
    the engine's max batch), never lets TensorRT fail on it.
    """
    return feeds_mod.check_feeds([s.as_input() for s in specs if s.is_input], feeds, NOUN, BATCH_HINT)


def check_shape(s: TensorSpec, shape: tuple[int, ...]) -> None:
    """Raise EdgeVisionError unless `shape` fits input `s`'s profile (also for inputs the
    GPU fills itself, which have no host array to check)."""
    feeds_mod.check_shape(s.as_input(), shape, NOUN, BATCH_HINT)
