"""Precision path per TensorRT generation: flags on 8.x/10.x, strongly typed on 11 and RTX."""
from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import pytest

from edgevision.build.precision import GraphPrecision, PrecisionPlan, plan_precision
from edgevision.errors import EdgeVisionError

FP32, FP16, QDQ = GraphPrecision(), GraphPrecision(has_fp16=True), GraphPrecision(has_qdq=True)
TYPED = (True, ("STRONGLY_TYPED",), ())


@pytest.mark.parametrize(
    "precision, module, major, graph, dla, want",
    [
        # TensorRT 10 (JetPack 6): weakly typed, builder flags.
        ("fp32", "tensorrt", 10, FP32, False, (False, (), ())),
        ("fp16", "tensorrt", 10, FP32, False, (False, (), ("FP16",))),
        ("fp16", "tensorrt", 10, FP16, False, (False, (), ("FP16",))),
        ("int8", "tensorrt", 10, QDQ, False, (False, (), ("INT8",))),
        # DLA needs FP16 for the layers Q/DQ leave in float.
        ("int8", "tensorrt", 10, QDQ, True, (False, (), ("INT8", "FP16"))),
        ("fp16", "tensorrt", 10, FP32, True, (False, (), ("FP16",))),
        # TensorRT 8.5/8.6 (JetPack 5): the same, plus EXPLICIT_BATCH for ONNX.
        ("fp32", "tensorrt", 8, FP32, False, (False, ("EXPLICIT_BATCH",), ())),
        ("fp16", "tensorrt", 8, FP32, False, (False, ("EXPLICIT_BATCH",), ("FP16",))),
        ("int8", "tensorrt", 8, QDQ, False, (False, ("EXPLICIT_BATCH",), ("INT8",))),
        # TensorRT 11 and TensorRT-RTX: no precision flags; the graph says.
        ("fp32", "tensorrt", 11, FP32, False, TYPED),
        ("fp16", "tensorrt", 11, FP16, False, TYPED),
        ("int8", "tensorrt", 11, QDQ, False, TYPED),
        ("fp32", "tensorrt_rtx", 1, FP32, False, TYPED),
        ("fp16", "tensorrt_rtx", 1, FP16, False, TYPED),
        ("int8", "tensorrt_rtx", 1, QDQ, False, TYPED),
    ],
)
def test_precision_path(precision: str, module: str, major: int, graph: GraphPrecision, dla: bool, want: tuple) -> None:
    plan = plan_precision(precision, module, major, graph, dla)
    assert (plan.strongly_typed, plan.network_flags, plan.builder_flags) == want
    assert plan.precision == precision


@pytest.mark.parametrize(
    "precision, module, major, graph, dla, message",
    [
        ("fp16", "tensorrt", 11, FP32, False, "Make an FP16 artifact first"),
        ("fp16", "tensorrt_rtx", 1, FP32, False, "no FP16 builder flag"),
        ("int8", "tensorrt", 10, FP32, False, "needs an INT8 artifact with Q/DQ nodes; this graph is fp32"),
        ("int8", "tensorrt", 10, FP16, False, "this graph is fp16"),
        ("fp32", "tensorrt", 10, QDQ, False, "build it with --precision int8, not fp32"),
        ("fp16", "tensorrt_rtx", 1, QDQ, False, "build it with --precision int8, not fp16"),
        ("fp32", "tensorrt", 10, FP16, False, "this graph is FP16"),
        ("fp32", "tensorrt", 10, FP32, True, "DLA runs FP16 and INT8 layers only"),
        ("fp16", "tensorrt_rtx", 1, FP16, True, "TensorRT-RTX has no DLA"),
        ("bf16", "tensorrt", 10, FP32, False, "unknown precision 'bf16'"),
    ],
)
def test_precision_refusals(precision: str, module: str, major: int, graph: GraphPrecision, dla: bool, message: str) -> None:
    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        plan_precision(precision, module, major, graph, dla)


@pytest.mark.parametrize(
    "graph, name", [(FP32, "fp32"), (FP16, "fp16"), (QDQ, "int8"), (GraphPrecision(True, True), "int8")]
)
def test_graph_precision_name(graph: GraphPrecision, name: str) -> None:
    assert graph.name == name


def _stub_members(enum: str) -> set[str]:
    stub = Path(sysconfig.get_paths()["purelib"]) / "tensorrt_bindings-stubs" / "tensorrt.pyi"
    if not stub.is_file():
        pytest.skip("TensorRT stubs not set up (pip install --no-deps tensorrt-stubs; python tools/setup_trt_stubs.py)")
    body = stub.read_text().split(f"\nclass {enum}:", 1)[1].split("\nclass ", 1)[0]
    return set(re.findall(rf"^    (\w+): typing\.ClassVar\[{enum}\]", body, re.M))


def _all_plans() -> list[PrecisionPlan]:
    plans = []
    for module, major in [("tensorrt", 8), ("tensorrt", 10), ("tensorrt", 11), ("tensorrt_rtx", 1)]:
        for precision, graph in [("fp32", FP32), ("fp16", FP16), ("fp16", FP32), ("int8", QDQ)]:
            for dla in (False, True):
                try:
                    plans.append(plan_precision(precision, module, major, graph, dla))
                except EdgeVisionError:
                    pass
    return plans


def test_every_flag_name_exists_in_tensorrt_10() -> None:
    """Flag names are strings in the planner; each must be a member of TensorRT 10's enums."""
    builder, network = _stub_members("BuilderFlag"), _stub_members("NetworkDefinitionCreationFlag")
    for plan in _all_plans():
        assert set(plan.builder_flags) | {"GPU_FALLBACK"} <= builder, plan
        assert set(plan.network_flags) <= network, plan


def test_rtx_plans_use_only_flags_tensorrt_rtx_has() -> None:
    trt = pytest.importorskip("tensorrt_rtx")
    for plan in _all_plans():
        if plan.strongly_typed:
            assert set(plan.builder_flags) <= set(trt.BuilderFlag.__members__)
            assert set(plan.network_flags) <= set(trt.NetworkDefinitionCreationFlag.__members__)
    # ...and the flags it lacks are the reason RTX plans are strongly typed.
    assert not {"FP16", "INT8"} & set(trt.BuilderFlag.__members__)
