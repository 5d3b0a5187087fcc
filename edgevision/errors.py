"""The one user-facing exception, and a helper for "did you mean" messages."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeVisionError(Exception):
    """A problem with what the user asked for (bad file, bad source, bad option).

    The CLI prints the message and exits 1 without a traceback. Messages say what
    was asked, what exists, and the closest match where there is one.
    """


def closest(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or '' if none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{match[0]}"?)' if match else ""


class GpuPreprocessUnavailable(EdgeVisionError):
    """The GPU letterbox cannot serve a model or device (raised before anything is queued);
    the CPU pre-processing takes over."""
