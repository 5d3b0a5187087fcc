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
    p.add_argument("--serve", metavar="[HOST:]PORT",
                   help="live web view: streams, state, FPS, per-stage p50/p99, /api/stats, /api/detections, "
                        "/metrics (Prometheus). A port alone binds 127.0.0.1; any other host needs a token")
    p.add_argument("--serve-token", metavar="TOKEN", default=None,
                   help="require this token from every web view client (Authorization: Bearer TOKEN, or "
                        "?token=TOKEN in the browser); default $EDGEVISION_SERVE_TOKEN, which keeps it out of `ps`")
    p.add_argument("--conf", type=float, default=None,
                   help="confidence threshold (default: the artifact's; 0.1 with --track)")
    p.add_argument("--track", action="store_true",
                   help="track ids (ByteTrack-style): drawn as #id and written as \"tracker_id\" in --jsonl; "
                        "keeps only tracked detections (needs edgevision[track]: scipy)")
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
    from ..webpreview import WebPreviewSink, parse_address, serve_token

    if args.serve_token and not args.serve:
        raise EdgeVisionError("--serve-token protects the web view: add --serve [HOST:]PORT")
    if args.serve:
        serve_token(parse_address(args.serve)[0], args.serve_token)  # refuse an unprotected address before loading
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
    source = open_source(args.source)
    workers, options = plan_workers(source.live, artifact, backend, args.workers)
    if args.device:
        if backend != "openvino":
            source.close()
            raise EdgeVisionError(f"--device {args.device} chooses an OpenVINO device: add --backend openvino")
        options["device"] = args.device
    try:
        # ByteTrack feeds its second stage with low-score boxes, so tracking wants them (as Ultralytics' track does)
        conf = 0.1 if args.track and args.conf is None else args.conf
        model = load(artifact, backend=backend, conf=conf, iou=args.iou, classes=classes,
                     masks=bool(args.save or args.show or args.serve), **picked.options, **options)
    except BaseException:
        source.close()
        raise
    if args.serve:
        try:  # started last: a run that fails to start leaves no server behind
            view = WebPreviewSink(args.serve, token=args.serve_token)
        except BaseException:
            model.close()
            source.close()
            raise
        sinks.append(view)
        print(f"web view: {view.url}" + (" (every request needs the token: ?token=... in a browser, or "
                                         "Authorization: Bearer ...)" if view.token else ""), file=sys.stderr)
    progress = not args.quiet and sys.stderr.isatty()

    def report(event: SourceEvent) -> None:
        """lost / restored / frozen / black / failed on stderr as they happen (ENDED is the run's end)."""
        if event.kind != EventKind.ENDED:
            detail = f": {event.detail}" if event.detail else ""
            print(f"{chr(10) if progress else ''}source {event.source} {event.uri}: {event.kind.value}{detail}",
                  file=sys.stderr, flush=True)

    pipeline = Pipeline(model, source, sinks, max_frames=args.max_frames, workers=workers,
                        track=args.track, on_event=report)
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
