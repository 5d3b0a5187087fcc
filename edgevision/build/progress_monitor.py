"""TensorRT's IProgressMonitor implemented in Python, feeding BuildProgress.

The class is made per call from the TensorRT module in use (tensorrt or tensorrt_rtx:
same interface, different base classes). For mypy the module is TensorRT 10's stubs, so
the overrides are checked against the real signatures.
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from .progress import BuildProgress


def make_progress_monitor(trt_module: ModuleType, progress: BuildProgress) -> Any | None:
    """An IProgressMonitor forwarding to `progress`; None where TensorRT has none (< 10)."""
    if TYPE_CHECKING:
        import tensorrt as trt
    else:
        trt = trt_module
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        # Exceptions must not escape into TensorRT's threads: swallow them, keep building.
        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            try:
                progress.phase_start(phase_name, parent_phase, num_steps)
            except Exception:  # noqa: BLE001
                pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return progress.step_complete(phase_name, step)
            except Exception:  # noqa: BLE001
                return True

        def phase_finish(self, phase_name: str) -> None:
            try:
                progress.phase_finish(phase_name)
            except Exception:  # noqa: BLE001
                pass

    return _Monitor()
