"""What a model family gives the converter: an exportable module, its manifest, and a
reference that runs the original model the way its users run it (for verification).

A family module (converters/families/<name>.py) defines one `Family`; the registry in
converters/families/__init__.py asks each, in order, whether it takes a checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest
from edgevision.results import Result


@dataclass
class Request:
    """What the user asked for. arch: e.g. "torchvision:resnet18" (None: detect it);
    task: overrides the family's task where it has several; num_classes / class_names:
    the checkpoint's head size and names (None: from the checkpoint or the architecture);
    frame_hw: (H, W) of the frames the user verifies with, where a family sizes its input
    after the camera (None: the family's default)."""

    path: Path
    arch: str | None = None
    task: str | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    trust: bool = False
    imgsz: tuple[int, int] | None = None
    frame_hw: tuple[int, int] | None = None
    options: Any = None  # converters.export.ExportOptions

    def arch_name(self, family: str) -> str | None:
        """NAME of `--arch FAMILY:NAME` when FAMILY is `family`; None when --arch names another
        family or is not given."""
        if self.arch is None or ":" not in self.arch:
            return None
        fam, name = self.arch.split(":", 1)
        return name if fam == family else None


@dataclass
class Exportable:
    """A model ready for torch.onnx.export.

    module(*example) -> tuple of tensors named output_names, in the layout the manifest's task
    declares (edgevision.manifest.TASKS). reference(frames) -> one Result per uint8 BGR frame,
    computed by the original model in PyTorch with its own pre-processing.
    """

    module: Any
    example: tuple[Any, ...]
    input_names: list[str]
    output_names: list[str]
    manifest: Manifest
    reference: Callable[[Sequence[np.ndarray]], list[Result]]
    notes: list[str] = field(default_factory=list)
    # Writes the graph itself instead of torch.onnx.export (a foreign ONNX file joined to its head).
    write: Callable[[Path], None] | None = None


@dataclass
class Checkpoint:
    """A model file, opened once. kind: "ultralytics" (an Ultralytics checkpoint dict),
    "state_dict" (a mapping of tensor names to tensors), "module" (a whole pickled
    nn.Module, loaded only with trust), "torchscript" (a TorchScript archive), "onnx" (an ONNX file
    from another exporter: converters.foreign.graph.ForeignGraph), "rfdetr" (an RF-DETR trainer
    checkpoint dict: state_dict "model", "model_name", "args", "model_config")."""

    path: Path
    kind: str
    obj: Any

    def tensors(self, arch: str) -> dict[str, Any]:
        """The weights to load into `arch`'s builder: a state_dict as it is, a TorchScript
        archive's own state_dict (a traced or scripted module keeps its submodules' names, and
        reading it runs no code from the file). Anything else: one sentence saying what to pass."""
        if self.kind == "state_dict":
            return dict(self.obj)
        if self.kind == "torchscript":
            return {k: v for k, v in self.obj.state_dict().items()}
        raise EdgeVisionError(f"--arch {arch} takes a state_dict or a TorchScript file (or, with "
                              f"--trust-checkpoint, a pickled model), not a {self.kind}")


class Family(Protocol):
    """One model family. name: what `--arch NAME:...` and the messages call it."""

    name: str
    summary: str

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        """True when this family converts the checkpoint (given --arch, if any)."""
        ...

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        """Build the exportable module, its manifest and its reference."""
        ...
