"""make gpu-check: the dry run without a GPU, which tests it selects, the stacks it finds,
the report it writes from real pytest JUnit files, and its orchestration end to end."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgevision.device import GpuStatus, gpu_status
from tools import gpu_check
from tools.gpu_check import CaseResult, find_stacks, pytest_command, read_junit, stack_env, table, totals

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_without_a_gpu_is_one_line_and_exit_0() -> None:
    if gpu_status().available or gpu_check.has_gpu_hardware():
        pytest.skip("checks the machine without a GPU")
    run = subprocess.run(["make", "-s", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no GPU here (no CUDA device"), run.stdout


def test_it_selects_every_gpu_test_and_nothing_else(tmp_path: Path) -> None:
    """The selection as pytest sees it: all gpu-marked tests (TensorRT ones included; they
    skip themselves where TensorRT is missing), no others."""
    cmd = [c for c in pytest_command(sys.executable, tmp_path / "j.xml") if not c.startswith("--junitxml")]
    run = subprocess.run([*cmd, "--collect-only"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    selected = {line.split("[")[0] for line in run.stdout.splitlines() if "::" in line}
    for test in ("tests/test_kernels.py::test_gpu_letterbox_equals_its_twin",
                 "tests/test_kernels.py::test_kernel_compiles_and_loads_for_this_gpu",
                 "tests/test_tensorrt_cuda.py::test_events_time_gpu_work_and_order_streams",
                 "tests/test_tensorrt_cuda.py::test_graph_replays_with_current_host_data",
                 "tests/test_tensorrt_cuda.py::test_buffers_made_on_one_thread_work_on_another",
                 "tests/test_gpu_pipeline.py::test_gpu_letterbox_feeds_the_pipeline",
                 "tests/test_tensorrt_backend.py::test_engine_agrees_with_onnxruntime"):
        assert test in selected, test
    assert "tests/test_kernels.py::test_kernel_compiles_for_every_jetson" not in selected
    assert "tests/test_gpu_pipeline.py::test_twin_arithmetic_feeds_the_pipeline" not in selected


def test_stacks_are_the_system_and_each_folder_of_wheels(tmp_path: Path) -> None:
    (tmp_path / "cu12").mkdir()
    for name in ("b-1.whl", "a-1.whl"):
        (tmp_path / "cu12" / name).touch()
    (tmp_path / "assets").mkdir()  # no wheels: not a stack
    (tmp_path / "empty").mkdir()
    stacks = find_stacks(tmp_path)
    assert [s.name for s in stacks] == ["system", "cu12"]
    assert [w.name for w in stacks[1].wheels] == ["a-1.whl", "b-1.whl"]
    assert find_stacks(tmp_path / "missing") == [gpu_check.Stack("system")]


def test_stack_env_puts_the_private_site_first_and_points_at_the_bundle(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "vtest.avi").touch()
    (assets / "yolo11n-seg.onnx").touch()
    env = stack_env({"PYTHONPATH": "/elsewhere"}, tmp_path / "site", tmp_path)
    assert env["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "site"), "/elsewhere"])
    assert env["EDGEVISION_VTEST"] == str(assets / "vtest.avi")
    assert env["EDGEVISION_TEST_ARTIFACTS"] == str(assets)
    bare = stack_env({}, None, tmp_path / "none")
    assert "PYTHONPATH" not in bare and "EDGEVISION_VTEST" not in bare


def test_report_from_a_real_junit_file(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import pytest
        def test_ok(): pass
        def test_bad(): assert 1 == 2, "one is not two"
        @pytest.mark.skip(reason="TensorRT not available: none here")
        def test_trt(): pass
    """))
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    "-c", os.devnull, str(tmp_path / "test_sample.py")], cwd=tmp_path, capture_output=True, timeout=120)
    results = read_junit(junit, "cu12")
    assert [(r.test, r.outcome) for r in results] == [
        ("test_sample::test_ok", "passed"), ("test_sample::test_bad", "failed"), ("test_sample::test_trt", "skipped")]
    assert "one is not two" in results[1].message and results[2].message == "TensorRT not available: none here"
    text = table(results)
    assert text.splitlines()[0] == "| stack | test | result | time |"
    assert "| cu12 | test_sample::test_trt | skipped: TensorRT not available: none here |" in text
    assert totals(results) == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}


def test_table_keeps_cells_intact() -> None:
    row = table([CaseResult("system", "m::t[a|b]", "failed", 1.234, "x | y")]).splitlines()[-1]
    assert row == "| system | m::t[a/b] | failed: x / y | 1.23 s |"


def test_orchestration_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() as on a GPU machine, with only the GPU answer faked: it probes the stack, runs
    the gpu tests in a child pytest (which, seeing no GPU itself, skips them with the reason),
    reads the JUnit file and writes the log and report; a wheel folder that cannot install
    is reported and fails the check."""
    if gpu_status().available:
        pytest.skip("the real thing runs here: make gpu-check")
    monkeypatch.setattr("edgevision.device.gpu_status", lambda: GpuStatus(True, "", "Test GPU", (9, 0), 1))
    bundle = tmp_path / "bundle"
    (bundle / "broken").mkdir(parents=True)
    (bundle / "broken" / "not_a-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    out = tmp_path / "out"
    code = gpu_check.main(["--out", str(out), "--bundle", str(bundle)])
    report = (out / "gpu-check.md").read_text()
    assert code == 1 and "- NOT PROVEN: broken: wheels did not install" in report
    # the child pytest saw no GPU: the check must not pass on skips
    assert "- NOT PROVEN: system: no test passed" in report and "saw no GPU in this process" in report
    assert "| system | test_kernels::test_gpu_letterbox_equals_its_twin[" in report
    assert "skipped: gpu test: no CUDA device" in report
    assert "- stack `system`: python" in report and "cuda-bindings 12." in report
    assert (out / "junit-system.xml").is_file() and "$ " in (out / "gpu-check.log").read_text()


def test_only_modules_with_gpu_tests_are_collected() -> None:
    """Another module's imports (onnx, ultralytics) must not stop a GPU machine's run."""
    files = gpu_check.gpu_test_files()
    assert "tests/test_kernels.py" in files and "tests/test_gpu_pipeline.py" in files
    assert "tests/test_export.py" not in files and "tests/test_cli.py" not in files


def _case(test: str, outcome: str = "passed", message: str = "", **props: str) -> CaseResult:
    return CaseResult("cu12", test, outcome, 0.1, message, tuple(props.items()))


@pytest.mark.parametrize("results, code, problems", [
    ([_case("test_kernels::test_cuda_stack_in_use", cuda_bindings="12.9.10", nvrtc="12.6")], 0, []),
    ([_case("test_kernels::test_cuda_stack_in_use", cuda_bindings="13.5.0", nvrtc="13.0")], 0,
     ["cuda_bindings in use is 13.5.0, not CUDA 12", "nvrtc in use is 13.0, not CUDA 12"]),
    ([_case("test_kernels::test_cuda_stack_in_use", cuda_bindings="12.9.10", nvrtc="12.6"),
      _case("t::x", "skipped", "gpu test: TensorRT not available: none")], 1, []),
    ([_case("test_kernels::test_cuda_stack_in_use", "skipped", "gpu test: no CUDA device (35)")], 0,
     ["no test passed", "1 test(s) saw no GPU in this process: gpu test: no CUDA device (35)",
      "cuda_bindings in use is unknown, not CUDA 12", "nvrtc in use is unknown, not CUDA 12"]),
    ([], 2, ["pytest exited 2 (collection or usage error; see gpu-check.log)", "no test passed",
             "cuda_bindings in use is unknown, not CUDA 12", "nvrtc in use is unknown, not CUDA 12"]),
])
def test_a_stack_proves_only_what_ran_as_named(results: list[CaseResult], code: int, problems: list[str]) -> None:
    assert gpu_check.stack_problems("cu12", results, code) == problems


def test_junit_properties_are_read(tmp_path: Path) -> None:
    (tmp_path / "test_p.py").write_text("def test_p(record_property):\n    record_property('nvrtc', '12.6')\n")
    junit = tmp_path / "j.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    "-c", os.devnull, str(tmp_path / "test_p.py")], cwd=tmp_path, capture_output=True, timeout=120)
    assert read_junit(junit, "x")[0].properties == (("nvrtc", "12.6"),)
