"""INT8 on the real yolo11n-seg, calibrated on vtest.avi frames and gated on other frames of it.

Small frame counts keep this quick; the full-size numbers (256 calibration, 64 validation
frames) are in benchmarks/results/precision_report.md. What is shown here: the accuracy gate
holds on held-out frames for both INT8 graphs; the TensorRT graph has TensorRT's Q/DQ
placement and builds with TensorRT-RTX; the CPU twin really runs integer kernels on ONNX
Runtime; an over-aggressive quantization fails the gate with a non-zero exit and a rejected,
unaccepted artifact; `edgevision verify` re-runs the gate.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from converters.export import ConvertResult  # noqa: E402
from converters.onnx_io import read_manifest  # noqa: E402
from converters.precision import Budget, apply_precision  # noqa: E402
from converters.precision.int8 import Int8Options, build_int8  # noqa: E402
from edgevision.artifacts import resolve_artifact  # noqa: E402
from edgevision.cli import main as cli  # noqa: E402


def precision_args(**over: Any) -> argparse.Namespace:
    """The Namespace `edgevision convert` hands apply_precision, with test-sized frame counts."""
    base = dict(precision="int8", calib=None, calib_frames=16, val=None, val_frames=16, max_drop=None,
                keep_float="auto", calib_percentile=None, tune_frames=4, verify=None, speed_rounds=2)
    return argparse.Namespace(**{**base, **over})


@pytest.fixture(scope="module")
def int8_dir(seg_onnx: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A convert folder: FP32 yolo11n-seg + its INT8 artifacts (16 calibration, 16 held-out frames)."""
    folder = tmp_path_factory.mktemp("int8")
    fp32 = Path(shutil.copy(seg_onnx, folder / seg_onnx.name))
    out = apply_precision(ConvertResult(fp32, read_manifest(fp32)), precision_args(calib=str(vtest)))
    assert out == folder / "yolo11n-seg.int8.onnx"
    return folder


def report(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "yolo11n-seg.precision.json").read_text())
    return data


@pytest.mark.parametrize("variant", ["int8", "int8-cpu"])
def test_int8_holds_the_budget_on_held_out_frames(int8_dir: Path, variant: str) -> None:
    entry = report(int8_dir)["artifacts"][variant]
    ev = entry["evaluation"]
    assert entry["accepted"] and entry["failures"] == []
    assert ev["f1"] >= 0.95 and ev["ap50_95"] >= 0.90 and ev["mask_iou"] >= 0.85
    assert ev["frames"] == 16 and ev["reference_detections"] > 50  # vtest's pedestrians, not an empty scene
    manifest = read_manifest(int8_dir / entry["path"])
    meta = manifest.extra["precision"]
    assert manifest.precision == "int8" and meta["accepted"] is True and meta["variant"] == variant
    assert meta["reference"] == "yolo11n-seg.onnx" and meta["evaluation"]["f1"] == ev["f1"]
    assert meta["calibration"]["frames"] == 16


def test_report_shows_frames_layers_and_speed(int8_dir: Path) -> None:
    data = report(int8_dir)
    run = next(r for r in data["runs"] if r["precision"] == "int8")
    frames = run["frames"]
    assert frames["calib"]["frames"] == 16 and frames["val"]["held_out_of_calib"] and frames["val"]["disjoint"]
    # 108 Conv + 1 ConvTranspose + 2 MatMul: the nine C2f/C3k2/C2PSA blocks export cv1 as two convolutions
    assert "of 111 Conv/ConvTranspose/MatMul layers in INT8" in run["details"]["layers"]
    assert all(e["speed"]["onnxruntime"]["median_ms"] > 0 for e in data["artifacts"].values())
    md = (int8_dir / "yolo11n-seg.precision.md").read_text()
    assert "| int8 |" in md and "| int8-cpu |" in md and "kept in higher precision" in md
    # validated on vtest's own held-out frames: the report says this overstates other scenes (issue 12)
    assert "**warning**: validation frames come from the calibration source itself" in md and "AP50-95 pooled" in md
    assert all(0 < e["evaluation"]["ap50_95_pooled"] <= 1 for e in data["artifacts"].values() if e["evaluation"])


def test_trt_graph_has_tensorrt_qdq_placement(int8_dir: Path) -> None:
    """Symmetric int8 (zero point 0), per-channel weights, float bias, nothing quantized in the
    decode / NMS, and only Conv / ConvTranspose / MatMul read dequantized tensors."""
    model = onnx.load(str(int8_dir / "yolo11n-seg.int8.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and all(inits[n.input[2]].dtype == np.int8 and not inits[n.input[2]].any() for n in qdq)
    dq_out = {n.output[0]: n for n in qdq if n.op_type == "DequantizeLinear"}
    readers = [n for n in model.graph.node if any(i in dq_out for i in n.input)]
    assert {n.op_type for n in readers} == {"Conv", "ConvTranspose", "MatMul"}
    assert not [n.name for n in readers if n.name.startswith("/post/") or "/dfl/" in n.name]
    for n in readers:
        if n.op_type == "Conv":
            w = dq_out[n.input[1]]
            assert inits[w.input[0]].dtype == np.int8 and len(inits[w.input[1]]) == inits[w.input[0]].shape[0]
            assert len(n.input) < 3 or inits[n.input[2]].dtype == np.float32  # TensorRT wants a float bias
    kept = report(int8_dir)["artifacts"]["int8"]["kept_float"]
    assert len(readers) == 111 - len(kept)


def test_protection_keeps_the_worst_groups_float(seg320_onnx: Path, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    """With a budget nothing can meet, the search scores every layer group alone, keeps groups
    float worst first, and stops at its cap (here 10% of the layers) instead of un-quantizing the
    network. The TensorRT graph then has no Q/DQ into the kept layers; the CPU twin keeps at least
    the same blocks float (float weights; only the tensors leaving them are quantized, for their
    quantized consumers)."""
    manifest = read_manifest(seg320_onnx)
    opts = Int8Options(keep_float="auto", tune_frames=2, max_fraction=0.1, float_final=False, float_stem=0)
    build = build_int8(seg320_onnx, manifest, vtest_frames[:4], tmp_path / "t.onnx", tmp_path / "c.onnx",
                       Budget(1.0, 1.0, 1.0), opts, log=lambda _: None)
    p, reg = build.protection, build.regions
    assert p is not None and set(p.group_loss) == set(reg.groups) and all(v >= 0 for v in p.group_loss.values())
    assert p.protected and p.protected[0] == p.worst(1)[0][0]
    solo = [p.group_loss[g] for g in p.protected]
    assert solo == sorted(solo, reverse=True)
    assert sum(len(reg.groups[g]) for g in p.protected) <= 0.1 * len(reg.layers)
    assert len(p.steps) == len(p.protected) + 1 and p.steps[0]["protected"] == []
    kept = {name for g in p.protected for name in reg.groups[g]}
    assert set(build.kept_float) == kept and kept <= set(build.cpu_kept_float)

    trt = onnx.load(str(tmp_path / "t.onnx"))
    dq_out = {o for n in trt.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    readers = {n.name for n in trt.graph.node if any(i in dq_out for i in n.input)}
    assert readers == {layer.name for layer in reg.layers} - kept
    cpu = onnx.load(str(tmp_path / "c.onnx"))
    dq_cpu = {o for n in cpu.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in cpu.graph.node if n.op_type == "Conv" and any(n.name.startswith(g + "/") for g in p.protected)]
    assert convs and not [n.name for n in convs if n.input[1] in dq_cpu]  # float weights: the block stays float


def optimized_ops(path: Path, tmp: Path) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs on this CPU (after its fusions), with
    edgevision's session options (on x86 without VNNI: u8u8 kernels, see u8s8_saturates)."""
    from edgevision.backends.onnxruntime import session_options

    opts = session_options()
    opts.optimized_model_filepath = str(tmp / f"{path.stem}.optimized.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    counts: dict[str, int] = {}
    for n in onnx.load(opts.optimized_model_filepath).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def test_cpu_twin_runs_integer_kernels(int8_dir: Path, tmp_path: Path) -> None:
    """Why two INT8 files: ONNX Runtime on x86 fuses the CPU twin into QLinearConv, but runs
    every convolution of TensorRT's int8-symmetric graph in float behind Q/DQ nodes."""
    cpu = optimized_ops(int8_dir / "yolo11n-seg.int8-cpu.onnx", tmp_path)
    trt = optimized_ops(int8_dir / "yolo11n-seg.int8.onnx", tmp_path)
    # 82 of 99 convolutions (measured): the head's last convolutions, whose outputs the float decode
    # reads, and the stem (model.0-2) stay float (Int8Options.float_final / float_stem), and so does the
    # fixed DFL convolution
    assert cpu.get("QLinearConv", 0) >= 78 and cpu.get("QLinearSigmoid", 0) >= 70
    assert trt.get("QLinearConv", 0) == 0 and trt.get("DequantizeLinear", 0) >= 100



def test_cpu_twin_weights_fit_the_build_cpus_kernels(int8_dir: Path) -> None:
    """Built on an x86 CPU without VNNI, the twin has 7-bit weights (-64..64), which ONNX Runtime's
    fast u8s8 kernels sum without saturating; elsewhere 8-bit ones (exact there with VNNI / AMX,
    and on u8u8 kernels where such a file meets a CPU without VNNI). The CPU decides, hence the branch."""
    from edgevision.device import u8s8_saturates

    path = int8_dir / "yolo11n-seg.int8-cpu.onnx"
    meta = read_manifest(path).extra["precision"]
    bits = 7 if u8s8_saturates() else 8
    assert meta["weight_bits"] == bits and f"({bits}-bit)" in meta["quantization"]
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in inits and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim == 4]
    assert len(weights) >= 80  # every convolution but the float stem and final layers
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == (64 if bits == 7 else 127)


def test_run_picks_the_fastest_accepted_artifact(int8_dir: Path) -> None:
    data = report(int8_dir)
    fastest = data["fastest"]["onnxruntime"]
    entry = data["artifacts"][fastest]
    assert entry["accepted"] and "onnxruntime" in entry["targets"]
    assert all(entry["speed"]["onnxruntime"]["speedup_vs_fp32"] >= e["speed"]["onnxruntime"]["speedup_vs_fp32"]
               for e in data["artifacts"].values() if e["accepted"])
    assert resolve_artifact(int8_dir) == int8_dir / entry["path"]
    assert resolve_artifact(int8_dir, "tensorrt") == int8_dir / "yolo11n-seg.int8.onnx"


def test_verify_reruns_the_gate(int8_dir: Path, vtest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["verify", str(int8_dir / "yolo11n-seg.int8.onnx"), "--val", str(vtest), "--val-frames", "6"]) == 0
    out = capsys.readouterr().out
    assert "verdict    PASS" in out and "reference  " in out


@pytest.fixture(scope="module")
def rejected(seg_checkpoint: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """`edgevision convert --precision int8` forced over-aggressive: no layer protected and
    activations clipped at their 90th percentile (10% of every tensor saturates)."""
    folder = tmp_path_factory.mktemp("int8_bad")
    argv = ["convert", str(seg_checkpoint), "-o", str(folder), "--imgsz", "320", "--precision", "int8",
            "--calib", str(vtest), "--calib-frames", "8", "--val-frames", "8", "--keep-float", "none",
            "--calib-percentile", "90", "--tune-frames", "2", "--speed-rounds", "2"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli(argv)
    return code, err.getvalue(), folder


def test_overaggressive_int8_fails_the_gate(rejected: tuple[int, str, Path]) -> None:
    code, err, folder = rejected
    assert code == 1
    assert "INT8 misses the accuracy budget" in err and "hurt most when quantized alone: /model/" in err
    assert not (folder / "yolo11n-seg.int8.onnx").exists()
    bad = folder / "yolo11n-seg.int8.rejected.onnx"
    assert bad.is_file() and read_manifest(bad).extra["precision"]["accepted"] is False
    entry = report(folder)["artifacts"]["int8"]
    assert entry["accepted"] is False and entry["failures"] and entry["path"] == bad.name
    assert resolve_artifact(folder, "tensorrt").name != bad.name  # never picked to run


def test_verify_fails_a_rejected_artifact(
    rejected: tuple[int, str, Path], vtest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, folder = rejected
    assert cli(["verify", str(folder / "yolo11n-seg.int8.rejected.onnx"), "--val", str(vtest), "--val-frames", "6"]) == 1
    captured = capsys.readouterr()
    assert "verdict    FAIL" in captured.out and "misses the accuracy budget" in captured.err


@pytest.mark.parametrize("name", ["accepted int8", "rejected int8", "cpu twin"])
def test_qdq_graphs_build_with_tensorrt_rtx(name: str, int8_dir: Path, rejected: tuple[int, str, Path]) -> None:
    """Every TensorRT Q/DQ graph made here parses and builds (dynamic batch 1..4) with TensorRT-RTX.
    The CPU twin is not for TensorRT (its manifest says so): build refuses it by name, before parsing,
    and points to the TensorRT graph of the same calibration."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine
    from edgevision.errors import EdgeVisionError

    paths = {"accepted int8": int8_dir / "yolo11n-seg.int8.onnx", "cpu twin": int8_dir / "yolo11n-seg.int8-cpu.onnx",
             "rejected int8": rejected[2] / "yolo11n-seg.int8.rejected.onnx"}
    options = BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 4), progress=False)
    if name == "cpu twin":
        assert read_manifest(paths[name]).extra["precision"]["targets"] == ["onnxruntime"]
        with pytest.raises(EdgeVisionError, match=r"onnxruntime only; TensorRT cannot read it.*edgevision build yolo11n-seg\.int8\.onnx"):
            build_engine(paths[name], options=options, log=lambda _: None)
        return
    result = build_engine(paths[name], options=options, log=lambda _: None)
    assert result.layers > 100 and result.plan_bytes > 1_000_000


def test_detector_family_takes_the_same_path(det_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    """Nothing here is segmenter-specific: the detector (no masks) goes through the same options."""
    fp32 = Path(shutil.copy(det_onnx, tmp_path / det_onnx.name))
    out = apply_precision(ConvertResult(fp32, read_manifest(fp32)),
                          precision_args(calib=str(vtest), calib_frames=16, val_frames=12, keep_float="none"))
    data = json.loads((tmp_path / "yolo11n-det.precision.json").read_text())
    for variant in ("int8", "int8-cpu"):
        # Judged by detections alone (no masks), and the verdict follows the default detection budget
        # (F1 >= 0.95). With 8 calibration frames both graphs sat on that line (TensorRT graph F1 0.948 with
        # the stem float; hence 16 here; CPU twin F1 0.944-0.96 over
        # 12 frames, ~115 detections); the budget itself is held in test_int8_holds_the_budget_...
        art = data["artifacts"][variant]
        ev = art["evaluation"]
        assert ev["mask_iou"] is None and ev["reference_detections"] >= 50
        assert art["accepted"] == (not art["failures"]) and (ev["f1"] >= 0.95 or not art["accepted"])
    assert data["artifacts"]["int8"]["accepted"]
    assert out == tmp_path / "yolo11n-det.int8.onnx" and read_manifest(out).task == "detect"


# Every artifact runs in OpenVINO too. The TensorRT placement runs there with OpenVINO's own INT8
# transformations off (they miscompute it), i.e. ONNX Runtime's arithmetic; the CPU twin runs on
# OpenVINO's integer kernels, whose rounding differs a little from ONNX Runtime's. Even the float
# path differs: AVX2 and AVX-512 convolution kernels round differently, which flips a few
# quantization steps (measured on an AVX2-only EPYC: 66 vs 67 detections over 8 frames, F1 0.977
# between the runtimes, while a graph with no Q/DQ agrees at 1.0). What a user feels is the
# agreement with FP32, so that is held to one budget: OpenVINO within 0.01 F1 of ONNX Runtime.
@pytest.mark.parametrize("variant", ["int8", "int8-cpu"])
def test_int8_artifacts_run_in_openvino(int8_dir: Path, variant: str, vtest_frames: list[np.ndarray]) -> None:
    pytest.importorskip("openvino")
    from tests.portability import openvino_vs_onnxruntime

    entry = report(int8_dir)["artifacts"][variant]
    a, worst_mask = openvino_vs_onnxruntime(int8_dir / entry["path"], vtest_frames)
    print(f"\n{variant} OpenVINO vs ONNX Runtime: {a.summary()}; lowest mask IoU {worst_mask:.3f}")
    assert a.reference_detections >= 40 and a.f1 >= 0.95
    ort_f1 = entry["evaluation"]["f1"]  # vs FP32 on the 16 held-out frames, as ONNX Runtime runs it
    ov_f1 = entry["runtimes"]["openvino"]["evaluation"]["f1"]  # the same, as OpenVINO runs it
    assert abs(ov_f1 - ort_f1) <= 0.01, (variant, ov_f1, ort_f1)


def test_openvino_configurations_are_gated_and_timed(int8_dir: Path) -> None:
    """OpenVINO at f32 and bf16 are accuracy decisions: each (artifact, configuration) has its
    own verdict and speed, and the folder's pick is the fastest accepted pair."""
    pytest.importorskip("openvino")
    from converters.precision.pipeline import extra_configs
    from edgevision.artifacts import accepted_on, resolve

    data = report(int8_dir)
    configs = extra_configs()
    assert "openvino" in configs
    for name, entry in data["artifacts"].items():
        assert set(entry["speed"]) == {"onnxruntime", *configs}, name
        for config in configs:
            verdict = entry["runtimes"][config]
            assert verdict["evaluation"]["frames"] == 16 and isinstance(verdict["accepted"], bool)
    assert data["artifacts"]["fp32"]["runtimes"]["openvino"]["evaluation"]["f1"] == 1.0  # f32 is FP32
    # The pick, recomputed from the raw numbers: the highest speedup among accepted pairs.
    pairs = {(n, c): e["speed"][c]["speedup_vs_fp32"] for n, e in data["artifacts"].items() for c in e["speed"]
             if (e["runtimes"][c]["accepted"] if c in configs else e["accepted"])}
    want = max(pairs, key=lambda k: pairs[k])
    picked = resolve(int8_dir, ["onnxruntime", "openvino"])
    assert (picked.path, picked.config) == (int8_dir / data["artifacts"][want[0]]["path"], want[1])
    assert all(accepted_on(data["artifacts"][n], c) for n, c in pairs)
    md = (int8_dir / "yolo11n-seg.precision.md").read_text()
    assert "| int8-cpu | openvino |" in md and f"runs **{want[0]}** on **{want[1]}**" in md


def test_openvino_int8_kernels_still_miscompute_the_tensorrt_placement(int8_dir: Path, vtest_frames: list[np.ndarray]) -> None:
    """Why the TensorRT placement runs on OpenVINO with its INT8 transformations off. The day
    this fails, OpenVINO computes it right: let allows_int8_kernels() take it (it is faster)."""
    ov = pytest.importorskip("openvino")
    if "INT8" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no INT8 kernels in OpenVINO: its low-precision transformations do not run")
    import edgevision
    from edgevision.metrics import agreement

    path = int8_dir / "yolo11n-seg.int8.onnx"
    with edgevision.load(path, backend="onnxruntime", masks=False) as ort_model, \
            edgevision.load(path, backend="openvino", masks=False, cache_dir="", int8_kernels=True) as ov_model:
        a = agreement(ov_model.predict(vtest_frames[:4]), ort_model.predict(vtest_frames[:4]))
    assert a.reference_detections > 20 and a.f1 < 0.5, a.summary()


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
