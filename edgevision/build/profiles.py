"""Optimization profiles for the dynamic batch axis. Pure Python: no TensorRT import.

A converted graph has `images` float32[B, 3, H, W] with B dynamic, and fixed-shape
threshold inputs. TensorRT needs, for every input with a dynamic dimension, the
smallest, the most common and the largest shape it will see: kernels are tuned for
`opt`, memory is sized for `max`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..backends.tensorrt.spec import ShapeProfile
from ..errors import EdgeVisionError

__all__ = ["BatchRange", "Dim", "ShapeProfile", "derive_profiles", "is_dynamic", "max_batch"]

Dim = int | str | None  # an ONNX dimension: a size, a symbolic name, or unknown


@dataclass(frozen=True)
class BatchRange:
    """min / opt / max batch. Defaults: tuned for one camera (opt 1), room for four (max 4)."""

    min: int = 1
    opt: int = 1
    max: int = 4

    def validate(self) -> None:
        if self.min < 1:
            raise EdgeVisionError(f"--min-batch must be at least 1, got {self.min}")
        if not self.min <= self.opt <= self.max:
            raise EdgeVisionError(
                f"batch sizes must satisfy min <= opt <= max; got min {self.min}, opt {self.opt}, max {self.max}"
            )


def is_dynamic(dim: Dim) -> bool:
    return not isinstance(dim, int) or dim < 0


def derive_profiles(
    inputs: Mapping[str, Sequence[Dim]], batch: BatchRange, dla: bool = False
) -> tuple[tuple[ShapeProfile, ...], tuple[str, ...]]:
    """Profiles for the inputs whose batch axis is dynamic, plus notes for the user.

    Only axis 0 may be dynamic: edgevision artifacts have a fixed input size, and an
    input with another free axis would leave TensorRT to guess its range.
    DLA has no dynamic shapes: min = opt = max = batch.opt there.
    """
    batch.validate()
    notes: list[str] = []
    if dla and not batch.min == batch.opt == batch.max:
        notes.append(f"DLA does not support dynamic shapes: the profile is fixed at batch {batch.opt}")
        batch = BatchRange(batch.opt, batch.opt, batch.opt)
    profiles = []
    for name, dims in inputs.items():
        free = [i for i, d in enumerate(dims) if is_dynamic(d)]
        if not free:
            continue
        if free != [0]:
            bad = [f"axis {i} ({dims[i]!r})" for i in free if i != 0]
            raise EdgeVisionError(
                f"input {name!r} has dynamic {', '.join(bad)}; engines are built for the batch axis only. "
                "Export the ONNX with a fixed input size (edgevision convert --imgsz)"
            )
        rest = tuple(d for d in dims[1:] if isinstance(d, int))  # all static: checked above
        profiles.append(ShapeProfile(name, (batch.min, *rest), (batch.opt, *rest), (batch.max, *rest)))
    if not profiles and batch != BatchRange() and batch.max > 1:
        notes.append("the graph has a static batch size: batch options ignored")
    return tuple(profiles), tuple(notes)


def max_batch(profiles: Sequence[ShapeProfile]) -> int:
    """The largest batch any profile allows (1 for a static graph)."""
    return max((p.max[0] for p in profiles), default=1)
