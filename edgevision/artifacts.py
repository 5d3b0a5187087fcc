"""Pick the artifact to run from a convert output folder.

`edgevision convert --precision ...` leaves several artifacts of one model side by side
(FP32, INT8 for TensorRT, INT8 for ONNX Runtime's CPU kernels, FP16) and a report,
<model>.precision.json, saying which passed the accuracy gate and how fast each ran here.
resolve_artifact() turns "this folder" into "the file to load": the fastest *accepted*
artifact for the backend, FP32 when nothing else qualifies. Numpy-free, stdlib only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import EdgeVisionError

# Without a measured speed for a backend, prefer the lowest accepted precision built for it.
_PREFERENCE = ("int8", "int8-cpu", "fp16", "fp32")


def _load_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("artifacts"), dict) else None


def _fp32_fallback(folder: Path) -> Path:
    """The FP32 ONNX of a convert folder (named in <model>.convert.json), else the one plain .onnx."""
    for meta in sorted(folder.glob("*.convert.json")):
        try:
            onnx = Path(json.loads(meta.read_text()).get("onnx", ""))
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        for candidate in (folder / onnx.name, onnx):
            if onnx.name and candidate.is_file():
                return candidate
    plain = [p for p in sorted(folder.glob("*.onnx")) if p.name.count(".") == 1]  # not *.int8.onnx etc.
    if len(plain) == 1:
        return plain[0]
    found = ", ".join(p.name for p in sorted(folder.glob("*.onnx"))) or "none"
    raise EdgeVisionError(f"{folder} is not a convert output folder with one model (ONNX files here: {found})")


def choose(report: dict[str, Any], backend: str) -> str | None:
    """The variant to run on `backend`: accepted, built for it, fastest measured (speedup over
    FP32 from the same run); without measurements, by _PREFERENCE."""
    entries = {
        name: e for name, e in report.get("artifacts", {}).items()
        if isinstance(e, dict) and e.get("accepted") and backend in e.get("targets", [])
    }
    measured = {
        name: float(e["speed"][backend]["speedup_vs_fp32"])
        for name, e in entries.items()
        if isinstance(e.get("speed", {}).get(backend), dict) and "speedup_vs_fp32" in e["speed"][backend]
    }
    if measured:
        best: str = max(measured, key=lambda n: measured[n])
        return best
    ranked = [n for n in _PREFERENCE if n in entries] + sorted(set(entries) - set(_PREFERENCE))
    return ranked[0] if ranked else None


def resolve_artifact(path: str | Path, backend: str = "onnxruntime") -> Path:
    """A file is returned as is. A convert output folder gives the fastest accepted artifact
    for `backend` according to its precision report (falling back to the FP32 ONNX)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise EdgeVisionError(f"model file not found: {path}")
    reports = sorted(path.glob("*.precision.json"))
    if len(reports) > 1:
        raise EdgeVisionError(
            f"{path} holds reports for several models ({', '.join(r.name for r in reports)}); pass the artifact file"
        )
    if reports and (data := _load_report(reports[0])) is not None:
        name = choose(data, backend)
        if name is not None:
            candidate = path / str(data["artifacts"][name]["path"])
            if candidate.is_file():
                return candidate
    return _fp32_fallback(path)
