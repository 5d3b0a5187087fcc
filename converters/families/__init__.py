"""The model families `edgevision convert` takes, as a registry (not an if-chain).

Each family module defines one Family (converters.families.base): whether it takes a
checkpoint, how to build its exportable module, and its PyTorch reference. find_family()
asks them in order; a file that none takes gets one sentence listing what is supported.
"""
from __future__ import annotations

from edgevision.errors import EdgeVisionError

from .base import Checkpoint, Exportable, Family, Request
from .torchvision import TorchvisionFamily
from .torchvision_detect import TorchvisionDetectFamily
from .timm import TimmFamily
from .onnx_file import OnnxFileFamily
from .rfdetr import RFDETRFamily
from .torchvision_rcnn import TorchvisionRcnnFamily
from .ultralytics import UltralyticsFamily
from .ultralytics_tasks import UltralyticsTaskFamily

FAMILIES: list[Family] = [UltralyticsTaskFamily(), UltralyticsFamily(), TorchvisionFamily(), TorchvisionDetectFamily(),
                           TorchvisionRcnnFamily(), TimmFamily(), RFDETRFamily(), OnnxFileFamily()]


def supported() -> str:
    """One line per family, for help texts and refusals."""
    return "; ".join(f"{f.summary}" for f in FAMILIES)


def find_family(ckpt: Checkpoint, req: Request) -> Family:
    """The first family that takes the checkpoint, or an EdgeVisionError naming what is supported."""
    if req.arch is not None and req.arch.split(":")[0] not in {f.name for f in FAMILIES}:
        raise EdgeVisionError(
            f"--arch {req.arch}: unknown family {req.arch.split(':')[0]!r}; families: {', '.join(dict.fromkeys(f.name for f in FAMILIES))}"
        )
    for family in FAMILIES:
        if family.claims(ckpt, req):
            return family
    hint = (f" (a {ckpt.kind} needs --arch, e.g. --arch torchvision:resnet18)"
            if ckpt.kind in ("state_dict", "torchscript") and not req.arch else "")
    raise EdgeVisionError(f"{ckpt.path}: no supported model family takes this {ckpt.kind}{hint}. Supported: {supported()}")


__all__ = ["FAMILIES", "Checkpoint", "Exportable", "Family", "Request", "find_family", "supported"]
