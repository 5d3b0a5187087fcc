"""`edgevision convert`: checkpoint -> ONNX with its post-processing in the graph, verified.

The family registry (converters.families) turns the file into an exportable module, a
manifest and a PyTorch reference. The verification runs the exported file through the
runtime (edgevision.load, ONNX Runtime) and compares it, frame by frame, with that reference
(converters.verify). The artifact is written only if they agree.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_IMAGES, Manifest
from edgevision.metrics import Agreement

from .families.base import Exportable
from .onnx_io import check_model, write_manifest
from .verify import Verdict, batch_consistent, compare


@dataclass
class ExportOptions:
    """imgsz: (H, W) network input (None: the family's default). max_det: D rows per image.
    pre_nms_topk: candidates that enter NMS. conf / iou: the default thresholds recorded in the
    artifact. None for max_det, pre_nms_topk, conf, iou: the family's default (YOLO: 300, 1024,
    0.25, 0.7; torchvision detectors: the model's own detections_per_img, 1000, score_thresh,
    nms_thresh). min_size / max_size: torchvision detectors' transform sides (None: the
    builder's 800 / 1333). nms_iters: fixed-point NMS iterations (None: the family's default,
    YOLO 8, torchvision detectors 32). opset:
    ONNX opset. proposals / roi_align: Faster/Mask R-CNN's RPN proposals (None: the model's
    rpn_post_nms_top_n_test; pre_nms_topk is then the RPN's candidates per level) and RoIAlign
    form ("gather" or "onnx", None: "gather"). arch: "family:name" (e.g. "torchvision:resnet18"; None: detect the family).
    task, num_classes, class_names: override what the checkpoint says. accept_unverified:
    keep an artifact whose verification frames showed nothing.

    pre_nms_topk / nms_iters are sized on a 640x640 mosaic of 20 vtest frames (about 200
    people) at conf 0.01 (benchmarks/bench_nms.py): 841 anchors pass, the 300th row greedy
    NMS keeps is candidate 574 (781 at IoU 0.45), chains are 3 deep; 1024 / 8 give exactly
    greedy NMS there, and the graph's nms_limits output says where they would not.
    """

    imgsz: tuple[int, int] | None = None
    max_det: int | None = None
    pre_nms_topk: int | None = None
    nms_iters: int | None = None
    conf: float | None = None
    iou: float | None = None
    opset: int = 17
    trust: bool = False
    arch: str | None = None
    task: str | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    accept_unverified: bool = False
    min_size: int | None = None
    max_size: int | None = None
    head: str | None = None  # YOLOv10 / YOLO26: "one2one" (default: top-k, no NMS) or "one2many" (+ NMS)
    describe: str | Path | None = None  # --describe spec.yaml for a foreign ONNX file (converters/foreign/spec.py)
    proposals: int | None = None
    roi_align: str | None = None


@dataclass
class ConvertResult:
    onnx_path: Path
    manifest: Manifest
    agreement: Agreement | None = None
    batch_consistent: bool | None = None
    verdict: Verdict | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def log(msg: str) -> None:
    """A progress line of the export ('[convert] ...' on stderr where the CLI shows logs)."""
    logging.getLogger(__name__).info("[convert] %s", msg)


def export_graph(ex: Exportable, out_path: Path, opset: int) -> None:
    """torch.onnx.export with a dynamic batch axis on the images and every output (or the
    family's own writer: a foreign ONNX file joined to edgevision's post-processing)."""
    if ex.write is not None:
        ex.write(out_path)
        write_manifest(out_path, ex.manifest)
        check_model(out_path)
        return
    torch = lazy_import("torch")
    dyn = {name: {0: "batch"} for name in [IN_IMAGES, *ex.output_names]}
    with torch.no_grad():
        torch.onnx.export(
            ex.module, ex.example, str(out_path), opset_version=opset, dynamo=False,
            input_names=ex.input_names, output_names=ex.output_names, dynamic_axes=dyn,
        )
    write_manifest(out_path, ex.manifest)
    check_model(out_path)


def verify_export(onnx_path: Path, ex: Exportable, frames: list[np.ndarray], min_f1: float = 0.99,
                  min_ap: float = 0.97) -> tuple[Verdict, bool | None]:
    """The artifact through the runtime (ONNX Runtime) against the family's PyTorch reference,
    and whether batch 2 gives each frame what batch 1 gave it (None: a batch-1 artifact)."""
    import edgevision

    model = edgevision.load(onnx_path, backend="onnxruntime", masks=False)
    try:
        single = [model(f) for f in frames]
        verdict = compare(ex.manifest.task, single, ex.reference(frames), min_f1=min_f1, min_ap=min_ap)
        return verdict, batch_consistent(model, frames, single) if ex.manifest.dynamic_batch else None
    finally:
        model.close()


def convert(
    model_path: str | Path,
    out_dir: str | Path,
    opts: ExportOptions | None = None,
    verify_frames: list[np.ndarray] | None = None,
    min_f1: float = 0.99,
    min_ap: float = 0.97,
) -> ConvertResult:
    """Convert a checkpoint to a verified ONNX artifact in out_dir (named after the model).

    The family (converters.families) is found from the file and opts.arch; verification runs
    the artifact through the runtime against the family's PyTorch reference on verify_frames.
    """
    from .families import Request, find_family
    from .intake import open_checkpoint

    opts = opts or ExportOptions()
    model_path = Path(model_path)
    out_dir = Path(out_dir)
    if (out_dir / f"{model_path.stem}.onnx").resolve() == model_path.resolve():  # an ONNX source into its own folder
        raise EdgeVisionError(f"-o {out_dir} would overwrite the source {model_path}; choose another output folder")
    t0 = time.perf_counter()
    ckpt = open_checkpoint(model_path, trust=opts.trust)
    req = Request(model_path, opts.arch, opts.task, opts.num_classes, opts.class_names, opts.trust, opts.imgsz,
                  verify_frames[0].shape[:2] if verify_frames else None, opts)
    family = find_family(ckpt, req)
    ex = family.prepare(ckpt, req)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{model_path.stem}.onnx"
    tmp = out_dir / f".{model_path.stem}.onnx.partial"
    h, w = ex.manifest.input_hw
    log(f"exporting {model_path} ({family.name}, {ex.manifest.task}) at {h}x{w} with its post-processing in the graph")
    export_graph(ex, tmp, opts.opset)
    manifest = ex.manifest
    result = ConvertResult(final, manifest, notes=list(ex.notes))
    if verify_frames:
        log(f"verifying against the source model on {len(verify_frames)} frames")
        verdict, result.batch_consistent = verify_export(tmp, ex, verify_frames, min_f1, min_ap)
        result.verdict, result.agreement = verdict, verdict.agreement
        log(f"agreement with the source model: {verdict.summary}; batch 2 == batch 1: {result.batch_consistent}")
        if not verdict.verified and opts.accept_unverified:
            result.notes.append(f"{verdict.summary} (accepted with --accept-unverified)")
        elif not verdict.verified:
            tmp.unlink(missing_ok=True)
            raise EdgeVisionError(
                f"{verdict.summary}: verify on frames where it finds something (--verify SOURCE), "
                "or pass --accept-unverified"
            )
        elif not verdict.passed or result.batch_consistent is False:
            bad = out_dir / f"{model_path.stem}.rejected.onnx"
            tmp.replace(bad)
            raise EdgeVisionError(
                f"the exported graph disagrees with {'the source ONNX file' if ex.write else 'the PyTorch model'} "
                f"({verdict.summary}, "
                f"batch consistent: {result.batch_consistent}); kept for inspection at {bad}"
            )
    else:
        result.notes.append("not verified on real frames (pass --verify SOURCE)")
    tmp.replace(final)
    result.seconds = time.perf_counter() - t0
    report = {
        "onnx": str(final), "seconds": round(result.seconds, 2), "notes": result.notes,
        "agreement": asdict(result.agreement) if result.agreement else None,
        "verification": asdict(result.verdict) if result.verdict else None,
        "batch_consistent": result.batch_consistent, "manifest": json.loads(manifest.to_json()),
    }
    (out_dir / f"{model_path.stem}.convert.json").write_text(json.dumps(report, indent=2))
    return result
