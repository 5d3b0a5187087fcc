"""`edgevision verify ARTIFACT --val SOURCE`: re-run the accuracy gate on any artifact and data.

Compares the artifact's detections with its FP32 reference's (named in the artifact's
manifest, or --reference) on the frames given, against the budget its precision was
accepted with (or --max-drop). Exit status 0 when the budget holds, 1 when it does not.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgevision.errors import EdgeVisionError

HELP = "re-run the accuracy gate: an FP16/INT8 artifact vs its FP32 reference on your frames"
LOGGERS = ("converters",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="the .onnx (or engine) to check, e.g. runs/convert/yolo11n/yolo11n.int8.onnx")
    p.add_argument("--val", metavar="SOURCE", required=True, help="video, folder or glob of frames to check on")
    p.add_argument("--val-frames", type=int, default=64, help="frames sampled evenly across --val (default 64)")
    p.add_argument("--reference", default=None,
                   help="the FP32 .onnx to agree with (default: the reference named in the artifact's manifest)")
    p.add_argument("--max-drop", default=None,
                   help="budget vs FP32 as in convert: 'AP,F1[,MASK]', classifiers 'TOP1,MAX_PROB_DIFF', class maps "
                        "'PIXEL,MIOU' (default: the budget the artifact was accepted "
                        "with; 0.90,0.95 for int8, 0.98,0.99 for fp16)")
    p.add_argument("--backend", default=None, help="backend to run the artifact on (default: best usable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _reference(artifact: Path, explicit: str | None, extra: dict[str, object]) -> Path:
    if explicit:
        ref = Path(explicit)
    else:
        name = extra.get("reference") if isinstance(extra, dict) else None
        if not name:
            raise EdgeVisionError(f"{artifact} does not name its FP32 reference; pass --reference FP32.onnx")
        ref = artifact.parent / str(name)
    if not ref.is_file():
        raise EdgeVisionError(f"FP32 reference not found: {ref} (pass --reference)")
    return ref


def main(args: argparse.Namespace) -> int:
    from edgevision.backends import open_backend
    from edgevision.sources import sample_frames

    from ..precision import budget as budget_mod
    from ..precision import gate
    artifact = Path(args.artifact)
    with open_backend(artifact, args.backend) as backend:
        manifest = backend.manifest
    meta = manifest.extra.get("precision", {}) if isinstance(manifest.extra, dict) else {}
    reference = _reference(artifact, args.reference, meta)
    if args.max_drop:
        budget = budget_mod.parse_budget(args.max_drop, manifest.precision, manifest.task)
    elif isinstance(meta.get("budget"), dict):
        budget = budget_mod.Budget(**meta["budget"])
    else:
        budget = budget_mod.parse_budget(None, manifest.precision, manifest.task)
    frames, _ = sample_frames(args.val, args.val_frames)
    if not frames:
        raise EdgeVisionError(f"--val {args.val}: no frames could be read")
    result = gate.gate(reference, {"artifact": artifact}, frames, budget, backend=args.backend)["artifact"]
    ev = result.evaluation
    if args.json:
        print(json.dumps({"artifact": str(artifact), "reference": str(reference), "precision": manifest.precision,
                          "accepted": result.accepted, "failures": result.failures, "budget": budget.as_dict(),
                          "evaluation": ev.as_dict()}, indent=2))
    else:
        print(f"artifact   {artifact} ({manifest.precision})")
        print(f"reference  {reference}")
        print(f"agreement  {ev.summary()}")
        print(f"budget     {budget.describe(manifest.task)}")
        print(f"verdict    {'PASS' if result.accepted else 'FAIL: ' + '; '.join(result.failures)}")
    if not result.accepted:
        raise EdgeVisionError(f"{artifact} misses the accuracy budget vs {reference.name}: {'; '.join(result.failures)}")
    return 0
