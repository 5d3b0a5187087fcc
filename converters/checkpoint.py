"""Load pickled PyTorch checkpoints without running their code.

`torch.load(weights_only=True)` refuses any class the checkpoint references. A model
checkpoint (Ultralytics saves whole nn.Module objects) references its layer classes,
so we allow exactly those that come from trusted module trees (torch.nn, the model
library itself) and nothing else. Ultralytics also pickles `getattr(Detect, "forward")`;
we allow getattr only on an allowed class and a public attribute name, which keeps the
unpickler from walking to arbitrary functions. `trust=True` (the CLI's
--trust-checkpoint) falls back to a full unpickle for files the user vouches for.
"""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError

# Module prefixes whose classes may be rebuilt from a checkpoint: layer definitions only.
TRUSTED_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.", "torchvision.models.", "torchvision.ops.")


def _resolve(qualname: str) -> Any:
    module, _, name = qualname.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        top = module.split(".")[0]
        hint = " (pip install 'edgevision[yolo]')" if top == "ultralytics" else ""
        raise EdgeVisionError(f"the checkpoint needs {qualname}, which cannot be imported here{hint}: {exc}") from exc


def load_checkpoint(path: str | Path, trust: bool = False) -> Any:
    """Unpickle a .pt file safely (weights_only with an allow-list) and return its object."""
    torch = lazy_import("torch")
    path = Path(path)
    if not path.is_file():
        raise EdgeVisionError(f"model file not found: {path}")
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    if not zipfile.is_zipfile(path):
        raise EdgeVisionError(f"{path} is not a PyTorch checkpoint (not a zip archive); is it corrupt or truncated?")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many types on damaged archives
        raise EdgeVisionError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from exc

    allowed: list[Any] = []
    allowed_classes: set[type] = set()
    for name in needed:
        if name == "builtins.getattr":
            continue
        if not name.startswith(TRUSTED_PREFIXES):
            raise EdgeVisionError(
                f"{path} references {name}, which a safe load does not allow. "
                "If you trust this file, pass --trust-checkpoint (it will run the file's pickled code)."
            )
        obj = _resolve(name)
        allowed.append(obj)
        if isinstance(obj, type):
            allowed_classes.add(obj)

    def guarded_getattr(obj: Any, attr: str) -> Any:
        if obj not in allowed_classes or attr.startswith("_"):
            raise EdgeVisionError(f"{path} asks for {obj!r}.{attr}, which a safe load does not allow")
        return getattr(obj, attr)

    allowed.append((guarded_getattr, "builtins.getattr"))
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except EdgeVisionError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise EdgeVisionError(f"cannot load {path}: {exc}") from exc
