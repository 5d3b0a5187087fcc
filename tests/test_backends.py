"""The backend contract (backends/base.py): every backend checks feeds the same way before its
runtime sees them, declares what it can do, and ONNX Runtime sessions come from one place."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, save

from edgevision._lazy import available
from edgevision.backends import BACKENDS, backend_class, open_backend
from edgevision.backends.base import Backend
from edgevision.backends.onnxruntime import make_session
from edgevision.device import u8s8_saturates
from edgevision.errors import EdgeVisionError, GpuPreprocessUnavailable
from edgevision.manifest import METADATA_KEY, Manifest

ONNX_BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not available(m), reason=f"needs {m}"))
                 for b, m in (("onnxruntime", "onnxruntime"), ("openvino", "openvino"))]


def tiny_graph(path: Path) -> Path:
    """images float32[B, 3, 8, 8] and conf_threshold float32[1] in; each doubled out."""
    nodes = [helper.make_node("Add", ["images", "images"], ["doubled"]),
             helper.make_node("Add", ["conf_threshold", "conf_threshold"], ["conf2"])]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8]),
         helper.make_tensor_value_info("conf_threshold", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["batch", 3, 8, 8]),
         helper.make_tensor_value_info("conf2", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    manifest = Manifest(task="detect", class_names=("thing",), input_hw=(8, 8), max_det=1)
    helper.set_model_props(model, {METADATA_KEY: manifest.to_json()})
    save(model, str(path))
    return path


def good(**over: object) -> dict[str, object]:
    feeds: dict[str, object] = {"images": np.ones((2, 3, 8, 8), np.float32), "conf_threshold": np.array([0.25], np.float32)}
    feeds.update(over)
    return {k: v for k, v in feeds.items() if v is not None}


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_good_feeds_run_and_same_kind_casts_are_made(backend: str, tmp_path: Path) -> None:
    with open_backend(tiny_graph(tmp_path / "tiny.onnx"), backend) as b:
        assert b.input_names == ("images", "conf_threshold") and b.output_names == ("doubled", "conf2")
        strided = np.ones((8, 8, 3, 2), np.float64).transpose(3, 2, 0, 1)  # float64, not contiguous
        out = b.infer(good(images=strided))
        assert out["doubled"].dtype == np.float32 and out["doubled"].shape == (2, 3, 8, 8)
        np.testing.assert_array_equal(out["doubled"], 2.0)
        np.testing.assert_allclose(out["conf2"], [0.5])


@pytest.mark.parametrize("over, message", [
    ({"images": None}, "missing input 'images'; the model takes images, conf_threshold"),
    ({"image": np.zeros(1)}, "the model has no input 'image' (did you mean \"images\"?)"),
    ({"images": np.zeros((1, 3, 8, 8), np.complex64)}, "input 'images' is complex64; the model takes float32"),
    ({"images": np.zeros((3, 8, 8), np.float32)}, "input 'images' has shape (3, 8, 8); the model takes [B, 3, 8, 8]"),
    ({"images": np.zeros((1, 3, 8, 16), np.float32)}, "input 'images': axis 3 16 is outside the model's range 8..8"),
    ({"images": np.zeros((0, 3, 8, 8), np.float32)}, "input 'images': batch 0 is outside the model's range 1.."),
    ({"conf_threshold": np.array([0.25, 0.5], np.float32)}, "input 'conf_threshold': axis 0 2 is outside the model's range 1..1"),
])
@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_bad_feeds_get_the_same_sentence_on_every_backend(backend: str, over: dict[str, object], message: str,
                                                           tmp_path: Path) -> None:
    with open_backend(tiny_graph(tmp_path / "tiny.onnx"), backend) as b:
        with pytest.raises(EdgeVisionError, match=re.escape(message)):
            b.infer(good(**over))


@pytest.mark.parametrize("name, thread_safe, gpu_frames", [
    ("onnxruntime", True, False), ("openvino", True, False), ("tensorrt", False, True),
])
def test_capabilities_are_declared(name: str, thread_safe: bool, gpu_frames: bool) -> None:
    """Read from the class (TensorRT's needs no GPU to answer): the pipeline and Model ask, never probe."""
    cls = backend_class(name)
    assert issubclass(cls, Backend) and name in BACKENDS
    assert (cls.thread_safe, cls.takes_gpu_frames) == (thread_safe, gpu_frames)


def test_host_only_backend_refuses_frames_before_doing_anything(tmp_path: Path) -> None:
    with open_backend(tiny_graph(tmp_path / "tiny.onnx"), "onnxruntime") as b:
        with pytest.raises(GpuPreprocessUnavailable, match="the onnxruntime backend takes pre-processed host arrays only"):
            b.infer_frames([np.zeros((8, 8, 3), np.uint8)], {}, b.manifest)


def test_make_session_takes_a_path_or_bytes(tmp_path: Path) -> None:
    path = tiny_graph(tmp_path / "tiny.onnx")
    for model in (path, path.read_bytes()):
        session = make_session(model, threads=1)
        assert session.get_providers() == ["CPUExecutionProvider"]
        assert [i.name for i in session.get_inputs()] == ["images", "conf_threshold"]
    with pytest.raises(EdgeVisionError, match="ONNX Runtime cannot load a 16-byte graph"):
        make_session(b"not an onnx file")


def _saturating_qlinearconv(channels: int = 64) -> bytes:
    """A QLinearConv whose u8 x s8 products saturate an int16 pair sum (255 * 127 * 2 > 32767)."""
    from onnx import numpy_helper as nh

    consts = {"xs": np.array(1.0, np.float32), "xz": np.array(0, np.uint8),
              "w": np.full((1, channels, 1, 1), 127, np.int8), "ws": np.array([1.0], np.float32),
              "wz": np.array([0], np.int8), "ys": np.array(8192.0, np.float32), "yz": np.array(0, np.uint8)}
    graph = helper.make_graph(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])], "sat",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, channels, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [nh.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_int8_kernels_are_exact_on_every_cpu() -> None:
    """edgevision's sessions compute u8 x s8 exactly on any CPU. A plain ONNX Runtime session
    does so only where the CPU has VNNI/AMX (or is not x86): on AVX2-only x86 its u8s8 kernel
    saturates int16 pair sums (here 128 instead of 253), which cost the CPU INT8 file of
    yolo11n-seg F1 0.85 vs FP32 instead of 0.96. Which of the two a plain session gives depends
    on the CPU, hence the branch on u8s8_saturates()."""
    ort = pytest.importorskip("onnxruntime")
    model, x = _saturating_qlinearconv(), np.full((1, 64, 2, 2), 255, np.uint8)
    exact = np.full((1, 1, 2, 2), round(64 * 255 * 127 / 8192), np.uint8)  # 253
    np.testing.assert_array_equal(make_session(model).run(None, {"x": x})[0], exact)
    plain = ort.SessionOptions()
    plain.log_severity_level = 3
    got = ort.InferenceSession(model, plain, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    if u8s8_saturates():
        assert (got < exact).all(), "this CPU was taken for one without VNNI, but u8s8 did not saturate"
    else:
        np.testing.assert_array_equal(got, exact)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux and two cores or more")
def test_a_process_pinned_to_one_core_gets_one_thread_per_inference() -> None:
    """A process on fewer cores than the machine (taskset, a cpuset, a pinned test worker) gets
    one runtime thread per core it may use: ONNX Runtime's default counts the machine's physical
    cores, and on one core its extra threads only take turns and spin. Checked in a real child
    pinned with sched_setaffinity; unpinned, the runtimes keep their own defaults (None)."""
    code = (
        "import os, json\n"
        "from edgevision.device import restricted_threads, usable_cores\n"
        "from edgevision.backends.onnxruntime import session_options\n"
        "from edgevision.backends.openvino import compile_config\n"
        "before = restricted_threads()\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "print(json.dumps({'before': before, 'cores': usable_cores(), 'after': restricted_threads(),\n"
        "                  'ort': session_options().intra_op_num_threads,\n"
        "                  'ort_asked': session_options(2).intra_op_num_threads,\n"
        "                  'ov': compile_config('f32', None, None).get('INFERENCE_NUM_THREADS')}))\n"
    )
    from tests.conftest import WORKER_CORES_ENV

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # The child starts on the cores this process had before a pinned test worker narrowed them.
    allowed = {int(c) for c in os.environ.get(WORKER_CORES_ENV, "").split(",") if c} or os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("this process may use one core only: nothing to narrow")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, allowed))
    got = json.loads(run.stdout.strip().splitlines()[-1])
    before = None if len(allowed) == os.cpu_count() else len(allowed)  # a container's cpuset narrows it already
    assert got == {"before": before, "cores": 1, "after": 1, "ort": 1, "ort_asked": 2, "ov": "1"}
