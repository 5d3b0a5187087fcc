"""`edgevision convert`: checkpoint -> ONNX with decode + NMS in the graph, verified.

The verification runs the exported file through the runtime (edgevision.load, ONNX
Runtime) and compares it, frame by frame, with the PyTorch model followed by the
numpy greedy-NMS reference. The artifact is written only if they agree.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (
    IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_COEFFS, OUT_LIMITS, OUT_NUM, OUT_PROTOS,
    OUT_SCORES, Manifest, sha256_file,
)
from edgevision.metrics import Agreement, agreement

from .onnx_io import check_model, write_manifest


@dataclass
class ExportOptions:
    """imgsz: (H, W) network input. max_det: D rows per image. pre_nms_topk: candidates that
    enter NMS. nms_iters: fixed-point NMS iterations per block. opset: ONNX opset.

    pre_nms_topk / nms_iters are sized on a 640x640 mosaic of 20 vtest frames (about 200
    people) at conf 0.01 (benchmarks/bench_nms.py): 841 anchors pass, the 300th row greedy
    NMS keeps is candidate 574 (781 at IoU 0.45), chains are 3 deep; 1024 / 8 give exactly
    greedy NMS there, and the graph's nms_limits output says where they would not.
    """

    imgsz: tuple[int, int] = (640, 640)
    max_det: int = 300
    pre_nms_topk: int = 1024
    nms_iters: int = 8
    conf: float = 0.25
    iou: float = 0.7
    opset: int = 17
    trust: bool = False


@dataclass
class ConvertResult:
    onnx_path: Path
    manifest: Manifest
    agreement: Agreement | None = None
    batch_consistent: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def log(msg: str) -> None:
    print(f"[convert] {msg}", file=sys.stderr, flush=True)


def export_yolo(model_path: Path, out_path: Path, opts: ExportOptions) -> tuple[Manifest, Any]:
    """Export a YOLO checkpoint with post-processing; returns (manifest, loaded source)."""
    torch = lazy_import("torch")
    from .nms import DetectPostprocess
    from .yolo import YoloWithPostprocess, load_yolo, yolo_manifest

    src = load_yolo(model_path, trust=opts.trust)
    h, w = opts.imgsz
    if h % max(src.strides) or w % max(src.strides):
        raise EdgeVisionError(f"--imgsz {h}x{w} must be a multiple of the model's stride {max(src.strides)}")
    anchors = sum((h // s) * (w // s) for s in src.strides)
    topk = min(opts.pre_nms_topk, anchors)
    post = DetectPostprocess(len(src.class_names), src.num_masks, min(opts.max_det, topk), topk, opts.nms_iters)
    wrapper = YoloWithPostprocess(src, post).eval()
    example = (torch.rand(2, 3, h, w), torch.tensor([opts.conf]), torch.tensor([opts.iou]))
    # nms_limits last: consumers that read the earlier outputs by position keep working.
    outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM] + ([OUT_COEFFS, OUT_PROTOS] if src.task == "segment" else [])
    outputs.append(OUT_LIMITS)
    dyn = {name: {0: "batch"} for name in [IN_IMAGES, *outputs]}
    with torch.no_grad():
        protos_shape = wrapper(*example)[outputs.index(OUT_PROTOS)].shape[1:] if src.task == "segment" else None
        torch.onnx.export(
            wrapper, example, str(out_path), opset_version=opts.opset, dynamo=False,
            input_names=[IN_IMAGES, IN_CONF, IN_IOU], output_names=outputs, dynamic_axes=dyn,
        )
    manifest = yolo_manifest(
        src, (h, w), post.max_det, protos_shape,
        pre_nms_topk=topk, nms_iters=opts.nms_iters, nms_block=post.block, anchors=anchors,
    ).replace(
        conf_threshold=opts.conf, iou_threshold=opts.iou,
        source={"file": model_path.name, "sha256": sha256_file(model_path), "kind": "ultralytics"},
    )
    write_manifest(out_path, manifest)
    check_model(out_path)
    return manifest, src


def reference_detections(src: Any, frames: list[np.ndarray], manifest: Manifest) -> list[Detections]:
    """The PyTorch model on each frame, decoded with the numpy greedy-NMS reference."""
    torch = lazy_import("torch")
    from edgevision.preprocess import preprocess

    from .reference import decode_nms

    out = []
    for frame in frames:
        x, geo = preprocess(frame, manifest.input_hw, manifest.preprocess)
        with torch.no_grad():
            raw = src.model(torch.from_numpy(x))
        preds = (raw[0] if isinstance(raw, (tuple, list)) else raw)[0].numpy()
        ref = decode_nms(preds, manifest.num_classes, manifest.conf_threshold, manifest.iou_threshold, manifest.max_det,
                         manifest.extra.get("pre_nms_topk"))
        out.append(Detections(geo.boxes_to_frame(ref.boxes), ref.scores, ref.class_ids, None, manifest.class_names))
    return out


def verify_export(onnx_path: Path, src: Any, frames: list[np.ndarray], manifest: Manifest) -> tuple[Agreement, bool]:
    """Agreement of the ONNX artifact (via the runtime) with the PyTorch reference, and
    whether batch 2 gives each image the same detections as batch 1."""
    import edgevision

    model = edgevision.load(onnx_path, backend="onnxruntime", masks=False)
    single = [model(f) for f in frames]
    ref = reference_detections(src, frames, manifest)
    agree = agreement(single, ref)
    consistent = True
    for i in range(0, len(frames) - 1, 2):
        pair = model.predict(frames[i : i + 2])
        for got, want in zip(pair, single[i : i + 2]):
            consistent &= len(got) == len(want) and np.allclose(got.xyxy, want.xyxy, atol=1e-2)
    return agree, consistent


def convert(
    model_path: str | Path,
    out_dir: str | Path,
    opts: ExportOptions | None = None,
    verify_frames: list[np.ndarray] | None = None,
    min_f1: float = 0.99,
    min_ap: float = 0.97,
) -> ConvertResult:
    """Convert a checkpoint to a verified ONNX artifact in out_dir (named after the model)."""
    opts = opts or ExportOptions()
    model_path = Path(model_path)
    out_dir = Path(out_dir)
    if not model_path.is_file():
        raise EdgeVisionError(f"model file not found: {model_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    suffix = model_path.suffix.lower()
    if suffix not in (".pt", ".pth"):
        raise EdgeVisionError(f"{model_path}: edgevision converts Ultralytics YOLO .pt checkpoints (got {suffix or 'no suffix'})")
    final = out_dir / f"{model_path.stem}.onnx"
    tmp = out_dir / f".{model_path.stem}.onnx.partial"
    log(f"exporting {model_path} at {opts.imgsz[0]}x{opts.imgsz[1]} with decode + NMS in the graph")
    manifest, src = export_yolo(model_path, tmp, opts)
    result = ConvertResult(final, manifest)
    if verify_frames:
        log(f"verifying against PyTorch on {len(verify_frames)} frames")
        result.agreement, result.batch_consistent = verify_export(tmp, src, verify_frames, manifest)
        log(f"agreement with PyTorch: {result.agreement.summary()}; batch 2 == batch 1: {result.batch_consistent}")
        if not result.agreement.passes(min_f1, min_ap) or not result.batch_consistent:
            bad = out_dir / f"{model_path.stem}.rejected.onnx"
            tmp.replace(bad)
            raise EdgeVisionError(
                f"the exported graph disagrees with the PyTorch model ({result.agreement.summary()}, "
                f"batch consistent: {result.batch_consistent}); kept for inspection at {bad}"
            )
    else:
        result.notes.append("not verified on real frames (pass --verify SOURCE)")
    tmp.replace(final)
    result.seconds = time.perf_counter() - t0
    report = {
        "onnx": str(final), "seconds": round(result.seconds, 2), "notes": result.notes,
        "agreement": asdict(result.agreement) if result.agreement else None,
        "batch_consistent": result.batch_consistent, "manifest": json.loads(manifest.to_json()),
    }
    (out_dir / f"{model_path.stem}.convert.json").write_text(json.dumps(report, indent=2))
    return result
