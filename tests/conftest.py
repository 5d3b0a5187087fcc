"""Shared fixtures: real assets, converted artifacts (built once per session), the gpu marker."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.assets import VTEST, demo_checkpoint, make_detect_checkpoint

os.environ.setdefault("YOLO_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU with TensorRT; skipped elsewhere")
    config.addinivalue_line("markers", "slow: takes more than ~30 s on a 2-core machine")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One place decides whether `gpu` tests run: a CUDA device must answer."""
    from edgevision.device import gpu_status

    status = gpu_status()
    if status.available:
        return
    skip = pytest.mark.skip(reason=f"gpu test: {status.reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def seg_checkpoint() -> Path:
    path = demo_checkpoint()
    assert path.is_file(), f"missing test asset {path} (run `make test`, which installs it)"
    return path


@pytest.fixture(scope="session")
def det_checkpoint(seg_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_detect_checkpoint(seg_checkpoint, tmp_path_factory.mktemp("det") / "yolo11n-det.pt")


@pytest.fixture(scope="session")
def vtest() -> Path:
    assert VTEST.is_file(), f"missing test asset {VTEST} (apt-get install opencv-doc; `make test` does)"
    return VTEST


@pytest.fixture(scope="session")
def vtest_frames(vtest: Path) -> list[np.ndarray]:
    """8 real frames spread over vtest.avi (768x576 BGR)."""
    from edgevision.sources import sample_frames

    frames, _ = sample_frames(vtest, 8)
    return frames


def _convert(ckpt: Path, out: Path, frames: list[np.ndarray] | None, **opts: object) -> Path:
    from converters.export import ExportOptions, convert

    return convert(ckpt, out, ExportOptions(**opts), frames).onnx_path  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def seg_onnx(seg_checkpoint: Path, vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolo11n-seg converted at 640x640 (verified against PyTorch on vtest frames)."""
    return _convert(seg_checkpoint, tmp_path_factory.mktemp("seg"), vtest_frames[:4])


@pytest.fixture(scope="session")
def det_onnx(det_checkpoint: Path, vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The yolo11n detector converted at 640x640 (verified against PyTorch on vtest frames)."""
    return _convert(det_checkpoint, tmp_path_factory.mktemp("det_onnx"), vtest_frames[:4])
