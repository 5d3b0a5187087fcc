"""Optimization profiles for the dynamic batch axis."""
from __future__ import annotations

import re

import pytest

from edgevision.build.profiles import BatchRange, ShapeProfile, derive_profiles, max_batch
from edgevision.errors import EdgeVisionError

# The inputs of every converted graph: images with a symbolic batch, fixed thresholds.
CONVERTED = {"images": ("batch", 3, 640, 640), "conf_threshold": (1,), "iou_threshold": (1,)}
SHAPE = (3, 640, 640)


@pytest.mark.parametrize(
    "inputs, batch, dla, want, note",
    [
        (CONVERTED, BatchRange(), False, [("images", 1, 1, 4)], None),
        (CONVERTED, BatchRange(2, 4, 8), False, [("images", 2, 4, 8)], None),
        # ONNX writes an unknown dimension as -1, None or a name: all dynamic.
        ({"images": (-1, 3, 640, 640)}, BatchRange(1, 2, 2), False, [("images", 1, 2, 2)], None),
        ({"images": (None, 3, 640, 640)}, BatchRange(1, 1, 1), False, [("images", 1, 1, 1)], None),
        # DLA has no dynamic shapes: everything pinned to opt.
        (CONVERTED, BatchRange(1, 2, 8), True, [("images", 2, 2, 2)], "DLA does not support dynamic shapes"),
        (CONVERTED, BatchRange(1, 1, 1), True, [("images", 1, 1, 1)], None),
        # A static graph needs no profile.
        ({"images": (1, 3, 640, 640)}, BatchRange(), False, [], None),
        ({"images": (1, 3, 640, 640)}, BatchRange(1, 1, 8), False, [], "static batch size"),
    ],
)
def test_profiles(inputs: dict, batch: BatchRange, dla: bool, want: list, note: str | None) -> None:
    profiles, notes = derive_profiles(inputs, batch, dla)
    assert [(p.name, p.min[0], p.opt[0], p.max[0]) for p in profiles] == want
    assert all(p.min[1:] == p.opt[1:] == p.max[1:] == SHAPE for p in profiles)
    if note:
        assert any(note in n for n in notes), notes
    else:
        assert notes == ()


@pytest.mark.parametrize(
    "batch, message",
    [
        (BatchRange(0, 1, 4), "--min-batch must be at least 1, got 0"),
        (BatchRange(2, 1, 4), "min <= opt <= max; got min 2, opt 1, max 4"),
        (BatchRange(1, 5, 4), "min <= opt <= max; got min 1, opt 5, max 4"),
    ],
)
def test_bad_batch_ranges(batch: BatchRange, message: str) -> None:
    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        derive_profiles(CONVERTED, batch)


@pytest.mark.parametrize(
    "dims, message",
    [
        (("batch", 3, "height", 640), "dynamic axis 2 ('height')"),
        ((1, 3, -1, -1), "dynamic axis 2 (-1), axis 3 (-1)"),
    ],
)
def test_only_the_batch_axis_may_be_dynamic(dims: tuple, message: str) -> None:
    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        derive_profiles({"images": dims}, BatchRange())


def test_profile_text_and_max_batch() -> None:
    p = ShapeProfile("images", (1, 3, 64, 64), (2, 3, 64, 64), (8, 3, 64, 64))
    assert p.describe() == "images: min 1x3x64x64, opt 2x3x64x64, max 8x3x64x64"
    assert p.to_dict() == {"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [8, 3, 64, 64]}
    assert max_batch([p]) == 8 and max_batch([]) == 1
