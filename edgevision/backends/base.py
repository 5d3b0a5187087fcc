"""The backend contract: name -> array in (checked here), name -> array out, plus the
manifest and what the backend can do, declared rather than probed."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, TypeVar

import numpy as np

from ..errors import GpuPreprocessUnavailable
from ..manifest import Manifest
from ..preprocess import Letterbox
from .feeds import InputSpec, check_feeds

_B = TypeVar("_B", bound="Backend")


class Backend(ABC):
    """One inference engine bound to one artifact. Use as a context manager.

    infer: {input name: array} -> {output name: array}, numpy on the host. The feeds are
    checked against the graph's inputs (names, dtypes, shapes) before the runtime sees
    them; a subclass sets `manifest`, `inputs` and `output_names` when it loads and
    implements _infer (the feeds already checked), describe and close.

    Capabilities, class attributes callers read instead of probing for methods:
    thread_safe: infer() may run from several threads at once (the pipeline then keeps
    several frames in flight). takes_gpu_frames: infer_frames() takes uint8 BGR frames and
    letterboxes them on the GPU itself.
    """

    name: ClassVar[str]
    thread_safe: ClassVar[bool] = False
    takes_gpu_frames: ClassVar[bool] = False

    manifest: Manifest
    inputs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    def validate(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feeds as the graph takes them (contiguous, its dtypes), or EdgeVisionError saying what is wrong."""
        return check_feeds(self.inputs, feeds)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{input name: array} -> {output name: array} (new arrays)."""
        return self._infer(self.validate(feeds))

    @abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on feeds that validate() accepted."""

    def infer_frames(
        self, frames: Sequence[np.ndarray], feeds: dict[str, np.ndarray], manifest: Manifest
    ) -> tuple[dict[str, np.ndarray], list[Letterbox]]:
        """uint8 BGR frames -> outputs, pre-processed on the device (see takes_gpu_frames).
        Raises GpuPreprocessUnavailable, before doing anything, where it cannot."""
        raise GpuPreprocessUnavailable(f"the {self.name} backend takes pre-processed host arrays only")

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """What `edgevision info` prints: backend, inputs, outputs and backend-specific details."""

    @abstractmethod
    def close(self) -> None:
        """Release the runtime's resources; the backend cannot infer afterwards."""

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
