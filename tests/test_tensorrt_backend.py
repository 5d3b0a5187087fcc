"""The TensorRT backend: chosen for engines, clear about missing GPUs and mismatched
engines, and (on a GPU) agreeing with ONNX Runtime on real frames."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgevision
from edgevision.backends import choose_backend
from edgevision.backends.tensorrt.backend import TensorRTBackend
from edgevision.backends.tensorrt.sidecar import EngineSidecar, read_sidecar, write_sidecar
from edgevision.backends.tensorrt.target import find_flavor
from edgevision.build import BatchRange, BuildOptions, build_engine
from edgevision.build.precision import typed_only
from edgevision.device import gpu_status
from edgevision.errors import EdgeVisionError
from edgevision.metrics import agreement

HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None


@pytest.mark.parametrize("name, backend", [("m.engine", "tensorrt"), ("m.plan", "tensorrt"), ("m.onnx", "onnxruntime")])
def test_engines_go_to_tensorrt(name: str, backend: str) -> None:
    assert choose_backend(Path(name)) == backend


@pytest.fixture(scope="module")
def rtx_engine(det_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real plan + sidecar, built ahead of time by TensorRT-RTX (no GPU needed to build)."""
    if not HAS_RTX:
        pytest.skip("needs TensorRT-RTX to build an engine without a GPU")
    engine = tmp_path_factory.mktemp("rtx") / "det.engine"
    build_engine(det_onnx, engine, BuildOptions(target="tensorrt_rtx", progress=False, timing_cache=None))
    return engine


def test_engine_without_gpu_is_refused_in_words(rtx_engine: Path) -> None:
    if gpu_status().available:
        pytest.skip("checks the no-GPU path; this machine has a GPU")
    with pytest.raises(EdgeVisionError) as info:
        edgevision.load(rtx_engine)
    message = str(info.value)
    assert message.startswith("det.engine is a TensorRT engine and needs an NVIDIA GPU, but there is none here (no CUDA device")
    assert "Run its ONNX artifact (yolo11n-det.onnx) with the onnxruntime backend instead" in message


def test_onnx_on_the_tensorrt_backend(det_onnx: Path) -> None:
    with pytest.raises(EdgeVisionError, match=re.escape(f"build an engine on this device: edgevision build {det_onnx}")):
        edgevision.load(det_onnx, backend="tensorrt")


def test_engine_without_sidecar(rtx_engine: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.engine"
    shutil.copy(rtx_engine, bare)
    with pytest.raises(EdgeVisionError, match="bare.engine has no sidecar .* Engines from trtexec have none"):
        edgevision.load(bare)


# ---------------------------------------------------------------------------------------
# On a GPU (Jetson or desktop): build, run, compare with ONNX Runtime on real frames.

# precision -> (min F1@0.5, min AP50-95) against ONNX Runtime FP32 on the same frames.
GATES = {"fp32": (0.98, 0.95), "fp16": (0.95, 0.85)}


def _gpu_engine(onnx_path: Path, tmp_path: Path, precision: str) -> Path:
    flavor, _ = find_flavor()
    if precision == "fp16" and typed_only(flavor.module, flavor.major):
        pytest.skip(f"{flavor.label} builds FP16 only from an FP16 graph (edgevision convert --precision fp16)")
    engine = tmp_path / f"model.{precision}.engine"
    result = build_engine(onnx_path, engine, BuildOptions(precision=precision, batch=BatchRange(1, 1, 4)))
    print(f"\nbuilt {engine.name}: {result.layers} layers in {result.seconds:.1f} s ({result.reason})")
    return engine


@pytest.mark.gpu("tensorrt")
@pytest.mark.parametrize("graph", ["det_onnx", "seg_onnx"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_agrees_with_onnxruntime(
    graph: str, precision: str, request: pytest.FixtureRequest, vtest_frames: list[np.ndarray], tmp_path: Path
) -> None:
    onnx_path: Path = request.getfixturevalue(graph)
    engine = _gpu_engine(onnx_path, tmp_path, precision)
    with edgevision.load(engine, masks=False) as trt_model, edgevision.load(onnx_path, backend="onnxruntime", masks=False) as ort:
        assert trt_model.backend.name == "tensorrt"
        got = [trt_model(f) for f in vtest_frames]
        want = [ort(f) for f in vtest_frames]
        a = agreement(got, want)
        print(f"{graph} {precision}: {a.summary()}")
        min_f1, min_ap = GATES[precision]
        assert a.f1 >= min_f1 and a.ap50_95 >= min_ap, a.summary()
        # The dynamic batch axis: two frames at once give each frame its own detections.
        pair = trt_model.predict(vtest_frames[:2])
        for one, two in zip(got[:2], pair):
            assert len(one) == len(two) and np.allclose(one.xyxy, two.xyxy, atol=1.0)


@pytest.mark.gpu("tensorrt")
def test_instances_share_the_engine_and_cuda_graphs_replay_exactly(det_onnx: Path, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    engine = _gpu_engine(det_onnx, tmp_path, "fp32")
    with TensorRTBackend(engine) as cam1, TensorRTBackend(engine, cuda_graphs=False) as cam2:
        assert cam1.describe()["instances_sharing_engine"] == 2
        batch, _ = edgevision.load(det_onnx, backend="onnxruntime").preprocess(vtest_frames[:1])
        feeds = {"images": batch, "conf_threshold": np.array([0.25], np.float32), "iou_threshold": np.array([0.7], np.float32)}
        plain = cam2.infer(feeds)
        for _ in range(3):  # run 1 plain, run 2 captures, run 3 replays
            replay = cam1.infer(feeds)
            for name, value in plain.items():
                np.testing.assert_allclose(replay[name], value, rtol=1e-5, atol=1e-4, err_msg=name)
        graphs = cam1.describe()["cuda_graphs"]
        assert graphs["captured"] == 1, graphs  # type: ignore[index]
    with TensorRTBackend(engine) as alone:
        assert alone.describe()["instances_sharing_engine"] == 1  # closed instances let go of the engine


@pytest.mark.gpu("tensorrt")
@pytest.mark.parametrize(
    "change, message",
    [
        ({"trt_version": "0.0.0.1"}, "a TensorRT plan loads only in the version that built it"),
        ({"compute_capability": (5, 3)}, "The engine was built for a sm_53 GPU"),
    ],
)
def test_engine_for_another_device_is_refused_before_deserializing(
    det_onnx: Path, tmp_path: Path, change: dict, message: str
) -> None:
    engine = _gpu_engine(det_onnx, tmp_path, "fp32")
    side = read_sidecar(engine)
    if "compute_capability" in change and side.build.spec.trt_module == "tensorrt_rtx":
        pytest.skip("TensorRT-RTX engines are portable across compute capabilities 8.0+")
    build = dataclasses.replace(side.build, spec=dataclasses.replace(side.build.spec, **change))
    write_sidecar(engine, EngineSidecar(side.manifest, build))
    with pytest.raises(EdgeVisionError, match=re.escape(message)) as info:
        edgevision.load(engine)
    assert "Rebuild it on this device: edgevision build yolo11n-det.onnx --precision fp32" in str(info.value)
    # refused *before* deserializing: TensorRT never loaded this plan
    from edgevision.backends.tensorrt.backend import _EngineRegistry

    assert not any(key[0] == str(engine.resolve()) for key in _EngineRegistry._engines)
