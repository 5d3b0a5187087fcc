"""Checking what a caller feeds a graph, before the runtime sees it. Pure Python + numpy.

Every backend checks feeds the same way (Backend.infer does it), so a wrong name, dtype or
shape gets the same sentence on ONNX Runtime, OpenVINO and TensorRT instead of each
runtime's own error (or, for TensorRT's fixed buffers, a copy past their end).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeVisionError, closest


@dataclass(frozen=True)
class InputSpec:
    """One graph input. dtype: None where the runtime reports a type numpy has no name for
    (not checked). shape: -1 where dynamic; None where even the rank is unknown (not checked).
    min_shape / max_shape: the range each axis accepts (default: any size >= 1 where
    dynamic, exactly the size where static); TensorRT's profiles set them."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...] | None
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None

    def bounds(self) -> list[tuple[int, int | None]]:
        """(smallest, largest or None) per axis."""
        shape = self.shape or ()
        lo = self.min_shape or tuple(1 if d < 0 else d for d in shape)
        hi: Sequence[int | None] = self.max_shape or tuple(None if d < 0 else d for d in shape)
        return list(zip(lo, hi))


def check_feeds(
    specs: Sequence[InputSpec], feeds: Mapping[str, np.ndarray], noun: str = "model", batch_hint: str = ""
) -> dict[str, np.ndarray]:
    """C-contiguous arrays of the graph's dtypes, one per input, each of a shape it accepts.

    Casts within a kind (float64 -> float32); anything else raises EdgeVisionError naming the
    input, what it got and what `noun` ("model", "engine") takes. batch_hint: added to a
    batch-size error (how to get a larger range).
    """
    names = [s.name for s in specs]
    unknown = [k for k in feeds if k not in names]
    if unknown:
        raise EdgeVisionError(
            f"the {noun} has no input {unknown[0]!r}{closest(unknown[0], names)}; its inputs are {', '.join(names)}"
        )
    out: dict[str, np.ndarray] = {}
    for s in specs:
        if s.name not in feeds:
            raise EdgeVisionError(f"missing input {s.name!r}; the {noun} takes {', '.join(names)}")
        arr = np.asarray(feeds[s.name])
        if s.dtype is not None and arr.dtype != s.dtype:
            if not np.can_cast(arr.dtype, s.dtype, casting="same_kind"):
                raise EdgeVisionError(f"input {s.name!r} is {arr.dtype}; the {noun} takes {s.dtype}")
            arr = arr.astype(s.dtype)
        check_shape(s, tuple(int(d) for d in arr.shape), noun, batch_hint)
        out[s.name] = np.ascontiguousarray(arr)
    return out


def check_shape(s: InputSpec, shape: tuple[int, ...], noun: str = "model", batch_hint: str = "") -> None:
    """Raise EdgeVisionError unless input `s` accepts `shape` (also for inputs the GPU fills
    itself, which have no host array to check)."""
    if s.shape is None:
        return
    if len(shape) != len(s.shape):
        raise EdgeVisionError(f"input {s.name!r} has shape {shape}; the {noun} takes {fmt_shape(s.shape)}")
    for axis, (got, (lo, hi)) in enumerate(zip(shape, s.bounds())):
        if got < lo or (hi is not None and got > hi):
            what = "batch" if axis == 0 and lo != hi else f"axis {axis}"
            hint = f" {batch_hint}" if batch_hint and what == "batch" else ""
            raise EdgeVisionError(
                f"input {s.name!r}: {what} {got} is outside the {noun}'s range {lo}..{'' if hi is None else hi} "
                f"(shape {shape}, {noun} {fmt_shape(s.shape)}).{hint}"
            )


def fmt_shape(shape: Sequence[int]) -> str:
    """[B, 3, 640, 640]: B for a dynamic batch axis, ? for another dynamic axis."""
    return "[" + ", ".join("B" if i == 0 and d < 0 else "?" if d < 0 else str(d) for i, d in enumerate(shape)) + "]"
