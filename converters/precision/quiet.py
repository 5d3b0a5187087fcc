"""Silence a chatty library call: the quantizers (NNCF, onnxruntime.quantization) log a warning
per ignored node or "consider pre-processing" through the root logger, which buries our own
progress lines."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Turn off WARNING and below for the block; the previous level comes back after it."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
