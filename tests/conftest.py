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
    _pin_xdist_worker()


# The cores a pinned xdist worker could use before it was pinned ("0,1"); unset when not pinned.
WORKER_CORES_ENV = "EDGEVISION_TEST_CORES"


def _pin_xdist_worker() -> None:
    """Under pytest-xdist, each worker on its own share of the cores (2 workers, 2 cores: one each).

    Left unpinned, every worker's ONNX Runtime, OpenVINO and torch size their thread pools by the
    machine, so two workers on two cores run four busy threads that take turns and spin. Pinned,
    edgevision's sessions take one thread per core they may use (edgevision.device.restricted_threads)
    and torch / OpenMP do the same (imported after this, they read OMP_NUM_THREADS). Measured on the
    2-core CI machine, tests/test_precision_fp16.py alone: 80.8 s unpinned, 65.8 s on one core with
    one thread. Subprocesses the tests start (the CLI, exports) inherit the pin."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault(WORKER_CORES_ENV, ",".join(map(str, cores)))  # before the pin, for tests that undo it
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker[2:])
    mine = cores[index::count] if count <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, mine)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(len(mine)))


# Fixtures that convert a model: a test using any of them (directly or through another
# fixture) is `slow`, so `pytest -m "not slow"` is a fast tier that needs no conversion.
CONVERTING_FIXTURES = {"seg_onnx", "seg320_onnx", "det_onnx"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One place decides whether `gpu` tests run: a CUDA device must answer, and for
    gpu("tensorrt") tests a TensorRT must import (tools/gpu_check.py reports both).
    Tests that need a converted artifact are marked slow here (before `-m` selects: this
    hook must not be trylast, or `-m "not slow"` would keep them)."""
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


# Seconds each test file took in a measured `make test` (tests/file_seconds.json, written by
# tools/test_durations.py from the run's JUnit file). Under `--dist loadfile` a worker takes the
# next file in collection order when it finishes one, and a worker with nothing left idles while
# the other finishes its last file (each is pinned to its own core): heaviest first leaves only
# light files for the end. The Makefile passes --no-loadscope-reorder: by default pytest-xdist
# re-sorts loadfile's files by their number of tests, which would undo this order.
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker sends the collected ids (and the terminal lists them)
def pytest_collection_finish(session: pytest.Session) -> None:
    """After selection and pytest's own reordering: the files heaviest first."""
    _heaviest_files_first(session.items)


def _heaviest_files_first(items: list[pytest.Item]) -> None:
    """Test files heaviest first (tests/file_seconds.json; files it lacks after them, as collected)."""
    import json

    try:
        seconds: dict[str, float] = json.loads(FILE_SECONDS.read_text())
    except (OSError, ValueError):
        return
    items.sort(key=lambda item: -float(seconds.get(item.nodeid.split("::", 1)[0], 0.0)))  # stable


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
              request: pytest.FixtureRequest, **opts: object) -> Path:
    """A converted artifact: the one brought in $EDGEVISION_TEST_ARTIFACTS, else converted here
    from the checkpoint fixture (skipped, with the reason, where torch or ultralytics is missing).
    name: its path under that folder (e.g. "320/yolo11n-seg.onnx"); opts: ExportOptions."""
    import importlib.util

    folder = os.environ.get(ARTIFACTS_ENV)
    if folder and (Path(folder) / name).is_file():
        return Path(folder) / name
    missing = [m for m in ("torch", "ultralytics") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name} must be converted here, which needs {' and '.join(missing)}; or put a converted "
                    f"{name} in ${ARTIFACTS_ENV} (make gpu-check-wheels does)")
    work = tmp_path_factory.mktemp(name.replace("/", "-").split(".")[0])
    return _convert(request.getfixturevalue(checkpoint_fixture), work, frames[:4], **opts)


@pytest.fixture(scope="session")
def seg_onnx(vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """yolo11n-seg converted at 640x640 (verified against PyTorch on vtest frames)."""
    return _artifact("yolo11n-seg.onnx", "seg_checkpoint", vtest_frames, tmp_path_factory, request)


@pytest.fixture(scope="session")
def seg320_onnx(vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Path:
    """yolo11n-seg converted at 320x320, for tests of machinery that does not depend on the input
    size (INT8 calibration, layer protection, Q/DQ placement): a quarter of 640's arithmetic."""
    return _artifact("320/yolo11n-seg.onnx", "seg_checkpoint", vtest_frames, tmp_path_factory, request,
                     imgsz=(320, 320))


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
