"""How to ask the installed TensorRT for a precision. Pure Python: no TensorRT import.

The three TensorRT generations want different things:

- TensorRT 8.5 / 8.6 / 10.x (JetPack 5 and 6): a weakly typed network and builder flags.
  FP16 is the FP16 flag on an FP32 (or FP16) graph; INT8 is the INT8 flag on a graph that
  carries Q/DQ nodes (explicit quantization: the scales are in the graph, no calibrator).
  8.x also needs the EXPLICIT_BATCH network flag (10 ignores it).
- TensorRT 11 and TensorRT-RTX: no FP16/INT8 flags. The network is strongly typed and
  runs in the types the graph says, so FP16 must already be in the ONNX graph and INT8
  must be Q/DQ.
- DLA runs FP16 and INT8 layers only, so a DLA build needs one of those flags.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import EdgeVisionError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class GraphPrecision:
    """What the ONNX graph itself holds. has_qdq: QuantizeLinear/DequantizeLinear nodes.
    has_fp16: float16 initializers, inputs or casts."""

    has_qdq: bool = False
    has_fp16: bool = False

    @property
    def name(self) -> str:
        return "int8" if self.has_qdq else "fp16" if self.has_fp16 else "fp32"


@dataclass(frozen=True)
class PrecisionPlan:
    """How to build `precision` with one TensorRT.

    network_flags / builder_flags: member names of NetworkDefinitionCreationFlag /
    BuilderFlag to set (names, so this module needs no TensorRT).
    """

    precision: str
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        how = "strongly typed network (precision from the graph)" if self.strongly_typed else "weakly typed network"
        flags = f", builder flags {'+'.join(self.builder_flags)}" if self.builder_flags else ""
        return f"{self.precision}: {how}{flags}"


def typed_only(module: str, major: int) -> bool:
    """True where the builder has no FP16/INT8 flags: TensorRT-RTX, and TensorRT 11+."""
    return module == "tensorrt_rtx" or major >= 11


def plan_precision(
    precision: str, module: str, major: int, graph: GraphPrecision, dla: bool = False
) -> PrecisionPlan:
    """The precision path for `precision` on TensorRT `module` (major version `major`)."""
    if precision not in PRECISIONS:
        raise EdgeVisionError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    label = "TensorRT-RTX" if module == "tensorrt_rtx" else f"TensorRT {major}"
    if dla and module == "tensorrt_rtx":
        raise EdgeVisionError("TensorRT-RTX has no DLA; --dla-core is for Jetson AGX/NX (TensorRT 8.5-10)")
    if dla and precision == "fp32":
        raise EdgeVisionError("DLA runs FP16 and INT8 layers only: add --precision fp16 (or int8 with a Q/DQ artifact)")
    held = graph.name
    if precision == "int8" and not graph.has_qdq:
        raise EdgeVisionError(
            f"--precision int8 needs an INT8 artifact with Q/DQ nodes; this graph is {held}. Make one with "
            "`edgevision convert MODEL --precision int8 --calib FRAMES` (calibration happens there, on the CPU; "
            "TensorRT's calibrator API is not used: TensorRT 11 removed it)"
        )
    if precision != "int8" and graph.has_qdq:
        raise EdgeVisionError(f"this graph is INT8 (it has Q/DQ nodes); build it with --precision int8, not {precision}")
    if precision == "fp32" and graph.has_fp16:
        raise EdgeVisionError("this graph is FP16; build it with --precision fp16 (or convert an FP32 artifact)")

    if typed_only(module, major):
        if precision == "fp16" and not graph.has_fp16:
            raise EdgeVisionError(
                f"{label} builds in the types the graph holds (strongly typed; no FP16 builder flag), and this graph "
                "is FP32. Make an FP16 artifact first: `edgevision convert MODEL --precision fp16`"
            )
        return PrecisionPlan(precision, True, ("STRONGLY_TYPED",), (), (f"{label}: strongly typed, {precision} as in the graph",))

    network_flags = ("EXPLICIT_BATCH",) if major < 10 else ()  # required by 8.x for ONNX; deprecated and ignored by 10
    notes: list[str] = []
    if precision == "fp32":
        flags: tuple[str, ...] = ()
    elif precision == "fp16":
        flags = ("FP16",)
        if not graph.has_fp16:
            notes.append("FP32 graph with the FP16 builder flag: TensorRT picks FP16 kernels where they are faster")
    else:
        # Q/DQ fix INT8 where the graph says; FP16 lets DLA take the layers left in float.
        flags = ("INT8", "FP16") if dla else ("INT8",)
        notes.append("INT8 from the graph's Q/DQ scales (explicit quantization)")
    return PrecisionPlan(precision, False, network_flags, flags, tuple(notes))
