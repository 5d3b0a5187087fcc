"""Select a CUDA device and read what the engine checks need: name and compute capability."""
from __future__ import annotations

from dataclasses import dataclass

from ._runtime import cudart
from .errors import check, check_value


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int


def set_current(index: int) -> None:
    """Make `index` the current device of the calling thread (CUDA's choice is per thread)."""
    check(cudart.cudaSetDevice(index), f"cudaSetDevice({index})")


def use_device(index: int = 0) -> DeviceInfo:
    """Make `index` current for this thread (TensorRT allocates on the current device)."""
    set_current(index)
    props = check_value(cudart.cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    raw = props.name
    name = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return DeviceInfo(index, name.strip("\x00").strip(), (int(props.major), int(props.minor)), int(props.totalGlobalMem))
