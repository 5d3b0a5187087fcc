"""`edgevision build` and `convert --engine` on a machine without TensorRT or a GPU:
say exactly that, exit 1 (build) or stop at the ONNX with the device command (convert)."""
from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision.device import gpu_status
from converters.cli.convert import build_from_convert

ROOT = Path(__file__).resolve().parents[1]
HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None


def ev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgevision", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def full_tensorrt_here() -> bool:
    from edgevision.backends.tensorrt.target import _import_family

    return _import_family("tensorrt")[0] is not None


@pytest.fixture()
def no_gpu() -> None:
    if gpu_status().available:
        pytest.skip("checks the no-GPU path; this machine has a GPU")


@pytest.mark.usefixtures("no_gpu")
def test_build_without_gpu_says_so_and_exits_1(det_onnx: Path, tmp_path: Path) -> None:
    res = ev("build", str(det_onnx), "-o", str(tmp_path / "x.engine"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "edgevision build: error: no GPU here (no CUDA device (cudaGetDeviceCount: cudaError" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "x.engine").exists()
    if HAS_RTX and not full_tensorrt_here():
        assert "--target tensorrt_rtx` builds an engine for RTX PCs ahead of time" in res.stderr
        assert "add --check" in res.stderr


@pytest.mark.usefixtures("no_gpu")
def test_build_without_tensorrt_says_so_and_exits_1(det_onnx: Path) -> None:
    if full_tensorrt_here():
        pytest.skip("TensorRT is installed here")
    res = ev("build", str(det_onnx), "--target", "tensorrt")
    assert res.returncode == 1
    assert "error: TensorRT is not installed here (import tensorrt failed: ModuleNotFoundError" in res.stderr
    assert "On a Jetson it comes with JetPack" in res.stderr
    assert "There is no GPU here either (no CUDA device" in res.stderr


@pytest.mark.skipif(not HAS_RTX, reason="needs TensorRT-RTX (pip install tensorrt-rtx-cu12)")
def test_build_check_proves_the_graph_builds(det_onnx: Path) -> None:
    res = ev("build", str(det_onnx), "--check", "--max-batch", "2")
    assert res.returncode == 0, res.stderr
    assert f"check     {det_onnx}: parses and builds (" in res.stdout and "nothing written" in res.stdout
    assert "profile   images: min 1x3x640x640, opt 1x3x640x640, max 2x3x640x640" in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--min-batch", "3", "--max-batch", "2"], "batch sizes must satisfy min <= opt <= max"),
        (["--precision", "int8"], "--precision int8 needs an INT8 artifact with Q/DQ nodes"),
        (["--precision", "fp16", "--dla-core", "0", "--target", "tensorrt_rtx"], "TensorRT-RTX has no DLA"),
    ],
)
@pytest.mark.skipif(not HAS_RTX, reason="needs TensorRT-RTX (pip install tensorrt-rtx-cu12)")
def test_build_option_errors(det_onnx: Path, args: list[str], message: str) -> None:
    res = ev("build", str(det_onnx), "--check", *args)
    assert res.returncode == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_build_on_an_unconverted_onnx(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    node = helper.make_node("Identity", ["images"], ["boxes"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 8, 8])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "plain.onnx"))
    res = ev("build", str(tmp_path / "plain.onnx"), "--check")
    assert res.returncode == 1 and "has no edgevision manifest" in res.stderr and "edgevision convert" in res.stderr
    res = ev("build", str(tmp_path / "missing.onnx"))
    assert res.returncode == 1 and "ONNX file not found" in res.stderr


@pytest.mark.usefixtures("no_gpu")
def test_convert_engine_stops_at_onnx_and_prints_the_device_command(
    det_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = build_from_convert(det_onnx, argparse.Namespace(precision="fp16", engine=True))
    assert result is None and det_onnx.is_file()
    err = capsys.readouterr().err
    assert "engine    convert stopped at the ONNX artifact: no GPU here" in err
    command = f"edgevision build {shlex.quote(str(det_onnx))} --precision fp16"
    assert err.splitlines()[-1].strip() == command


def test_help_lists_build() -> None:
    res = ev("--help")
    assert res.returncode == 0 and "build" in res.stdout
    res = ev("build", "--help")
    for flag in ("--precision", "--min-batch", "--opt-batch", "--max-batch", "--workspace", "--dla-core",
                 "--no-gpu-fallback", "--timing-cache", "--target", "--check"):
        assert flag in res.stdout, flag
