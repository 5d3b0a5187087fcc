"""What the command line shows of the library's log messages: INFO and above on stderr.

Library code logs (logging.getLogger(__name__)) and never prints; the command line is the
application, so it decides what the user sees: while a command runs, INFO and above from
`edgevision` and from the logger namespaces the command names in LOGGERS (the build side's
"[convert] ..." lines) go to stderr. Progress lines (INFO) read as logged; warnings and
errors start with "edgevision: ", as the command line's own errors do.

Without the command line, Python's defaults apply: warnings and errors reach stderr (its
last-resort handler), INFO does not until the application configures logging.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record arrives (redirect_stderr, pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class CliFormatter(logging.Formatter):
    """INFO: the message as it is. WARNING and above: 'edgevision: message'."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"edgevision: {text}"


def _outermost(names: Iterable[str]) -> list[str]:
    """The namespaces, without those inside another one (a record must be printed once)."""
    names = list(dict.fromkeys(names))
    return [n for n in names if not any(n.startswith(f"{o}.") for o in names if o != n)]


@contextmanager
def show_logs(namespaces: Iterable[str] = ("edgevision",), level: int = logging.INFO) -> Iterator[None]:
    """Inside the block, `level` and above from `namespaces` go to stderr; afterwards the loggers
    are as they were (the command line may run in-process, several times, as in the tests)."""
    handler = StderrHandler()
    handler.setFormatter(CliFormatter())
    handler.setLevel(level)
    saved = []
    for name in _outermost(namespaces):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, old in saved:
            logger.removeHandler(handler)
            logger.setLevel(old)
