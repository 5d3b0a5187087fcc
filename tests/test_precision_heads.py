"""`--precision fp16|int8` for issue 10's heads: YOLO26n's end-to-end (NMS-free) head, YOLO11n pose
and OBB, a timm classifier, and RT-DETR (FP16). OBB, timm and RT-DETR with EDGEVISION_ALL_FAMILIES=1.

Models: Ultralytics architectures from their YAML / a timm architecture, seeded random weights with
BatchNorm statistics re-estimated on vtest.avi frames (tests/ultralytics_models.py,
tests/test_ultralytics_e2e.py, tests/families.py), converted at small sizes (224-320).
Data: BN statistics and conversion checks use frames sampled over the whole video (vtest_frames40);
the gate calibrates INT8 on 8 frames of frames 0..635 and validates every variant on 8 frames of the
held-out last 20% (636..794), as `edgevision convert --calib vtest.avi` splits it: different frames.

What is shown: each variant gets the gate's verdict at the default budget, and that verdict is exactly
the measured numbers against the budget (the task's own measures: pose adds the keypoint OKS of
matched pairs, OBB matches by rotated IoU); no Q/DQ and no float16 feeds a TopK or the decode between
the last layers and the TopK; every FP16 and Q/DQ graph parses and builds with TensorRT-RTX.

Random-weight networks are not trained ones, and these are ill-conditioned: FP32 fed the same frames
with +-1 grey level on a third of the pixels agrees with itself at F1 0.72 (YOLO26n) and 0.91 (pose,
keypoint OKS 0.51), measured. FP16's rounding moves them less than that but can miss the default 0.99
F1 bar, so the outcome is not fixed here: test_fp16_disagrees_less_than_one_grey_level holds FP16 to
agreeing better than that noise does, a bar a broken FP16 graph misses.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("ultralytics")

from converters.export import ConvertResult, ExportOptions, convert  # noqa: E402
from converters.onnx_io import read_manifest  # noqa: E402
from converters.precision import apply_precision, parse_budget, pipeline  # noqa: E402
from converters.precision.budget import task_limits  # noqa: E402
from converters.precision.qdq import quantized_layers  # noqa: E402
from converters.precision.regions import WEIGHTED_OPS, find_regions  # noqa: E402
from edgevision.errors import EdgeVisionError  # noqa: E402

pytestmark = pytest.mark.slow
N_FRAMES = 8  # calibration frames, and validation frames
LAYER_OPS = {*WEIGHTED_OPS, "Gemm", "MatMul"}


@dataclass
class Case:
    task: str
    make: Callable[[list[np.ndarray], Path], Path]  # (vtest_frames40, folder) -> verified FP32 .onnx
    int8: bool = True


def _yolo26(frames: list[np.ndarray], tmp: Path) -> Path:
    from tests.test_ultralytics_e2e import e2e_checkpoint

    ckpt = e2e_checkpoint("yolo26n.yaml", frames[:16], tmp / "yolo26n.pt")
    return _converted(convert(ckpt, tmp / "out", ExportOptions(imgsz=(320, 320)), frames[16:20]))


def _task(task: str, nc: int) -> Callable[[list[np.ndarray], Path], Path]:
    def make(frames: list[np.ndarray], tmp: Path) -> Path:
        from tests.ultralytics_models import yolo_task_checkpoint

        ckpt = yolo_task_checkpoint(task, frames[:16], tmp / f"yolo11n-{task}.pt", 256, nc)
        return _converted(convert(ckpt, tmp / "out", ExportOptions(imgsz=(256, 256)), frames[16:24]))
    return make


def _timm(frames: list[np.ndarray], tmp: Path) -> Path:
    timm = pytest.importorskip("timm")
    import torch

    from tests.families import recalibrate_bn

    torch.manual_seed(0)
    name = "mobilenetv3_small_050"
    model = recalibrate_bn(timm.create_model(name, pretrained=False, num_classes=12), frames[:16], (224, 224))
    torch.save(model.state_dict(), tmp / "mnv3-timm.pth")
    return _converted(convert(tmp / "mnv3-timm.pth", tmp / "out", ExportOptions(arch=f"timm:{name}"), frames[16:20]))


def _rtdetr(frames: list[np.ndarray], tmp: Path) -> Path:
    import torch
    from ultralytics.nn.tasks import RTDETRDetectionModel

    from tests.families import recalibrate_bn

    torch.manual_seed(0)
    model = RTDETRDetectionModel("rtdetr-l.yaml", nc=3, verbose=False)
    model.names = {0: "a", 1: "b", 2: "c"}
    recalibrate_bn(model, frames[:4], (320, 320), imagenet=False)
    torch.save({"model": model.eval().half(), "train_args": {"task": "detect"}}, tmp / "rtdetr.pt")
    return _converted(convert(tmp / "rtdetr.pt", tmp / "out", ExportOptions(imgsz=(320, 320), conf=0.25),
                              frames[16:20]))


def _converted(result: ConvertResult) -> Path:
    assert result.verdict is not None and result.verdict.passed
    return result.onnx_path


CASES = {
    "yolo26n": Case("detect", _yolo26),
    "pose": Case("pose", _task("pose", 1)),
    "obb": Case("obb", _task("obb", 3)),
    "timm": Case("classify", _timm),
    "rtdetr": Case("detect", _rtdetr, int8=False),
}
# make test runs the end-to-end head (its TensorRT-version need) and pose (the OKS judge); OBB, timm
# and RT-DETR add ~8 min on the 2-core machine and run with EDGEVISION_ALL_FAMILIES=1
DEFAULT = ("yolo26n", "pose")
TESTED = [k for k in CASES if k in DEFAULT or os.environ.get("EDGEVISION_ALL_FAMILIES") == "1"]


def _args(**over: Any) -> argparse.Namespace:
    base = dict(precision="int8", calib=None, calib_frames=N_FRAMES, val=None, val_frames=N_FRAMES, max_drop=None,
                keep_float="none", calib_percentile=None, tune_frames=4, verify=None, speed_rounds=2)
    return argparse.Namespace(**{**base, **over})


@pytest.fixture(scope="module", params=TESTED)
def runs(request: pytest.FixtureRequest, vtest: Path, vtest_frames40: list[np.ndarray],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """FP16 then INT8 (default budgets, --keep-float none) into one folder, as two `convert --precision`
    runs would. A rejection is a verdict too: its report is read like an acceptance's."""
    name = request.param
    case = CASES[name]
    src = case.make(vtest_frames40, tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.mktemp(f"{name}-precision")
    path = Path(shutil.copy(src, folder / src.name))
    result = ConvertResult(path, read_manifest(path))
    errors: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "extra_configs", lambda: [])  # ONNX Runtime's gate decides; OpenVINO is not the subject
        for precision in ("fp16", "int8") if case.int8 else ("fp16",):
            try:
                apply_precision(result, _args(precision=precision, calib=str(vtest)))
            except EdgeVisionError as exc:  # rejected: the message names the failures, the report holds the numbers
                errors[precision] = str(exc)
    data = json.loads((folder / f"{path.stem}.precision.json").read_text())
    for variant, e in data["artifacts"].items():
        print(f"\n{name} {variant}: accepted {e['accepted']} failures {e.get('failures')} {e.get('evaluation')}")
    return {"name": name, "case": case, "fp32": path, "report": data, "folder": folder, "errors": errors}


def _file(runs: dict[str, Any], variant: str) -> Path:
    return runs["folder"] / runs["report"]["artifacts"][variant]["path"]


def _short_of_budget(ev: dict[str, Any], task: str, precision: str) -> list[str]:
    """The task's measures in `ev` that miss the default budget of `precision`, by label."""
    budget = parse_budget(None, precision, task)
    short = []
    for lim in task_limits(task).limits:
        got = ev.get(lim.measure)
        if got is None or (lim.optional and got != got):  # not measured for this task (nan: no matched pair)
            continue
        limit = getattr(budget, lim.field)
        if not (got >= limit if lim.minimum else got <= limit):
            short.append(lim.label.format(k=ev.get("k", "k")))
    return short


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_verdict_is_the_measured_numbers(runs: dict[str, Any], precision: str) -> None:
    """Accepted exactly when every measure of the task holds the default budget; each failure names a
    measure that falls short, with its number; a rejection exits with the budget's message. The gate
    measured what fits the task on the held-out frames calibration never saw."""
    case, data = runs["case"], runs["report"]
    if precision == "int8" and not case.int8:
        pytest.skip(f"{runs['name']}: FP16 only")
    assert data["task"] == case.task
    run = next(r for r in data["runs"] if r["precision"] == precision)
    assert run["frames"]["val"]["held_out_of_calib"] and run["frames"]["val"]["disjoint"]
    for variant in (precision, "int8-cpu") if precision == "int8" else (precision,):
        e = data["artifacts"][variant]
        ev = e["evaluation"]
        assert ev["frames"] == N_FRAMES
        if case.task == "classify":
            assert ev["reference_classes"] >= 2  # the frames tell classes apart
        else:
            assert ev["reference_detections"] >= 20, ev
            assert (ev["keypoint_oks"] is not None) == (case.task == "pose")
        if case.task == "pose":
            assert ev["keypoint_pairs"] >= 10
        short = _short_of_budget(ev, case.task, precision)
        assert e["accepted"] == (not short)
        assert sorted(f.rsplit(" ", 3)[0] for f in e["failures"]) == sorted(short), (e["failures"], short)
    accepted = data["artifacts"][precision]["accepted"]
    assert (precision in runs["errors"]) == (not accepted)
    if not accepted:
        assert f"{precision.upper()} misses the accuracy budget" in runs["errors"][precision]


def test_fp16_disagrees_less_than_one_grey_level(runs: dict[str, Any], vtest: Path) -> None:
    """FP16 agrees with FP32 better than FP32 agrees with itself when the gate's validation frames get
    +-1 grey level on about a third of their pixels (seeded; less than any camera's noise): on these
    random-weight models the conditioning, not the FP16 graph, keeps FP16 from the default bar (module
    docstring). A well-conditioned model is held to the default bar itself."""
    import edgevision
    from converters.precision.evaluate import AP_CONF, prepare
    from converters.precision.judge import evaluate, results
    from edgevision.sources import sample_frames

    frames, _ = sample_frames(vtest, N_FRAMES, skip=set(range(636)))
    rng = np.random.default_rng(0)
    noisy = [np.clip(f.astype(np.int16) + np.round(rng.normal(0, 0.5, f.shape)).astype(np.int16), 0, 255)
             .astype(np.uint8) for f in frames]
    with edgevision.load(runs["fp32"], backend="onnxruntime", conf=AP_CONF, masks=False) as model:
        ref = results(model.infer, prepare(runs["fp32"], frames), model.manifest)
        grey = evaluate(results(model.infer, prepare(runs["fp32"], noisy), model.manifest), ref, model.manifest).as_dict()
    fp16 = runs["report"]["artifacts"]["fp16"]["evaluation"]
    budget = parse_budget(None, "fp16", runs["case"].task)
    keys = {"classify": [("top1_agreement", budget.min_top1)], "pose": [("f1", budget.min_f1),
                                                                         ("keypoint_oks", budget.min_oks)]}
    for key, bar in keys.get(runs["case"].task, [("f1", budget.min_f1)]):
        print(f"\n{runs['name']}: FP16 {key} {fp16[key]:.4f}; FP32 on frames +-1 grey level {grey[key]:.4f}")
        assert fp16[key] >= min(grey[key], bar)


def _reads_dq(model: Any) -> tuple[dict[str, Any], set[str]]:
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name: n for n in model.graph.node}, dq


def test_no_qdq_feeds_topk_or_the_decode(runs: dict[str, Any]) -> None:
    """In the Q/DQ graph, INT8 data enters Conv / Gemm / MatMul layers only; every TopK, and every op
    between the last layers and a TopK (the box / keypoint / angle decode, the scores), reads float."""
    if not runs["case"].int8:
        pytest.skip(f"{runs['name']}: FP16 only")
    int8 = onnx.load(str(_file(runs, "int8")))
    nodes, dq = _reads_dq(int8)
    q = quantized_layers(int8)
    assert q and {nodes[n].op_type for n in q} <= LAYER_OPS
    producer = {o: n for n in int8.graph.node for o in n.output}
    topks = [n for n in int8.graph.node if n.op_type == "TopK"]
    assert topks
    seen: set[str] = set()
    stack = list(topks)
    while stack:  # upstream of every TopK, down to (not into) the layers
        n = stack.pop()
        if n.name in seen or n.op_type == "DequantizeLinear":
            continue
        seen.add(n.name)
        if n.op_type in LAYER_OPS and n.name in q:
            continue
        assert not set(n.input) & dq, f"{n.op_type} {n.name} reads INT8 data"
        stack += [producer[i] for i in n.input if i in producer]
    assert len(seen) > len(topks)
    fp32 = onnx.load(str(runs["fp32"]))
    regions = find_regions(fp32, read_manifest(runs["fp32"]).family)
    assert {n.name for n in fp32.graph.node if n.op_type == "TopK"} <= regions.float_nodes
    assert not set(q) & regions.float_nodes


def test_rtdetr_decoder_is_the_float_region(runs: dict[str, Any]) -> None:
    """RT-DETR's query selection is a TopK: the decoder after it (self-attention, the query MLPs, the
    Gather-based deformable sampling, box refinement) is outside the network region INT8 would quantize.
    Only the cross-attention value projections are in: Linears on the encoder's memory, computed before
    any query exists, like the encoder's own layers; the sampling that reads them stays float."""
    if runs["name"] != "rtdetr":
        pytest.skip("RT-DETR's regions")
    fp32 = onnx.load(str(runs["fp32"]))
    regions = find_regions(fp32, read_manifest(runs["fp32"]).family)
    decoder = [n for n in fp32.graph.node if "decoder" in n.name]
    linear = [n.name for n in decoder if n.op_type in ("MatMul", "Gemm")]
    quantizable = {n for n in linear if n not in regions.float_nodes}
    assert len(linear) > 50 and quantizable and all("/cross_attn/value_proj/" in n for n in quantizable)
    sampling = [n.name for n in decoder if n.op_type.startswith("Gather") and "/cross_attn/" in n.name]
    assert sampling and set(sampling) <= regions.float_nodes
    assert {n.name for n in fp32.graph.node if n.op_type == "TopK"} <= regions.float_nodes
    assert sum(layer.op_type == "Conv" for layer in regions.layers) > 50
    assert any(layer.op_type in ("MatMul", "Gemm") and "decoder" not in layer.name for layer in regions.layers)


def test_fp16_keeps_topk_and_the_decode_float(runs: dict[str, Any]) -> None:
    """In the FP16 graph, no TopK and no op between the last layers and a TopK reads a float16 tensor,
    and no float tensor there makes a round trip through half (Cast to FP16 then back): the half
    network hands over at its Casts, once."""
    from onnx.shape_inference import infer_shapes

    half = onnx.load(str(_file(runs, "fp16")))
    g = infer_shapes(half).graph
    elem = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    elem.update({i.name: i.data_type for i in g.initializer})
    assert onnx.TensorProto.FLOAT16 in elem.values()  # it is a half graph
    producer = {o: n for n in g.node for o in n.output}

    def cast_to(n: Any) -> int:
        return next(int(a.i) for a in n.attribute if a.name == "to")

    seen: set[str] = set()
    topks = [n for n in g.node if n.op_type == "TopK"]
    stack = list(topks)
    assert stack
    while stack:
        n = stack.pop()
        if n.name in seen or n.op_type in LAYER_OPS:
            continue
        seen.add(n.name)
        if n.op_type == "Cast" and elem.get(n.input[0]) == onnx.TensorProto.FLOAT16:
            src = producer.get(n.input[0])
            assert src is None or src.op_type != "Cast", f"{n.input[0]}: a float tensor rounded to half and back"
            continue  # where the half network hands over
        assert all(elem.get(i) != onnx.TensorProto.FLOAT16 for i in n.input), f"{n.op_type} {n.name} reads float16"
        stack += [producer[i] for i in n.input if i in producer]
    assert len(seen) > len(topks)  # the walk reached past the TopKs (a classifier: its Softmax)


@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_builds_with_tensorrt_rtx(runs: dict[str, Any], variant: str) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    if variant == "int8" and not runs["case"].int8:
        pytest.skip(f"{runs['name']}: FP16 only")
    from edgevision.build import BatchRange, BuildOptions, build_engine

    result = build_engine(_file(runs, variant), options=BuildOptions(
        target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 2), progress=False), log=lambda _: None)
    print(f"\n{runs['name']} {variant}: {result.layers} layers built with TensorRT-RTX in {result.seconds:.1f} s")
    assert result.layers > 20 and result.plan_bytes > 100_000


def _yolo26_int8(runs: dict[str, Any]) -> Path:
    if runs["name"] != "yolo26n":
        pytest.skip("the end-to-end head's TensorRT need")
    return _file(runs, "int8")


def test_end_to_end_int8_records_its_tensorrt_need(runs: dict[str, Any]) -> None:
    """The converter writes what the head needs into the INT8 manifest (TensorRT >= 10.7, not JetPack 6's
    10.3); build reads it from the graph and compares it with the version it is given."""
    from edgevision.build.engine import graph_needs
    from edgevision.build.onnx_graph import inspect_onnx
    from edgevision.build.requirements import version_warnings

    path = _yolo26_int8(runs)
    assert [n["needs"] for n in read_manifest(path).extra["min_tensorrt"]] == ["10.7"]
    assert "min_tensorrt" not in read_manifest(_file(runs, "fp16")).extra
    assert "min_tensorrt" not in read_manifest(_file(runs, "int8-cpu")).extra
    graph = inspect_onnx(path)
    needs = graph_needs(graph, graph.precision.name)
    assert [n.needs for n in needs] == ["10.7"]
    assert version_warnings("10.3.0.30", needs) and not version_warnings("10.7.0.23", needs)


def test_build_warns_before_building_and_strict_refuses(runs: dict[str, Any]) -> None:
    """`edgevision build --check --for-tensorrt 10.3` (the TensorRT-RTX here builds; JetPack 6's version is
    checked): the warning names the head and both versions, and --strict stops before any build."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    import subprocess
    import sys

    path = _yolo26_int8(runs)
    root = Path(__file__).resolve().parents[1]

    def ev(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgevision", "build", str(path), "--check", "--target",
                               "tensorrt_rtx", "--max-batch", "2", *extra], cwd=root, capture_output=True, text=True,
                              timeout=300)

    warned = ev("--for-tensorrt", "10.3")
    err = warned.stderr  # the build's lines; the verdict goes to stdout
    print(err)
    assert warned.returncode == 0 and "parses and builds" in warned.stdout, warned.stdout + err
    line = next(x for x in err.splitlines() if "warning" in x)
    assert "end-to-end" in line and ">= 10.7" in line and "10.3" in line
    assert err.index(line) < err.index("built:")  # said before the build, not after
    assert err.count(">= 10.7") == 1
    strict = ev("--for-tensorrt", "10.3", "--strict")
    assert strict.returncode != 0 and "--strict" in strict.stdout + strict.stderr
    assert "parses and builds" not in strict.stdout
    fine = ev("--for-tensorrt", "10.7.0", "--strict")
    assert fine.returncode == 0 and "warning" not in fine.stdout + fine.stderr
