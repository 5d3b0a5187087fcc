"""NNCF as an INT8 engine (`--int8-engine nncf`): its graphs run on ONNX Runtime, the TensorRT one has
int8-only Q/DQ and builds with TensorRT-RTX, and the accuracy gate judges them like any INT8 graph.

Small frame counts keep this quick (8 calibration frames); the full-size comparison with
edgevision's own quantizer and Ultralytics' NNCF export is benchmarks/results/int8_peers.md.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from converters.onnx_io import read_manifest  # noqa: E402
from converters.precision.nncf_engine import signed_only, to_signed  # noqa: E402


def _qdq_model(zero_point: np.ndarray, scale: float) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y with one shared scale / zero point."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [numpy_helper.from_array(np.array(scale, np.float32), "s"),
                               numpy_helper.from_array(zero_point, "zp")])
    # NNCF's graphs declare the types of the zero point and the quantized tensor: to_signed must follow
    zp_type = helper.np_dtype_to_tensor_dtype(zero_point.dtype)
    graph.value_info.extend([helper.make_tensor_value_info("zp", zp_type, []),
                             helper.make_tensor_value_info("q", zp_type, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from edgevision.backends.onnxruntime import make_session

    out: np.ndarray = make_session(model.SerializeToString()).run(["y"], {"x": x})[0]
    return out


def test_to_signed_rewrites_symmetric_uint8_only() -> None:
    """A uint8 quantizer with zero point 0 becomes int8 over the same range (one bit coarser, as TensorRT's
    own int8 is); an asymmetric one (zero point 128: MIXED's) is not touched."""
    x = np.array([0.0, 0.5, 1.7, 2.55], np.float32)
    sym = _qdq_model(np.array(0, np.uint8), 0.01)
    before = _run(sym, x)
    assert not signed_only(sym) and to_signed(sym) == 1 and signed_only(sym)
    onnx.checker.check_model(sym, full_check=True)  # the declared types follow (what convert checks)
    after = _run(sym, x)
    step = 0.01 * 255 / 127
    assert np.abs(before - x).max() <= 0.005 + 1e-6 and np.abs(after - x).max() <= step / 2 + 1e-6
    assert after[-1] == pytest.approx(2.55, abs=1e-5)  # the top of the range is still representable

    asym = _qdq_model(np.array(128, np.uint8), 0.01)
    assert to_signed(asym) == 0 and not signed_only(asym)


@pytest.fixture(scope="module")
def nncf_build(seg_onnx: Path, vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """yolo11n-seg's INT8 graphs written by NNCF (8 calibration frames from the first 80% of the
    40 test frames, stem and final layers float; the CPU twin with 7-bit weights, what a build on
    a CPU without VNNI writes, so the test is the same on every machine)."""
    pytest.importorskip("nncf", reason="NNCF is an optional engine: pip install 'edgevision[nncf]'")
    from converters.precision.budget import DEFAULT_BUDGETS
    from converters.precision.int8 import Int8Options, build_int8

    folder = tmp_path_factory.mktemp("nncf")
    fp32 = Path(shutil.copy(seg_onnx, folder / seg_onnx.name))
    trt, cpu = folder / "int8.onnx", folder / "int8-cpu.onnx"
    build = build_int8(fp32, read_manifest(fp32), vtest_frames40[:32:4], trt, cpu, DEFAULT_BUDGETS["int8"],
                       Int8Options(keep_float="none", engine="nncf", cpu_weight_bits=7), log=lambda _: None)
    assert build.cpu_weight_bits == 7 and len(build.kept_float) >= 10  # stem + final layers
    return {"fp32": fp32, "int8": trt, "int8-cpu": cpu}


@pytest.mark.slow  # quantizes a converted model (the to_signed test above is the fast tier's)
def test_nncf_graphs_pass_the_gate_on_onnx_runtime(nncf_build: dict[str, Path], vtest_frames40: list[np.ndarray]) -> None:
    """Both NNCF graphs run on ONNX Runtime, keep the manifest, and the gate judges them on frames
    calibration did not use; the TensorRT graph has int8 (never uint8) quantizers, the twin MIXED's uint8 ones."""
    from converters.precision.budget import DEFAULT_BUDGETS
    from converters.precision.evaluate import prepare
    from converters.precision.gate import gate

    fp32 = nncf_build["fp32"]
    files = {k: nncf_build[k] for k in ("int8", "int8-cpu")}
    for path in files.values():
        assert read_manifest(path).input_hw == read_manifest(fp32).input_hw
    assert signed_only(onnx.load(str(files["int8"])))
    assert not signed_only(onnx.load(str(files["int8-cpu"])))
    val = prepare(fp32, vtest_frames40[-8:])  # from after every calibration frame
    results = gate(fp32, files, val, DEFAULT_BUDGETS["int8"], backend="onnxruntime")
    for name, r in results.items():
        ev = r.evaluation
        print(f"\nNNCF {name}: {ev.summary()}")
        assert ev.reference_detections >= 40 and ev.f1 >= 0.9, (name, ev.summary())
    assert results["int8"].accepted, results["int8"].failures  # the TensorRT file holds the INT8 budget


def _weight_ints(path: Path) -> list[np.ndarray]:
    """The int8 weights of every DequantizeLinear that reads an initializer (NNCF stores them quantized),
    depthwise convolutions left out: NNCF's overflow fix does not cover them (its Conv / ConvTranspose /
    MatMul metatypes), as their kernels do not add u8 x s8 products in pairs."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    grouped = {i for n in model.graph.node if n.op_type == "Conv"
               and any(a.name == "group" and helper.get_attribute_value(a) > 1 for a in n.attribute) for i in n.input}
    return [numpy_helper.to_array(inits[n.input[0]]) for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.output[0] not in grouped
            and inits[n.input[0]].data_type == onnx.TensorProto.INT8]


@pytest.mark.slow
def test_nncf_cpu_twin_has_7_bit_weights(nncf_build: dict[str, Path]) -> None:
    """A 7-bit twin keeps every weight in -64..64 (NNCF's overflow fix on all layers), so the fast
    u8 x s8 kernels of a CPU without VNNI sum them without saturating; the TensorRT graph uses the
    full int8 range."""
    twin, trt = _weight_ints(nncf_build["int8-cpu"]), _weight_ints(nncf_build["int8"])
    assert len(twin) >= 70 and len(trt) == len(twin)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in twin) <= 64
    assert sum(int(np.abs(w.astype(np.int32)).max()) > 64 for w in trt) >= len(trt) // 2


@pytest.mark.slow
def test_nncf_trt_graph_builds_with_tensorrt_rtx(nncf_build: dict[str, Path]) -> None:
    """NNCF's PERFORMANCE graph (after to_signed) parses and builds with TensorRT-RTX, dynamic batch 1..4."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine

    options = BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 4), progress=False)
    result = build_engine(nncf_build["int8"], options=options, log=lambda _: None)
    assert result.layers > 100 and result.plan_bytes > 1_000_000


def test_nncf_engine_refuses_edgevision_calibration_flags(seg_checkpoint: Path, vtest: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """NNCF measures its own ranges: --calib-method would be silently ignored, so it is refused
    before any conversion."""
    from edgevision.cli import main as cli

    out = tmp_path / "out"
    assert cli(["convert", str(seg_checkpoint), "-o", str(out), "--precision", "int8", "--int8-engine", "nncf",
                "--calib-method", "mse", "--calib", str(vtest)]) == 1
    assert "the NNCF engine measures its own" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_nncf_engine_writes_a_gated_openvino_ir_that_the_folder_runs(seg_checkpoint: Path, vtest: Path,
                                                                     tmp_path: Path) -> None:
    """With OpenVINO installed the NNCF engine also writes <stem>.int8-ov.xml/.bin (NNCF's OpenVINO
    backend): gated and timed on OpenVINO alone, carrying its manifest like the ONNX files, loadable
    by path, and picked from the folder when it is the fastest accepted configuration. At 320x320 with
    16 calibration frames to stay quick; the 640 figures are benchmarks/results/bench_cpu.md."""
    pytest.importorskip("nncf", reason="NNCF is an optional engine: pip install 'edgevision[nncf]'")
    pytest.importorskip("openvino")
    import json

    import edgevision
    from edgevision.artifacts import resolve
    from edgevision.cli import main as cli
    from edgevision.sources import sample_frames

    out = tmp_path / "out"
    assert cli(["convert", str(seg_checkpoint), "-o", str(out), "--imgsz", "320", "--precision", "int8",
                "--int8-engine", "nncf", "--calib", str(vtest), "--calib-frames", "16", "--val-frames", "16",
                "--keep-float", "none", "--speed-rounds", "2"]) == 0
    report = json.loads((out / "yolo11n-seg.precision.json").read_text())
    entry = report["artifacts"]["int8-ov"]
    xml = out / entry["path"]
    assert xml.suffix == ".xml" and xml.is_file() and xml.with_suffix(".bin").is_file()
    assert not list(out.glob(".*partial*"))  # no temporary file left behind
    assert entry["targets"] == ["openvino"] and set(entry["speed"]) == {"openvino"}
    assert set(entry["runtimes"]) == {"openvino"}  # judged where it runs; ONNX Runtime cannot read an IR
    ev = entry["evaluation"]
    assert ev["reference_detections"] >= 40 and ev["f1"] >= 0.85, ev  # 16 held-out frames, vs FP32
    model = edgevision.load(xml)  # by suffix: OpenVINO; the manifest came along in the IR
    stamped = model.manifest.extra["precision"]
    assert model.backend.name == "openvino" and stamped["variant"] == "int8-ov"
    assert stamped["accepted"] is entry["accepted"]  # re-stamped with the gate's verdict after the gate ran
    frames, _ = sample_frames(vtest, 2)
    assert sum(len(model(f)) for f in frames) > 0
    picked = resolve(out, ["onnxruntime", "openvino"])
    best = report["fastest_run"]
    assert (picked.path.name, picked.config) == (report["artifacts"][best["variant"]]["path"], best["config"])
    assert "int8-ov" in (out / "yolo11n-seg.precision.md").read_text()
