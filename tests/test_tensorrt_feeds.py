"""What the TensorRT backend accepts as input, checked before any copy into its fixed buffers."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgevision.backends.tensorrt.io_specs import TensorSpec, check_feeds, numpy_dtype
from edgevision.errors import EdgeVisionError

F32 = np.dtype(np.float32)
SPECS = (
    TensorSpec("images", True, F32, (-1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64)),
    TensorSpec("conf_threshold", True, F32, (1,), (1,), (1,)),
    TensorSpec("boxes", False, F32, (-1, 300, 4), (4, 300, 4), (4, 300, 4)),
)


def feeds(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"images": np.zeros((2, 3, 64, 64), np.float32), "conf_threshold": np.array([0.25], np.float32)}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_good_feed_passes_through_contiguous() -> None:
    images = np.zeros((3, 64, 64, 2), np.float32).transpose(3, 0, 1, 2)  # a strided view
    out = check_feeds(SPECS, feeds(images=images))
    assert out["images"].flags.c_contiguous and out["images"].shape == (2, 3, 64, 64)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"images": None}, "missing input 'images'; the engine takes images, conf_threshold"),
        ({"image": np.zeros(1)}, "no input 'image' (did you mean \"images\"?)"),
        ({"images": np.zeros((5, 3, 64, 64), np.float32)}, "batch 5 is outside the engine's range 1..4"),
        ({"images": np.zeros((5, 3, 64, 64), np.float32)}, "rebuild with a larger --max-batch"),
        ({"images": np.zeros((0, 3, 64, 64), np.float32)}, "batch 0 is outside the engine's range 1..4"),
        ({"images": np.zeros((1, 3, 32, 64), np.float32)}, "axis 2 32 is outside the engine's range 64..64"),
        ({"images": np.zeros((3, 64, 64), np.float32)}, "has shape (3, 64, 64); the engine takes [B, 3, 64, 64]"),
        ({"images": np.zeros((1, 3, 64, 64), np.complex64)}, "is complex64; the engine takes float32"),
        ({"conf_threshold": np.array([0.25, 0.5], np.float32)}, "axis 0 2 is outside the engine's range 1..1"),
    ],
)
def test_bad_feeds_are_named(over: dict, message: str) -> None:
    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        check_feeds(SPECS, feeds(**over))


def test_same_kind_casts_are_made() -> None:
    out = check_feeds(SPECS, feeds(images=np.zeros((1, 3, 64, 64), np.float64), conf_threshold=np.array([1], np.int64)))
    assert out["images"].dtype == F32 and out["conf_threshold"].dtype == F32


@pytest.mark.parametrize("name, dtype", [("FLOAT", np.float32), ("HALF", np.float16), ("INT32", np.int32), ("BOOL", np.bool_)])
def test_tensorrt_dtypes(name: str, dtype: type) -> None:
    assert numpy_dtype(name, "x") == np.dtype(dtype)


def test_unknown_tensorrt_dtype() -> None:
    with pytest.raises(EdgeVisionError, match="tensor 'q' has TensorRT type FP8"):
        numpy_dtype("FP8", "q")


def test_buffer_sizes() -> None:
    assert SPECS[0].max_nbytes == 4 * 3 * 64 * 64 * 4
    assert SPECS[0].nbytes((2, 3, 64, 64)) == 2 * 3 * 64 * 64 * 4
    assert SPECS[2].max_nbytes == 4 * 300 * 4 * 4
