"""`edgevision run ARTIFACT --source SRC`: detections on a video, camera, stream or images."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EdgeVisionError
from ..health import EventKind, SourceEvent

HELP = "run an artifact on a video, camera, stream or images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="converted .onnx (or engine) file, or a convert output folder")
    p.add_argument("--source", required=True,
                   help="video file, image, folder, glob, /dev/videoN, v4l2://N, rtsp://..., csi://N")
    p.add_argument("--save", metavar="VIDEO", help="write the annotated video (.mp4 / .avi)")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON object per frame")
    p.add_argument("--rle", action="store_true",
                   help="semantic segmenters: also write each frame's class map run-length encoded in --jsonl")
    p.add_argument("--show", action="store_true", help="show a window (q / Esc stops)")
    p.add_argument("--serve", metavar="HOST:PORT", help="live web preview, e.g. 127.0.0.1:8080")
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (default: the artifact's)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the artifact's)")
    p.add_argument("--classes", default=None, help="keep only these classes: ids or names, comma separated")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--backend", default=None,
                   help="onnxruntime, openvino, tensorrt (default: the best usable; for a convert folder, the fastest "
                        "accepted in its precision report)")
    p.add_argument("--device", default=None,
                   help="OpenVINO device: CPU (default), GPU, NPU, AUTO (with --backend openvino)")
    p.add_argument("--workers", type=int, default=None,
                   help="frames inferred at once (default: one per CPU core for files on ONNX Runtime, 1 for live sources)")
    p.add_argument("--stats-json", metavar="FILE", help="write the run statistics as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-frame progress line")


def main(args: argparse.Namespace) -> int:
    from .. import load
    from ..artifacts import resolve
    from ..backends import onnx_backends
    from ..pipeline import Pipeline, plan_workers
    from ..sinks import JsonlSink, Sink
    from ..sources import open_source

    # a convert output folder -> its accepted artifact and runtime configuration that run fastest here
    picked = resolve(Path(args.artifact), [args.backend] if args.backend else onnx_backends())
    artifact, backend = picked.path, args.backend or picked.backend
    if picked.config:
        print(f"running {artifact.name} on {picked.config}: the fastest accepted in its precision report",
              file=sys.stderr)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    sinks: list[str | Sink] = []
    if args.save:
        sinks.append(args.save)
    if args.jsonl:
        sinks.append(JsonlSink(args.jsonl, rle=True) if args.rle else args.jsonl)
    if args.show:
        sinks.append("display://0")
    if args.serve:
        sinks.append(f"http://{args.serve}")
        print(f"live preview: http://{args.serve}/", file=sys.stderr)
    source = open_source(args.source)
    workers, options = plan_workers(source.live, artifact, backend, args.workers)
    if args.device:
        if backend != "openvino":
            source.close()
            raise EdgeVisionError(f"--device {args.device} chooses an OpenVINO device: add --backend openvino")
        options["device"] = args.device
    try:
        model = load(artifact, backend=backend, conf=args.conf, iou=args.iou, classes=classes,
                     masks=bool(args.save or args.show or args.serve), **picked.options, **options)
    except BaseException:
        source.close()
        raise
    progress = not args.quiet and sys.stderr.isatty()

    def report(event: SourceEvent) -> None:
        """lost / restored / frozen / black / failed on stderr as they happen (ENDED is the run's end)."""
        if event.kind != EventKind.ENDED:
            detail = f": {event.detail}" if event.detail else ""
            print(f"{chr(10) if progress else ''}source {event.source} {event.uri}: {event.kind.value}{detail}",
                  file=sys.stderr, flush=True)

    pipeline = Pipeline(model, source, sinks, max_frames=args.max_frames, workers=workers, on_event=report)
    interrupted = False
    try:
        for result in pipeline:
            if progress:
                found = ", ".join(result.detections.count_names()[:3]) or "nothing"
                print(f"\rframe {result.frame.index}: {found[:40]:<40} "
                      f"{result.timings['infer']:.1f} ms inference", end="", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Release the runtime here, in order, not at interpreter exit (where OpenVINO's and
        # ONNX Runtime's thread pools may already be going down).
        model.close()
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    stats = pipeline.stats
    print(stats.summary())
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(stats.to_dict(), indent=2))
    for label, path in (("video", args.save), ("jsonl", args.jsonl)):
        if path:
            print(f"{label:<6}{path}")
    if interrupted:
        raise EdgeVisionError(f"interrupted after {stats.frames} frames; outputs written so far are kept")
    if pipeline.error is not None:
        raise EdgeVisionError(f"{pipeline.error}; the run ended cleanly and outputs written so far are kept")
    return 0
