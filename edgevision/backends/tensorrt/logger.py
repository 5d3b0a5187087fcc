"""TensorRT's ILogger implemented in Python: keeps the errors (for messages that say what
failed) and passes what it lets through to Python logging.

The class is made per call from the TensorRT module in use (tensorrt or tensorrt_rtx:
same interface, different base classes). For mypy the module is TensorRT 10's stubs, so
the override is checked against the real signature. Both halves use it: the backend when
it deserializes an engine, the builder (edgevision.build) when it builds one.
"""
from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

log = logging.getLogger(__name__)

# TensorRT severity (0 internal error, 1 error, 2 warning, 3 info, 4 verbose) -> logging level
LEVELS = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


class LogRecord:
    """Messages TensorRT logged at ERROR/INTERNAL_ERROR (what error messages quote)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def add(self, level: int, msg: str) -> None:
        if level <= 1:
            with self._lock:
                self.errors.append(msg)


def make_logger(trt_module: ModuleType, record: LogRecord, verbose: bool = False) -> Any:
    """An ILogger: errors kept in `record` and logged; warnings and info logged when verbose.

    TensorRT calls it for every message, VERBOSE included (~14000 for a YOLO build),
    so it returns early for what it drops.
    """
    if TYPE_CHECKING:
        import tensorrt as trt
    else:
        trt = trt_module
    keep_upto = 3 if verbose else 2  # 0 internal error, 1 error, 2 warning, 3 info, 4 verbose

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            level = int(severity)
            if level > keep_upto:
                return
            record.add(level, msg)
            if level <= 1 or verbose:
                log.log(LEVELS[min(level, 4)], "[TensorRT] %s", msg)

    return _Logger()
