"""`edgevision convert`'s arguments -> ExportOptions (shared by the CLI and --qat, which exports the
fine-tuned model with the options the FP32 artifact was made with)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgevision.errors import EdgeVisionError

from .export import ExportOptions


def class_names_file(path: str | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EdgeVisionError(f"--class-names {path}: {exc.strerror}") from exc
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise EdgeVisionError(f"--class-names {path} lists no names")
    return names


def export_options(args: argparse.Namespace) -> ExportOptions:
    """The ExportOptions `edgevision convert`'s arguments ask for (--qat exports the fine-tuned
    model with the same ones); options a caller's Namespace lacks take their defaults."""
    a = {k: getattr(args, k, None) for k in (
        "imgsz", "max_det", "pre_nms_topk", "nms_iters", "conf", "iou", "arch", "task", "num_classes", "min_size",
        "max_size", "head", "describe", "proposals", "roi_align")}
    return ExportOptions(**a, opset=getattr(args, "opset", None) or 17, trust=bool(getattr(args, "trust_checkpoint", False)),
                         class_names=class_names_file(getattr(args, "class_names", None)),
                         accept_unverified=bool(getattr(args, "accept_unverified", False)))
