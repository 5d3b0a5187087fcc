"""`edgevision convert MODEL -o DIR`: checkpoint -> verified ONNX (-> precision -> engine)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgevision.errors import EdgeVisionError

if TYPE_CHECKING:
    from edgevision.build import BuildResult

HELP = "PyTorch checkpoint or foreign ONNX -> ONNX with decode + NMS in the graph (then an engine)"
LOGGERS = ("converters",)  # its "[convert] ..." and "[precision] ..." progress lines


def _hw(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().replace("x", ",").split(",") if v]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"--imgsz wants N or HxW, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the trained model: an Ultralytics YOLO .pt checkpoint (detect, segment, pose, obb or classify, v8/11), "
                                 "or a state_dict with --arch torchvision:NAME (classifiers, FCN/DeepLabV3/LRASPP, "
                                 "RetinaNet/FCOS), or an ONNX file from another exporter (Ultralytics' as it is, "
                                 "others with --describe)")
    p.add_argument("--arch", default=None, metavar="FAMILY:NAME",
                   help="the architecture of a state_dict, e.g. torchvision:resnet18, torchvision:deeplabv3_resnet50, "
                        "torchvision:retinanet_resnet50_fpn")
    p.add_argument("--describe", metavar="SPEC.yaml", default=None,
                   help="an ONNX file's raw output layout (yolo, end2end, detr, ssd), box format, classes and "
                        "pre-processing; not needed for Ultralytics' ONNX exports (README: ONNX files from other "
                        "exporters)")
    p.add_argument("--task", default=None, choices=("detect", "segment", "semantic", "classify"),
                   help="override the task the family detects")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the checkpoint's head (default: read from the checkpoint)")
    p.add_argument("--class-names", metavar="FILE", default=None,
                   help="text file with one class name per line (default: the checkpoint's or the weights' names)")
    p.add_argument("--accept-unverified", action="store_true",
                   help="keep the artifact even when the model found nothing on the --verify frames")
    p.add_argument("-o", "--output", default=None, help="output folder (default: runs/convert/<model name>)")
    p.add_argument("--imgsz", type=_hw, default=None,
                   help="network input, N or HxW (default: 640 for YOLO, the weights' preset for torchvision)")
    p.add_argument("--max-det", type=int, default=None,
                   help="detections kept per image (default 300 for YOLO, the model's detections_per_img for "
                        "torchvision detectors)")
    p.add_argument("--conf", type=float, default=None,
                   help="default confidence threshold recorded in the artifact (default 0.25 for YOLO, the model's "
                        "score_thresh for torchvision detectors)")
    p.add_argument("--iou", type=float, default=None,
                   help="default NMS IoU threshold recorded in the artifact (default 0.7 for YOLO, the model's "
                        "nms_thresh for torchvision detectors)")
    p.add_argument("--pre-nms-topk", type=int, default=None,
                   help="best candidates that enter NMS (default 1024 for YOLO: exact on a 200-person frame at conf 0.01; 1000 for torchvision one-stage detectors; Faster/Mask R-CNN: the RPN's candidates per level, default the model's rpn_pre_nms_top_n_test)")
    p.add_argument("--proposals", type=int, default=None,
                   help="Faster/Mask R-CNN: proposals the RPN hands to the box head (default the model's rpn_post_nms_top_n_test)")
    p.add_argument("--roi-align", choices=("gather", "onnx"), default=None,
                   help="Faster/Mask R-CNN: RoIAlign as Gather-based bilinear sampling (default; TensorRT-RTX builds it) "
                        "or the ONNX RoiAlign op (TensorRT needs a plugin for it)")
    p.add_argument("--min-size", type=int, default=None,
                   help="torchvision detectors: the transform's min_size the model was trained with (default 800)")
    p.add_argument("--max-size", type=int, default=None,
                   help="torchvision detectors: the transform's max_size the model was trained with (default 1333)")
    p.add_argument("--nms-iters", type=int, default=None,
                   help="fixed-point NMS iterations per block of candidates (default 8 for YOLO, 32 for torchvision detectors); the graph's nms_limits output says where a limit was reached")
    p.add_argument("--head", choices=("one2one", "one2many"), default=None,
                   help="YOLOv10 / YOLO26 (end-to-end heads): one2one = the NMS-free branch, its top-k in the graph "
                        "(default); one2many = the other branch with edgevision's in-graph NMS")
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
                   help="accuracy budget vs FP32, by task: detect/segment 'AP,F1[,MASK]' minimums (default "
                        "0.90,0.95,0.85 for int8, 0.98,0.99,0.97 for fp16); classify 'TOP1,MAX_PROB_DIFF' (top-1 "
                        "agreement minimum, largest top-k probability difference; 0.98,0.05 / 0.995,0.01); semantic "
                        "'PIXEL,MIOU' minimums (0.98,0.90 / 0.99,0.97); below it the command fails and the artifact "
                        "is *.rejected.onnx")
    p.add_argument("--keep-float", default="auto", metavar="auto|none|REGEX,...",
                   help="INT8 layers kept in float: auto measures each layer group's effect and keeps the worst "
                        "until the budget holds (default); none; or node-name regexes")
    p.add_argument("--calib-percentile", type=float, default=None,
                   help="INT8 activation clipping: percentile of |x| per tensor, 100 = min/max (default: 99.999 for "
                        "the TensorRT graph, 99.99 for the CPU twin, measured best for each)")
    p.add_argument("--calib-method", default=None, choices=["percentile", "max", "mse"],
                   help="INT8 activation ranges: percentile of |x| (see --calib-percentile), max (min/max), or mse "
                        "(the range of least int8 error per tensor); default percentile")
    p.add_argument("--int8-engine", default="edgevision", choices=["edgevision", "nncf"],
                   help="who writes the INT8 graphs: edgevision's own quantizer (default: measured more accurate for "
                        "the TensorRT graph and faster for the CPU twin, benchmarks/results/int8_peers.md) or NNCF's ONNX "
                        "post-training quantization (pip install 'edgevision[nncf]'); the gate judges either")
    p.add_argument("--quantize-final", action="store_true",
                   help="INT8 also for the final layers (box / class / mask-coefficient convolutions), which stay "
                        "float by default: scenes unlike the calibration clip push their inputs to 3x its range")
    p.add_argument("--tune-frames", type=int, default=12,
                   help="calibration frames the --keep-float auto search scores layers on (default 12)")
    p.add_argument("--speed-rounds", type=int, default=10,
                   help="interleaved timing rounds per artifact and runtime in the precision report (default 10)")
    p.add_argument("--qat", action="store_true",
                   help="INT8: fine-tune the fake-quantized model against the FP32 model on the (augmented, unlabeled) "
                        "calibration frames before writing the INT8 graphs (needs the PyTorch checkpoint; a few minutes "
                        "on a CPU; Ctrl-C stops early and keeps the best checkpoint)")
    p.add_argument("--qat-minutes", type=float, default=None,
                   help="--qat: training time limit in minutes (default 5)")
    p.add_argument("--qat-steps", type=int, default=None,
                   help="--qat: training steps limit (default: until --qat-minutes)")
    p.add_argument("--engine", action="store_true", help="also build a TensorRT engine (needs TensorRT and a GPU)")


def main(args: argparse.Namespace) -> int:
    from edgevision.sources import sample_frames

    from ..export import convert
    from ..export_args import export_options

    model = Path(args.model)
    out = Path(args.output) if args.output else Path("runs/convert") / model.stem
    if getattr(args, "qat", False):  # refused before any work
        from ..precision.qat import check_qat_source

        if args.precision != "int8":
            raise EdgeVisionError(f"--qat fine-tunes for INT8; add --precision int8 (asked: {args.precision})")
        if getattr(args, "int8_engine", "edgevision") != "edgevision":
            # QAT trains against edgevision's own placement and scales; NNCF places and scales its own
            raise EdgeVisionError(f"--qat trains for edgevision's INT8 placement; drop --int8-engine {args.int8_engine}")
        check_qat_source(model)
    if getattr(args, "int8_engine", "edgevision") == "nncf" and (getattr(args, "calib_method", None)
                                                                  or getattr(args, "calib_percentile", None)):
        raise EdgeVisionError("--calib-method / --calib-percentile set edgevision's own ranges; the NNCF engine "
                              "measures its own: drop them or --int8-engine nncf")
    frames = None
    if args.verify:
        frames, _ = sample_frames(args.verify, args.verify_frames)
        if not frames:
            raise EdgeVisionError(f"--verify {args.verify}: no frames could be read")
    opts = export_options(args)
    result = convert(model, out, opts, frames)
    print(f"ONNX      {result.onnx_path}  ({result.seconds:.1f} s)")
    if result.verdict and result.verdict.verified:
        print(f"verified  {result.verdict.summary}; batch 2 == batch 1: {result.batch_consistent}")
    for note in result.notes:
        print(f"note      {note}", file=sys.stderr)
    artifact = result.onnx_path
    if args.precision != "fp32":
        from ..precision import apply_precision

        artifact = apply_precision(result, args)
    if args.engine:
        build_from_convert(artifact, args)
    return 0


def build_from_convert(artifact: str | Path, args: argparse.Namespace) -> BuildResult | None:
    """`convert --engine`: build `artifact`'s engine with convert's --precision when this
    machine can; otherwise stop at the ONNX and print the command for the device (None).

    convert keeps the ONNX either way: an engine is tied to the GPU and TensorRT that
    build it, so "no TensorRT / no GPU here" is the normal case on a workstation.
    """
    from edgevision.build import BuildOptions, build_engine
    from edgevision.build.cli import device_command
    from edgevision.build.engine import BuildUnavailable

    precision = getattr(args, "precision", None)
    try:
        result = build_engine(artifact, None, BuildOptions(precision=precision))
    except BuildUnavailable as exc:
        print(f"engine    convert stopped at the ONNX artifact: {exc}", file=sys.stderr)
        print("          copy it to the device and run there:", file=sys.stderr)
        print(f"          {device_command(artifact, precision)}", file=sys.stderr)
        return None
    if result.engine_path is not None:
        state = "built" if result.built else "up to date"
        print(f"engine    {result.engine_path}  ({state}; {result.layers} layers, {result.seconds:.1f} s)")
    return result
