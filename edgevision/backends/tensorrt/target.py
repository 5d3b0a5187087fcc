"""Which TensorRT is installed, and what a build or a run here targets.

Two TensorRT families share one Python API: `tensorrt` (Jetson / datacenter / desktop,
8.5 to 11) and `tensorrt_rtx` (TensorRT for RTX PCs, versioned 1.x). An engine is tied to
the family, the exact version and the GPU's compute capability it was built with.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ...device import GpuStatus
from ...errors import EdgeVisionError

FAMILIES = ("tensorrt", "tensorrt_rtx")
LABELS = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}
# execute_async_v3 / set_tensor_address / set_input_shape (the v3 API) arrived in 8.5.
MIN_TENSORRT = (8, 5)


@dataclass(frozen=True)
class Flavor:
    """module: "tensorrt" or "tensorrt_rtx". version: its __version__, e.g. "10.3.0.30"."""

    module: str
    version: str

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".") if p.isdigit())

    @property
    def major(self) -> int:
        return self.numbers[0] if self.numbers else 0

    @property
    def is_rtx(self) -> bool:
        return self.module == "tensorrt_rtx"

    @property
    def label(self) -> str:
        return f"{LABELS.get(self.module, self.module)} {self.version}"


@dataclass(frozen=True)
class DeviceTarget:
    """What an engine is built for or run on: the TensorRT flavor and the GPU.

    compute_capability: (major, minor), e.g. (8, 7) for Jetson Orin. dla_cores: DLA engines
    TensorRT reports on this device (0 off Jetson AGX/NX).
    """

    flavor: Flavor
    gpu_name: str
    compute_capability: tuple[int, int]
    dla_cores: int = 0

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


def _import_family(module: str) -> tuple[ModuleType | None, str]:
    """(module, "") when a real TensorRT of this family imports; (None, why) otherwise."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError too
        return None, f"import {module} failed: {type(exc).__name__}: {exc}"
    # A directory of stub files (tensorrt-stubs before tools/setup_trt_stubs.py) imports
    # as an empty namespace package: that is not TensorRT.
    if not hasattr(mod, "Builder") or not hasattr(mod, "__version__"):
        return None, f"{module} imports but is not TensorRT (no Builder; a stub-only or broken install at {getattr(mod, '__path__', '?')})"
    return mod, ""


def find_flavor(requested: str | None = None) -> tuple[Flavor, ModuleType]:
    """The TensorRT to use: `requested` ("tensorrt" / "tensorrt_rtx"), else the first that imports."""
    if requested is not None and requested not in FAMILIES:
        raise EdgeVisionError(f"unknown TensorRT target {requested!r}; choose from {', '.join(FAMILIES)}")
    reasons = []
    for module in [requested] if requested else FAMILIES:
        mod, why = _import_family(module)
        if mod is not None:
            flavor = Flavor(module, str(mod.__version__))
            if not flavor.is_rtx and flavor.numbers[:2] < MIN_TENSORRT:
                raise EdgeVisionError(
                    f"{flavor.label} is too old: edgevision needs TensorRT 8.5 or newer (JetPack 5.1+), "
                    "for the tensor-name I/O API"
                )
            return flavor, mod
        reasons.append(why)
    raise EdgeVisionError(no_tensorrt_message(reasons))


def no_tensorrt_message(reasons: list[str]) -> str:
    return (
        "TensorRT is not installed here (" + "; ".join(reasons) + "). On a Jetson it comes with JetPack "
        "(the python3-libnvinfer package); on a desktop: pip install tensorrt; on an RTX PC: pip install tensorrt-rtx-cu12"
    )


def device_target(flavor: Flavor, gpu: GpuStatus, dla_cores: int = 0) -> DeviceTarget:
    return DeviceTarget(flavor, gpu.name, gpu.compute_capability, dla_cores)
