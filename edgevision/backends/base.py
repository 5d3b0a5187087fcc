"""The backend contract: name -> array in, name -> array out, plus the manifest."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..manifest import Manifest


class Backend(Protocol):
    """One inference engine bound to one artifact. Use as a context manager.

    infer: {input name: array} -> {output name: array}; arrays are numpy on the host.
    """

    name: str
    thread_safe: bool  # infer() may run concurrently from several threads
    manifest: Manifest
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, object]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...
