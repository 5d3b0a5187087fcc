"""Shared fixtures: real assets, converted artifacts (built once per session), the gpu marker."""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.assets import VTEST, demo_checkpoint, make_detect_checkpoint
from tests.rtsp import RtspServer, missing

os.environ.setdefault("YOLO_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs an NVIDIA GPU; gpu('tensorrt') also needs TensorRT. Skipped, with the reason, elsewhere"
    )
    config.addinivalue_line("markers", "slow: converts a model or takes more than ~30 s on a 2-core machine; "
                            "pytest -m 'not slow' is the fast tier")
    # A shell that starts `make test` in the background (`make test &`, nohup) hands it SIGINT
    # ignored, and every child inherits that: the CLI tests' Ctrl-C would then never arrive.
    # A handled signal is reset to the default at exec, so the children get a real Ctrl-C again.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # RF-DETR lives apart in .venv/rfdetr (tests/test_rfdetr.py puts it on a worker's path). Under
    # pytest-xdist the controller re-imports the module of every warning a worker reports: it must
    # find rfdetr too, or a warning raised in its code takes the worker down.
    rfdetr = Path(__file__).resolve().parents[1] / ".venv" / "rfdetr"
    if rfdetr.is_dir() and str(rfdetr) not in sys.path:
        sys.path.append(str(rfdetr))


# Fixtures that convert a model: a test using any of them (directly or through another
# fixture) is `slow`, so `pytest -m "not slow"` is a fast tier that needs no conversion.
CONVERTING_FIXTURES = {"seg_onnx", "det_onnx"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One place decides whether `gpu` tests run: a CUDA device must answer, and for
    gpu("tensorrt") tests a TensorRT must import (tools/gpu_check.py reports both).
    Tests that need a converted artifact are marked slow here."""
    from edgevision.device import gpu_status

    status = gpu_status()
    no_trt = "" if not status.available else _no_tensorrt()
    for item in items:
        if CONVERTING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        if not status.available:
            item.add_marker(pytest.mark.skip(reason=f"gpu test: {status.reason}"))
        elif "tensorrt" in marker.args and no_trt:
            item.add_marker(pytest.mark.skip(reason=f"gpu test: TensorRT not available: {no_trt}"))


def _no_tensorrt() -> str:
    """'' where a TensorRT imports, else why not (in words)."""
    from edgevision.errors import EdgeVisionError

    try:
        from edgevision.backends.tensorrt.target import find_flavor

        find_flavor()
    except EdgeVisionError as exc:
        return str(exc)
    return ""


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


@pytest.fixture(scope="session")
def vtest_frames40(vtest: Path) -> list[np.ndarray]:
    """40 real frames spread over vtest.avi: BN statistics, verification and unseen test frames apart."""
    from edgevision.sources import sample_frames

    frames, _ = sample_frames(vtest, 40)
    return frames


def _convert(ckpt: Path, out: Path, frames: list[np.ndarray] | None, **opts: object) -> Path:
    from converters.export import ExportOptions, convert

    return convert(ckpt, out, ExportOptions(**opts), frames).onnx_path  # type: ignore[arg-type]


# Where converted artifacts were brought along (a GPU machine or a Jetson without torch or
# the demo checkpoint: tools/gpu_check_bundle.py puts them there). Else they are converted.
ARTIFACTS_ENV = "EDGEVISION_TEST_ARTIFACTS"


def _artifact(name: str, checkpoint_fixture: str, frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Path:
    """A converted artifact: the one brought in $EDGEVISION_TEST_ARTIFACTS, else converted here
    from the checkpoint fixture (skipped, with the reason, where torch or ultralytics is missing)."""
    import importlib.util

    folder = os.environ.get(ARTIFACTS_ENV)
    if folder and (Path(folder) / name).is_file():
        return Path(folder) / name
    missing = [m for m in ("torch", "ultralytics") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name} must be converted here, which needs {' and '.join(missing)}; or put a converted "
                    f"{name} in ${ARTIFACTS_ENV} (make gpu-check-wheels does)")
    return _convert(request.getfixturevalue(checkpoint_fixture), tmp_path_factory.mktemp(name.split(".")[0]), frames[:4])


@pytest.fixture(scope="session")
def seg_onnx(vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """yolo11n-seg converted at 640x640 (verified against PyTorch on vtest frames)."""
    return _artifact("yolo11n-seg.onnx", "seg_checkpoint", vtest_frames, tmp_path_factory, request)


@pytest.fixture(scope="session")
def det_onnx(vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The yolo11n detector converted at 640x640 (verified against PyTorch on vtest frames)."""
    return _artifact("yolo11n-det.onnx", "det_checkpoint", vtest_frames, tmp_path_factory, request)


# -- the loopback RTSP server (tests/rtsp.py) ----------------------------------------------
@pytest.fixture(scope="module")
def rtsp_server(vtest: Path) -> Iterator[RtspServer]:
    """One RTSP server shared by a module's tests (do not stop it: use own_rtsp_server for that).
    Skipped, with the reason, where the system's GStreamer RTSP server is missing."""
    yield from _rtsp(vtest)


@pytest.fixture
def own_rtsp_server(vtest: Path) -> Iterator[RtspServer]:
    """A server for one test alone: it may stop() and start() it again (same port)."""
    yield from _rtsp(vtest)


def _rtsp(video: Path) -> Iterator[RtspServer]:
    if why := missing():
        pytest.skip(why)
    server = RtspServer(video).start()
    try:
        yield server
    finally:
        server.stop()
