"""Small helpers over ONNX files: the manifest in metadata_props, checks, checksums."""
from __future__ import annotations

from pathlib import Path

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import METADATA_KEY, Manifest


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    """Store the manifest as JSON in the model's metadata_props (replacing an older one)."""
    onnx = lazy_import("onnx")
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=manifest.to_json())
    onnx.save(model, str(path))


def read_manifest(path: str | Path) -> Manifest:
    onnx = lazy_import("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
        raise EdgeVisionError(f"{path} is not a readable ONNX file: {exc}") from exc
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return Manifest.from_json(p.value)
    raise EdgeVisionError(f"{path} has no edgevision manifest: it was not made by `edgevision convert`; convert the source checkpoint")


def check_model(path: str | Path) -> None:
    """onnx.checker with full shape inference; raises EdgeVisionError on an invalid graph."""
    onnx = lazy_import("onnx")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise EdgeVisionError(f"the exported graph {path} is invalid: {exc}") from exc
