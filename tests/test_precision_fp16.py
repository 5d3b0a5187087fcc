"""FP16 of the real yolo11n-seg for strongly typed TensorRT: gated against FP32 on vtest.avi
frames, FP32 kept where it matters, and built by TensorRT-RTX."""
from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

from converters.export import ConvertResult  # noqa: E402
from converters.onnx_io import read_manifest  # noqa: E402
from converters.precision import apply_precision  # noqa: E402


@pytest.fixture(scope="module")
def fp16_path(seg_onnx: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fp16")
    fp32 = Path(shutil.copy(seg_onnx, folder / seg_onnx.name))
    args = argparse.Namespace(precision="fp16", calib=None, calib_frames=0, val=str(vtest), val_frames=10,
                              max_drop=None, verify=None)
    return apply_precision(ConvertResult(fp32, read_manifest(fp32)), args)


def test_fp16_holds_its_budget(fp16_path: Path) -> None:
    assert fp16_path.name == "yolo11n-seg.fp16.onnx"
    entry = json.loads((fp16_path.parent / "yolo11n-seg.precision.json").read_text())["artifacts"]["fp16"]
    ev = entry["evaluation"]
    assert entry["accepted"] and ev["f1"] >= 0.99 and ev["ap50_95"] >= 0.98 and ev["mask_iou"] >= 0.97
    manifest = read_manifest(fp16_path)
    assert manifest.precision == "fp16" and manifest.extra["precision"]["accepted"] is True


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def _outputs(model: onnx.ModelProto, want: Callable[[onnx.NodeProto], bool]) -> list[str]:
    return [t for n in model.graph.node if want(n) for t in n.output]


@pytest.mark.parametrize(
    "what, pick",
    [
        ("graph inputs and outputs", lambda m: [v.name for v in [*m.graph.input, *m.graph.output]]),
        ("every Softmax (DFL decode, attention)", lambda m: _outputs(m, lambda n: n.op_type == "Softmax")),
        ("the NMS IoU products", lambda m: _outputs(m, lambda n: n.name.startswith("/post/") and n.op_type == "Mul")),
        ("the decoded boxes", lambda m: _outputs(m, lambda n: n.name == "/model/model.23/Concat_13")),
    ],
)
def test_fp16_keeps_sensitive_tensors_fp32(fp16_path: Path, what: str, pick: object) -> None:
    model = onnx.load(str(fp16_path))
    types = _elem_types(model)
    names = pick(model)  # type: ignore[operator]
    assert names, what
    half = [n for n in names if types.get(n) == onnx.TensorProto.FLOAT16]
    assert not half, f"{what} in FP16: {half[:3]}"


def test_fp16_network_is_half(fp16_path: Path) -> None:
    model = onnx.load(str(fp16_path))
    types = _elem_types(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv" and "/dfl/" not in n.name]
    assert len(convs) >= 99 and all(types[n.input[1]] == onnx.TensorProto.FLOAT16 for n in convs)


def test_fp16_builds_strongly_typed_with_tensorrt_rtx(fp16_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine

    result = build_engine(fp16_path, options=BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 4),
                                                          progress=False), log=lambda _: None)
    assert result.layers > 100 and result.plan_bytes > 1_000_000


def test_fp16_runs_in_openvino(fp16_path: Path, vtest_frames: list) -> None:
    pytest.importorskip("openvino")
    from tests.portability import openvino_vs_onnxruntime

    a, worst_mask = openvino_vs_onnxruntime(fp16_path, vtest_frames)
    print(f"\nfp16 OpenVINO vs ONNX Runtime: {a.summary()}; lowest mask IoU {worst_mask:.3f}")
    assert a.reference_detections >= 40 and a.f1 >= 0.98


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
