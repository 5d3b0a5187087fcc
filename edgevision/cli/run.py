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
    p.add_argument("--source", required=True, action="append",
                   help="video file, image, folder, glob, /dev/videoN, v4l2://N, rtsp://..., csi://N; "
                        "give it several times to run several sources through one model, batched")
    p.add_argument("--save", metavar="VIDEO",
                   help="write the annotated video (.mp4 / .avi); with several sources one video each: "
                        "out.mp4 -> out_0.mp4, out_1.mp4, ... (numbered in --source order)")
    p.add_argument("--jsonl", metavar="FILE",
                   help="write one JSON object per frame; with several sources each line also has "
                        '"source": {"index": i, "uri": ...} (i 0-based, in --source order)')
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
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames (of each source)")
    p.add_argument("--backend", default=None,
                   help="onnxruntime, openvino, tensorrt (default: the best usable; for a convert folder, the fastest "
                        "accepted in its precision report)")
    p.add_argument("--device", default=None,
                   help="OpenVINO device: CPU (default), GPU, NPU, AUTO (with --backend openvino)")
    p.add_argument("--workers", type=int, default=None,
                   help="frames inferred at once (default: one per CPU core for files on ONNX Runtime, 1 for live sources)")
    p.add_argument("--max-wait-ms", type=float, default=20.0,
                   help="several sources: how long a batch waits for more cameras' frames after its first (default 20)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="several sources: frames per inference (default: one per source, within the artifact's batch range)")
    p.add_argument("--fps-cap", type=float, default=None,
                   help="several sources: at most this many frames per second from each (live: skipped; files: paced)")
    p.add_argument("--stats-json", metavar="FILE",
                   help="write the run statistics as JSON (with several sources: per-source frames, FPS, dropped, "
                        "queue depth, reconnects, events)")
    p.add_argument("--quiet", action="store_true", help="no per-frame progress line")


def main(args: argparse.Namespace) -> int:
    from .. import load
    from ..artifacts import resolve
    from ..backends import onnx_backends
    from ..multi import MultiPipeline, numbered_path
    from ..pipeline import Pipeline, plan_workers
    from ..sinks import JsonlSink, Sink
    from ..sources import Source, open_source
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
    several = len(args.source) > 1
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    sinks: list[str | Sink] = []
    if args.save and not several:
        sinks.append(args.save)
    if args.jsonl:
        sinks.append(JsonlSink(args.jsonl, rle=True) if args.rle else args.jsonl)
    if args.show:
        sinks.append("display://0")
    progress = not args.quiet and sys.stderr.isatty()

    def report(event: SourceEvent) -> None:
        """lost / restored / frozen / black / failed on stderr as they happen (ENDED is the run's end)."""
        if event.kind != EventKind.ENDED:
            detail = f": {event.detail}" if event.detail else ""
            print(f"{chr(10) if progress else ''}source {event.source} {event.uri}: {event.kind.value}{detail}",
                  file=sys.stderr, flush=True)

    sources: list[Source] = []
    model = None
    try:
        for uri in args.source:
            sources.append(open_source(uri))
        live = any(src.live for src in sources)
        # several sources: one batched inference at a time, with every core
        workers, options = plan_workers(live, artifact, backend, 1 if several else args.workers)
        if args.device:
            if backend != "openvino":
                raise EdgeVisionError(f"--device {args.device} chooses an OpenVINO device: add --backend openvino")
            options["device"] = args.device
        # ByteTrack feeds its second stage with low-score boxes, so tracking wants them (as Ultralytics' track does)
        conf = 0.1 if args.track and args.conf is None else args.conf
        model = load(artifact, backend=backend, conf=conf, iou=args.iou, classes=classes,
                     masks=bool(args.save or args.show or args.serve), **picked.options, **options)
        if args.serve:  # started last: a run that fails to start leaves no server behind
            view = WebPreviewSink(args.serve, token=args.serve_token)
            sinks.append(view)
            print(f"web view: {view.url}" + (" (every request needs the token: ?token=... in a browser, or "
                                             "Authorization: Bearer ...)" if view.token else ""), file=sys.stderr)
        pipeline: Pipeline | MultiPipeline
        if several:
            # JSON lines of a single source stay as they were (no "source" field): Pipeline runs it
            saves = [[numbered_path(args.save, i)] for i in range(len(sources))] if args.save else None
            tracker_factory = None
            if args.track:
                from ..tracking import ByteTracker

                tracker_factory = ByteTracker
            pipeline = MultiPipeline(model, sources, sinks, source_sinks=saves, max_batch=args.max_batch,
                                     max_wait_ms=args.max_wait_ms, fps_cap=args.fps_cap, max_frames=args.max_frames,
                                     on_event=report, tracker_factory=tracker_factory)
        else:
            pipeline = Pipeline(model, sources[0], sinks, max_frames=args.max_frames, workers=workers,
                                track=args.track, on_event=report)
    except BaseException:
        if model is not None:
            model.close()
        for src in sources:
            src.close()
        raise
    interrupted = False
    try:
        for result in pipeline:
            if progress:
                found = ", ".join(result.detections.count_names()[:3]) or "nothing"
                tag = f"source {result.source} " if several else ""
                print(f"\r{tag}frame {result.frame.index}: {found[:40]:<40} "
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
    videos = [str(numbered_path(args.save, i)) for i in range(len(sources))] if args.save and several else [args.save]
    for label, path in [*(("video", v) for v in videos), ("jsonl", args.jsonl)]:
        if path:
            print(f"{label:<6}{path}")
    if interrupted:
        raise EdgeVisionError(f"interrupted after {stats.frames} frames; outputs written so far are kept")
    if isinstance(pipeline, MultiPipeline):
        if pipeline.errors and len(pipeline.errors) == len(sources):
            raise EdgeVisionError("every source stopped early: " + "; ".join(
                f"{sources[i].uri}: {e}" for i, e in sorted(pipeline.errors.items())))
        for i, exc in sorted(pipeline.errors.items()):  # the others ran on: a warning, not a failure
            print(f"warning: source {i} ({sources[i].uri}) stopped early: {exc}", file=sys.stderr)
    elif pipeline.error is not None:
        raise EdgeVisionError(f"{pipeline.error}; the run ended cleanly and outputs written so far are kept")
    return 0
