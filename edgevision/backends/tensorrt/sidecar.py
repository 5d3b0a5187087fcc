"""The JSON sidecar beside an engine: the artifact's manifest plus how the engine was built.

The engine itself stays a plain serialized plan (trtexec --loadEngine and DeepStream's
model-engine-file read it); everything edgevision needs to run it (class names, input
size, letterbox) and to decide whether it may run here lives in `<engine>.json`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import EdgeVisionError
from ...manifest import Manifest
from .spec import BuildSpec

SIDECAR_VERSION = 1


@dataclass(frozen=True)
class BuildInfo:
    """spec: what the engine depends on (its key). The rest records the build itself.

    plan_sha256 / plan_bytes: the engine file the sidecar describes. layers: network
    layers TensorRT parsed. built_at: ISO-8601 UTC.
    """

    spec: BuildSpec
    onnx_file: str
    plan_sha256: str
    plan_bytes: int
    layers: int
    build_seconds: float
    built_at: str
    edgevision_version: str
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.spec.key()


@dataclass(frozen=True)
class EngineSidecar:
    manifest: Manifest
    build: BuildInfo
    format_version: int = SIDECAR_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        b = self.build
        build = {
            **b.spec.to_dict(), "key": b.key, "onnx_file": b.onnx_file, "plan_sha256": b.plan_sha256,
            "plan_bytes": b.plan_bytes, "layers": b.layers, "build_seconds": round(b.build_seconds, 3),
            "built_at": b.built_at, "edgevision_version": b.edgevision_version, "notes": list(b.notes),
        }
        doc = {
            "format_version": self.format_version,
            "manifest": json.loads(self.manifest.to_json()),
            "build": build,
            **({"extra": self.extra} if self.extra else {}),
        }
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "sidecar") -> EngineSidecar:
        try:
            doc = json.loads(text)
            version = int(doc.get("format_version", 0))
            if version > SIDECAR_VERSION:
                raise EdgeVisionError(
                    f"{where} was written by a newer edgevision (sidecar v{doc['format_version']}, this one reads "
                    f"v{SIDECAR_VERSION}); upgrade edgevision or rebuild the engine"
                )
            manifest = Manifest.from_json(json.dumps(doc["manifest"]))
            b = doc["build"]
            spec = BuildSpec.from_dict(b)
            info = BuildInfo(
                spec, str(b["onnx_file"]), str(b["plan_sha256"]), int(b["plan_bytes"]), int(b["layers"]),
                float(b["build_seconds"]), str(b["built_at"]), str(b["edgevision_version"]), tuple(b.get("notes", ())),
            )
        except EdgeVisionError:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise EdgeVisionError(f"{where} is damaged ({type(exc).__name__}: {exc}); rebuild the engine") from exc
        if "key" in b and b["key"] != info.key:
            raise EdgeVisionError(f"{where} was edited by hand (its key does not match its fields); rebuild the engine")
        return cls(manifest, info, version, dict(doc.get("extra", {})))


def sidecar_path(engine: str | Path) -> Path:
    """`model.engine` -> `model.engine.json` (the full name, so .engine and .plan never collide)."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(sidecar.to_json() + "\n")
    os.replace(tmp, path)
    return path


def read_sidecar(engine: str | Path) -> EngineSidecar:
    """The sidecar of `engine`, or EdgeVisionError saying how to get one."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise EdgeVisionError(
            f"{engine} has no sidecar ({path.name}): edgevision needs it for the class names, input size and "
            "how the engine was built. Engines from trtexec have none; build it with: edgevision build MODEL.onnx"
        )
    return EngineSidecar.from_json(path.read_text(), where=str(path))
