"""Pick the artifact to run from a convert output folder.

`edgevision convert --precision ...` leaves several artifacts of one model side by side
(FP32, INT8 for TensorRT, INT8 for ONNX Runtime's CPU kernels, FP16) and a report,
<model>.precision.json, saying which passed the accuracy gate and how fast each ran here.
resolve() turns "this folder" into "what to run": the fastest *accepted* pair of artifact and
runtime configuration (ONNX Runtime; OpenVINO at f32 or bf16: each run through the accuracy
gate), FP32 on ONNX Runtime when nothing else qualifies. Numpy-free, stdlib only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgeVisionError

# Without a measured speed for a backend, prefer the lowest accepted precision built for it.
_PREFERENCE = ("int8", "int8-cpu", "fp16", "fp32")

# Runtime configurations the precision report measures and gates: name -> (backend, options).
# bf16 is OpenVINO's default on AMX CPUs and changes results, so it is a configuration of its own.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "onnxruntime": ("onnxruntime", {}),
    "tensorrt": ("tensorrt", {}),
    "openvino": ("openvino", {}),
    "openvino-bf16": ("openvino", {"precision": "bf16"}),
}


@dataclass(frozen=True)
class Resolved:
    """What to run: an artifact file, the backend, and the backend options its gate passed with."""

    path: Path
    backend: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: str = ""


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


# Configurations gated on their own: only their own verdict (entry["runtimes"]) accepts them.
GATED_ALONE = ("openvino", "openvino-bf16")


def accepted_on(entry: dict[str, Any], config: str) -> bool:
    """Did this artifact pass the gate when run by `config`? The artifact's own verdict covers
    the backends it was built for (ONNX Runtime, TensorRT); OpenVINO configurations count only
    with a verdict of their own (a report made without OpenVINO has none: never picked there)."""
    own = entry.get("runtimes", {}).get(config)
    if config in GATED_ALONE:
        return isinstance(own, dict) and bool(own.get("accepted"))
    return bool(entry.get("accepted")) and CONFIGS.get(config, (config, {}))[0] in entry.get("targets", [])


def choose_run(report: dict[str, Any], backends: list[str]) -> tuple[str, str] | None:
    """(variant, configuration) to run with one of `backends`: accepted there, fastest measured
    (speedups over FP32 on ONNX Runtime from the same interleaved run, so they compare across
    configurations); without measurements, by _PREFERENCE on the first backend."""
    configs = [c for c, (b, _) in CONFIGS.items() if b in backends]
    pairs = [(name, c) for name, e in report.get("artifacts", {}).items() if isinstance(e, dict)
             for c in configs if accepted_on(e, c)]
    speed = {
        (name, c): float(report["artifacts"][name]["speed"][c]["speedup_vs_fp32"]) for name, c in pairs
        if isinstance(report["artifacts"][name].get("speed", {}).get(c), dict)
        and "speedup_vs_fp32" in report["artifacts"][name]["speed"][c]
    }
    if speed:
        return max(speed, key=lambda k: speed[k])
    first = next((c for c in configs if any(pc == c for _, pc in pairs)), None)
    names = {n for n, c in pairs if c == first}
    ranked = [n for n in _PREFERENCE if n in names] + sorted(names - set(_PREFERENCE))
    return (ranked[0], str(first)) if ranked else None


def choose(report: dict[str, Any], backend: str) -> str | None:
    """The variant to run on `backend` (see choose_run)."""
    run = choose_run(report, [backend])
    return run[0] if run else None


def resolve(path: str | Path, backends: list[str] | None = None) -> Resolved:
    """A file is returned as is (backend None: the caller's choice). A convert output folder
    gives the fastest accepted (artifact, configuration) among `backends` (default: ONNX
    Runtime; edgevision.load passes every usable one) according to its precision report, else
    the FP32 ONNX."""
    path = Path(path)
    if path.is_file():
        return Resolved(path)
    if not path.is_dir():
        raise EdgeVisionError(f"model file not found: {path}")
    reports = sorted(path.glob("*.precision.json"))
    if len(reports) > 1:
        raise EdgeVisionError(
            f"{path} holds reports for several models ({', '.join(r.name for r in reports)}); pass the artifact file"
        )
    if reports and (data := _load_report(reports[0])) is not None:
        run = choose_run(data, backends or ["onnxruntime"])
        if run is not None:
            candidate = path / str(data["artifacts"][run[0]]["path"])
            if candidate.is_file():
                backend, options = CONFIGS[run[1]]
                return Resolved(candidate, backend, dict(options), run[1])
    return Resolved(_fp32_fallback(path), backends[0] if backends and len(backends) == 1 else None)


def resolve_artifact(path: str | Path, backend: str = "onnxruntime") -> Path:
    """The file resolve() picks for one backend."""
    return resolve(path, [backend]).path
