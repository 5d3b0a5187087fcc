"""May this engine run here? Pure Python: no TensorRT import, no GPU.

A TensorRT plan is only valid for the TensorRT version that built it and for GPUs of
the same compute capability; deserializing it anywhere else fails deep inside
TensorRT (or crashes). These rules turn that into a sentence before TensorRT is touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import BuildSpec
from .target import LABELS, DeviceTarget

# TensorRT-RTX builds ahead of time without a GPU, for Ampere and newer by default
# (Turing, 7.5, only when asked for explicitly).
RTX_MIN_CC = (8, 0)


@dataclass(frozen=True)
class Compatibility:
    """ok: may be deserialized here. problems: why not (each a full sentence). warnings: may run, but say so."""

    ok: bool
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def message(self) -> str:
        return " ".join(self.problems)


def _sm(cc: tuple[int, int]) -> str:
    return f"sm_{cc[0]}{cc[1]}"


def check_compatible(spec: BuildSpec, here: DeviceTarget) -> Compatibility:
    problems: list[str] = []
    warnings: list[str] = []
    built = f"{LABELS.get(spec.trt_module, spec.trt_module)} {spec.trt_version}"
    if spec.trt_module != here.flavor.module:
        problems.append(f"The engine was built with {built}, but this machine runs {here.flavor.label}.")
    elif spec.trt_version != here.flavor.version:
        problems.append(
            f"The engine was built with {built}, but this machine has {here.flavor.label}: "
            "a TensorRT plan loads only in the version that built it."
        )
    if spec.trt_module == "tensorrt_rtx":
        if here.compute_capability < RTX_MIN_CC and spec.compute_capability != here.compute_capability:
            problems.append(
                f"This TensorRT-RTX engine targets compute capability 8.0 and newer; this GPU "
                f"({here.gpu_name or 'unknown'}) is {here.sm}."
            )
    elif spec.compute_capability != here.compute_capability:
        problems.append(
            f"The engine was built for a {_sm(spec.compute_capability)} GPU ({spec.gpu_name or 'unknown'}); "
            f"this one is {here.sm} ({here.gpu_name or 'unknown'})."
        )
    elif spec.gpu_name != here.gpu_name:
        warnings.append(
            f"The engine was tuned on {spec.gpu_name}; this GPU is {here.gpu_name} (same {here.sm}): it runs, "
            "but rebuild it here for the best speed."
        )
    if spec.dla_core is not None and spec.dla_core >= here.dla_cores:
        problems.append(
            f"The engine runs on DLA core {spec.dla_core}, and this device has {here.dla_cores} DLA core(s)."
        )
    return Compatibility(not problems, tuple(problems), tuple(warnings))
