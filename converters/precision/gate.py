"""The accuracy gate: any artifact against its FP32 reference on frames calibration never saw.

Runs through edgevision.load, so it checks what a user will run (any backend the runtime
has: ONNX Runtime here, a TensorRT engine on a GPU machine).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .budget import Budget
from .evaluate import AP_CONF, Prepared, prepare
from .judge import AnyEvaluation, evaluate, results


@dataclass
class GateResult:
    """One artifact's evaluation and what falls short of the budget (empty: accepted)."""

    evaluation: AnyEvaluation  # the task's measures (judge.py)
    failures: list[str]

    @property
    def accepted(self) -> bool:
        return not self.failures


def _compatible(ref: Manifest, cand: Manifest, path: Path) -> None:
    for field in ("input_hw", "class_names", "preprocess", "task"):
        if getattr(ref, field) != getattr(cand, field):
            raise EdgeVisionError(
                f"{path} and its reference differ in {field} ({getattr(cand, field)!r} vs {getattr(ref, field)!r}); "
                "compare an artifact with the FP32 model it was made from"
            )


def evaluate_artifacts(
    reference: Path, candidates: Mapping[str, Path], frames: Sequence[np.ndarray] | Prepared,
    backend: str | None = None, options: Mapping[str, Any] | None = None,
) -> dict[str, AnyEvaluation]:
    """name -> evaluation of each candidate vs the reference (FP32 on ONNX Runtime) on the frames.
    backend, options: how the candidates run (e.g. "openvino", {"precision": "bf16"})."""
    import edgevision

    prepared = frames if isinstance(frames, Prepared) else prepare(reference, frames)
    with edgevision.load(reference, backend="onnxruntime", conf=AP_CONF, masks=False) as ref_model:
        manifest = ref_model.manifest
        key = str(Path(reference).resolve())
        if key not in prepared.references:
            prepared.references[key] = results(ref_model.infer, prepared, manifest)
        ref = prepared.references[key]
    out = {}
    for name, path in candidates.items():
        with edgevision.load(path, backend=backend, conf=AP_CONF, masks=False, **(options or {})) as model:
            _compatible(manifest, model.manifest, Path(path))
            out[name] = evaluate(results(model.infer, prepared, model.manifest), ref, manifest)
    return out


def gate(
    reference: Path, candidates: Mapping[str, Path], frames: Sequence[np.ndarray] | Prepared, budget: Budget,
    backend: str | None = None, options: Mapping[str, Any] | None = None,
) -> dict[str, GateResult]:
    """evaluate_artifacts() judged against the budget."""
    evs = evaluate_artifacts(reference, candidates, frames, backend, options)
    return {name: GateResult(ev, budget.failures(ev)) for name, ev in evs.items()}
