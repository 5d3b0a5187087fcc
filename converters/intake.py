"""Open a model file once and say what it is, without running code from it.

A state_dict (tensors in a mapping) loads with torch.load(weights_only=True). An Ultralytics
checkpoint pickles its layer classes: converters.checkpoint rebuilds exactly those from an
allow-list. Any other pickled object (a whole torchvision model saved with torch.save(model))
runs code when unpickled, so it loads only with --trust-checkpoint. A TorchScript archive is
interpreted by TorchScript, not unpickled into Python classes, so it needs no trust.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError

from .checkpoint import TRUSTED_PREFIXES, load_checkpoint
from .families.base import Checkpoint

_TORCHSCRIPT_MARKERS = ("constants.pkl", "code/")


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive holds its code and constants beside the data pickle."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(m in name for name in z.namelist() for m in _TORCHSCRIPT_MARKERS)


def open_onnx(path: Path) -> Checkpoint:
    """An ONNX file from another exporter (converters/families/onnx_file.py)."""
    from .foreign.graph import read_foreign

    return Checkpoint(path, "onnx", read_foreign(path))


def open_checkpoint(path: Path, trust: bool = False) -> Checkpoint:
    """path -> Checkpoint (kind and loaded object). Raises EdgeVisionError in one sentence."""
    torch = lazy_import("torch")
    if not path.is_file():
        raise EdgeVisionError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return open_onnx(path)
    if not zipfile.is_zipfile(path):
        raise EdgeVisionError(f"{path} is not a PyTorch checkpoint (not a zip archive); is it corrupt or truncated?")
    if is_torchscript(path):
        try:
            return Checkpoint(path, "torchscript", torch.jit.load(str(path), map_location="cpu"))
        except Exception as exc:  # noqa: BLE001 - TorchScript raises many types on damaged files
            raise EdgeVisionError(f"cannot load {path} as TorchScript: {exc}") from exc
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EdgeVisionError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from exc
    if any(n.startswith("ultralytics.") for n in needed):
        return Checkpoint(path, "ultralytics", load_checkpoint(path, trust=trust))
    if needed and not trust:
        classes = sorted(n for n in needed if n.startswith(TRUSTED_PREFIXES))[:3] or sorted(needed)[:3]
        raise EdgeVisionError(
            f"{path} pickles a whole model ({', '.join(classes)}, ...): loading it runs code from the file. "
            "Save its state_dict instead (torch.save(model.state_dict(), f)) and pass --arch, "
            "or pass --trust-checkpoint if you trust the file."
        )
    obj = load_checkpoint(path, trust=trust) if needed else torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and str(obj.get("model_name", "")).startswith("RFDETR"):
        return Checkpoint(path, "rfdetr", obj)  # RF-DETR's trainer checkpoint (converters/families/rfdetr.py)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # the common {"state_dict": ..., "epoch": ...} training checkpoint
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Checkpoint(path, "state_dict", dict(obj))
    if isinstance(obj, torch.nn.Module):
        return Checkpoint(path, "module", obj)
    raise EdgeVisionError(f"{path} holds a {type(obj).__name__}, not a model, a state_dict or a YOLO checkpoint")
