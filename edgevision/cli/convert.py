"""`edgevision convert MODEL -o DIR`: checkpoint -> verified ONNX (-> precision -> engine)."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..errors import EdgeVisionError


def _hw(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().replace("x", ",").split(",") if v]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"--imgsz wants N or HxW, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Ultralytics YOLO .pt checkpoint (detect or segment, v8/11)")
    p.add_argument("-o", "--output", default=None, help="output folder (default: runs/convert/<model name>)")
    p.add_argument("--imgsz", type=_hw, default=(640, 640), help="network input, N or HxW (default 640)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--conf", type=float, default=0.25, help="default confidence threshold recorded in the artifact")
    p.add_argument("--iou", type=float, default=0.7, help="default NMS IoU threshold recorded in the artifact")
    p.add_argument("--pre-nms-topk", type=int, default=1024,
                   help="best candidates that enter NMS (default 1024: exact on a 200-person frame at conf 0.01)")
    p.add_argument("--nms-iters", type=int, default=8,
                   help="fixed-point NMS iterations per block of candidates (default 8); the graph's nms_limits "
                        "output says where either limit was reached")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--verify", metavar="SOURCE", default=None,
                   help="video/folder/glob whose frames prove the ONNX agrees with PyTorch (recommended)")
    p.add_argument("--verify-frames", type=int, default=16, help="frames taken from --verify (default 16)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle the checkpoint fully (runs code in the file; only for files you trust)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="artifact precision; fp16/int8 write <model>.fp16.onnx or <model>.int8.onnx (TensorRT Q/DQ) "
                        "and <model>.int8-cpu.onnx (ONNX Runtime CPU), gated against FP32, plus <model>.precision.md")
    p.add_argument("--calib", metavar="SOURCE", default=None,
                   help="INT8 calibration frames: video, folder or glob (default: --verify's source)")
    p.add_argument("--calib-frames", type=int, default=256, help="calibration frames sampled across --calib (default 256)")
    p.add_argument("--val", metavar="SOURCE", default=None,
                   help="accuracy-gate frames (default: frames of --calib that calibration did not use)")
    p.add_argument("--val-frames", type=int, default=64, help="frames for the accuracy gate (default 64)")
    p.add_argument("--max-drop", default=None,
                   help="accuracy budget vs FP32 as minimum agreement 'AP,F1[,MASK]' (default 0.90,0.95,0.85 for "
                        "int8, 0.98,0.99,0.97 for fp16); below it the command fails and the artifact is *.rejected.onnx")
    p.add_argument("--keep-float", default="auto", metavar="auto|none|REGEX,...",
                   help="INT8 layers kept in float: auto measures each layer group's effect and keeps the worst "
                        "until the budget holds (default); none; or node-name regexes")
    p.add_argument("--calib-percentile", type=float, default=None,
                   help="INT8 activation clipping: percentile of |x| per tensor, 100 = min/max (default: 99.999 for "
                        "the TensorRT graph, 99.99 for the CPU twin, measured best for each)")
    p.add_argument("--tune-frames", type=int, default=12,
                   help="calibration frames the --keep-float auto search scores layers on (default 12)")
    p.add_argument("--engine", action="store_true", help="also build a TensorRT engine (needs TensorRT and a GPU)")


def main(args: argparse.Namespace) -> int:
    from converters.export import ExportOptions, convert

    from ..sources import sample_frames

    model = Path(args.model)
    out = Path(args.output) if args.output else Path("runs/convert") / model.stem
    frames = None
    if args.verify:
        frames, _ = sample_frames(args.verify, args.verify_frames)
        if not frames:
            raise EdgeVisionError(f"--verify {args.verify}: no frames could be read")
    opts = ExportOptions(
        imgsz=args.imgsz, max_det=args.max_det, pre_nms_topk=args.pre_nms_topk, nms_iters=args.nms_iters,
        conf=args.conf, iou=args.iou, opset=args.opset, trust=args.trust_checkpoint,
    )
    result = convert(model, out, opts, frames)
    print(f"ONNX      {result.onnx_path}  ({result.seconds:.1f} s)")
    if result.agreement:
        print(f"verified  {result.agreement.summary()}; batch 2 == batch 1: {result.batch_consistent}")
    for note in result.notes:
        print(f"note      {note}", file=sys.stderr)
    artifact = result.onnx_path
    if args.precision != "fp32":
        precision = importlib.import_module("converters.precision")
        artifact = precision.apply_precision(result, args)
    if args.engine:
        engine = importlib.import_module("edgevision.engine.cli_hooks")
        engine.build_from_convert(artifact, args)
    return 0
