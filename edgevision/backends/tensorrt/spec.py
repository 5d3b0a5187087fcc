"""What an engine depends on, and its key. Pure Python: no TensorRT import.

An engine is valid only for the exact inputs of its build: the ONNX bytes, the
TensorRT family and version, the GPU, DLA core, precision path, profiles and flags.
BuildSpec holds all of them; its hash is the key stored in the sidecar. The backend
reads it to decide whether an engine may run here (compat.py); `edgevision build`
rebuilds when the key differs and says which fields changed (changed_fields).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .target import DeviceTarget

KEY_VERSION = 1  # bump when the meaning of a field changes


@dataclass(frozen=True)
class ShapeProfile:
    """The min / opt / max shape of one input (all dimensions concrete)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def describe(self) -> str:
        return f"{self.name}: min {_fmt(self.min)}, opt {_fmt(self.opt)}, max {_fmt(self.max)}"


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class BuildSpec:
    """Everything a built engine depends on. compute_capability (0, 0) and gpu_name ""
    mean "built without a GPU" (TensorRT-RTX ahead-of-time builds)."""

    onnx_sha256: str
    trt_module: str
    trt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    profiles: tuple[ShapeProfile, ...]
    flags: tuple[str, ...]
    dla_core: int | None = None
    workspace_mb: int | None = None

    @classmethod
    def for_target(cls, target: DeviceTarget, **fields: Any) -> BuildSpec:
        return cls(
            trt_module=target.flavor.module, trt_version=target.flavor.version,
            gpu_name=target.gpu_name, compute_capability=target.compute_capability, **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["profiles"] = [{"name": p.name, **p.to_dict()} for p in self.profiles]
        d["compute_capability"] = list(self.compute_capability)
        d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildSpec:
        profiles = tuple(
            ShapeProfile(p["name"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"])) for p in d["profiles"]
        )
        cc = d["compute_capability"]
        return cls(
            onnx_sha256=str(d["onnx_sha256"]), trt_module=str(d["trt_module"]), trt_version=str(d["trt_version"]),
            gpu_name=str(d["gpu_name"]), compute_capability=(int(cc[0]), int(cc[1])), precision=str(d["precision"]),
            profiles=profiles, flags=tuple(str(f) for f in d["flags"]),
            dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
            workspace_mb=None if d.get("workspace_mb") is None else int(d["workspace_mb"]),
        )

    def key(self) -> str:
        """sha256 of the canonical JSON of every field (and the key format version)."""
        blob = json.dumps({"key_version": KEY_VERSION, **self.to_dict()}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def changed_fields(old: BuildSpec, new: BuildSpec) -> list[str]:
    """'precision: fp16 -> int8' for every field that differs (checksums shortened)."""
    a, b = old.to_dict(), new.to_dict()
    out = []
    for name in a:
        if a[name] != b[name]:
            before, after = a[name], b[name]
            if name == "onnx_sha256":
                before, after = str(before)[:12], str(after)[:12]
            elif name == "profiles":
                before, after = _profiles_text(before), _profiles_text(after)
            out.append(f"{name}: {before} -> {after}")
    return out


def _profiles_text(profiles: list[dict[str, Any]]) -> str:
    """'images batch 1..4 (opt 1)' per profile: only the batch axis varies."""
    return ", ".join(f"{p['name']} batch {p['min'][0]}..{p['max'][0]} (opt {p['opt'][0]})" for p in profiles) or "none"
