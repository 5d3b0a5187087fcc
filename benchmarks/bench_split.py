"""Where `edgevision run`'s per-frame time goes on this CPU: video decode, pre-processing,
the network, the in-graph decode + NMS, post-processing (masks, results) and drawing, for
each artifact given (by default the YOLO converted with pre_nms_topk 1024 and with 512).

The converted graph is cut in two with onnx.utils.Extractor: the network (images -> raw
head predictions + mask prototypes) and the post-processing (predictions -> the fixed
outputs). Every stage runs on one thread, one after the other on the same frame, stages and
artifacts interleaved frame by frame (the machine is shared: side by side is what counts).
ms: CPU time of the calling thread (ONNX Runtime with 1 intra-op thread runs on the caller),
median over frames and rounds, and wall-clock median beside it.

    .venv/bin/python benchmarks/bench_split.py [--frames 100] [--rounds 2] [--topk 1024 512]
    .venv/bin/python benchmarks/bench_split.py --onnx A.onnx B.onnx   (artifacts named by their folders)
Results: benchmarks/results/bench_split.json and .md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgevision  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.backends.onnxruntime import make_session  # noqa: E402
from edgevision.draw import annotate  # noqa: E402
from edgevision.manifest import IN_CONF, IN_IMAGES, IN_IOU, OUT_PROTOS  # noqa: E402
from edgevision.sources import open_source  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STAGES = ("decode", "preprocess", "graph", "network", "nms", "postprocess", "annotate")


def convert_k(work: Path, topk: int) -> Path:
    """The demo YOLO converted with pre_nms_topk = topk (everything else the defaults)."""
    from converters.export import ExportOptions, convert
    from demos.assets import demo_checkpoint

    return convert(demo_checkpoint(), work / f"edgevision-k{topk}", ExportOptions(pre_nms_topk=topk)).onnx_path


def split_graph(onnx_path: Path) -> tuple[bytes, bytes, str]:
    """(network graph, post-processing graph, name of the raw predictions tensor), serialized.

    The post-processing is the DetectPostprocess scope (/post/...); the one tensor it takes
    from the network (/model/...) is the head's raw predictions float32[B, 4+C+M, N]."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(onnx_path))
    from_net = {o for n in model.graph.node if n.name.startswith("/model/") for o in n.output}
    (preds,) = {i for n in model.graph.node if n.name.startswith("/post/") for i in n.input if i in from_net}
    if preds not in {v.name for v in model.graph.value_info}:  # shape inference may leave it out
        model.graph.value_info.append(onnx.helper.make_tensor_value_info(preds, onnx.TensorProto.FLOAT, None))
    ex = Extractor(model)
    outs = [o.name for o in model.graph.output]
    net = ex.extract_model([IN_IMAGES], [preds] + ([OUT_PROTOS] if OUT_PROTOS in outs else []))
    post = ex.extract_model([preds, IN_CONF, IN_IOU], [o for o in outs if o != OUT_PROTOS])
    return net.SerializeToString(), post.SerializeToString(), preds


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(fn(), thread CPU ms, wall ms)."""
    c0, w0 = time.thread_time(), time.perf_counter()
    out = fn()
    return out, (time.thread_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3


def read_frames(count: int) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """The first `count` vtest frames and the (cpu, wall) ms each took to read and decode."""
    src = open_source(str(VTEST))
    frames, times = [], []
    try:
        while len(frames) < count:
            frame, cpu, wall = timed(src.read)
            if frame is None:
                break
            frames.append(frame.image)
            times.append((cpu, wall))
    finally:
        src.close()
    return frames, times


class Artifact:
    """One converted model, loaded whole (as `edgevision run` does) and cut in two."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.model = edgevision.load(path, backend="onnxruntime", threads=1)
        net, post, self.preds_name = split_graph(path)
        self.net = make_session(net, threads=1)
        self.post = make_session(post, threads=1)
        self.k = int(self.model.manifest.extra.get("pre_nms_topk", 0))

    def frame(self, image: np.ndarray) -> dict[str, tuple[float, float]]:
        """Every stage on one frame: stage -> (cpu ms, wall ms)."""
        m = self.model
        (batch, geos), *t_pre = timed(lambda: m.preprocess([image]))
        outputs, *t_graph = timed(lambda: m.infer(batch))
        raw, *t_net = timed(lambda: self.net.run([self.preds_name], {IN_IMAGES: batch}))
        thresholds = {IN_CONF: np.array([m.manifest.conf_threshold], np.float32),
                      IN_IOU: np.array([m.manifest.iou_threshold], np.float32)}
        _, *t_nms = timed(lambda: self.post.run(None, {self.preds_name: raw[0], **thresholds}))
        results, *t_post = timed(lambda: m.postprocess(outputs, geos))
        _, *t_draw = timed(lambda: annotate(image, results[0]))
        return {"preprocess": tuple(t_pre), "graph": tuple(t_graph), "network": tuple(t_net), "nms": tuple(t_nms),
                "postprocess": tuple(t_post), "annotate": tuple(t_draw)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--topk", type=int, nargs="+", default=[1024, 512])
    ap.add_argument("--onnx", type=Path, nargs="*", default=[], help="converted artifacts to measure instead")
    ap.add_argument("--work", default="runs/bench-split")
    args = ap.parse_args()
    work = Path(args.work)
    arts = [Artifact(p) for p in args.onnx] or [Artifact(convert_k(work, k)) for k in args.topk]
    frames, decode = read_frames(args.frames)
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        a.path.parent.name: {s: list(decode) if s == "decode" else [] for s in STAGES} for a in arts}
    load0 = os.getloadavg()[0]
    for a in arts:
        a.frame(frames[0])  # warm: ORT arenas, OpenCV
    for r in range(args.rounds):
        for i, image in enumerate(frames):
            for a in arts if (i + r) % 2 == 0 else arts[::-1]:
                for stage, t in a.frame(image).items():
                    samples[a.path.parent.name][stage].append(t)
        print(f"round {r + 1} done", flush=True)
    load1 = os.getloadavg()[0]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, by_stage in samples.items():
        table[name] = {s: {"cpu_ms": round(float(np.median([c for c, _ in v])), 3),
                           "wall_ms": round(float(np.median([w for _, w in v])), 3)} for s, v in by_stage.items()}
    result = {
        "what": "per-frame stages of edgevision on vtest (yolo11n-seg 640, boxes + masks), 1 thread, ONNX Runtime",
        "frames": len(frames), "rounds": args.rounds, "load_average_1min": [load0, load1], "stages": table,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "cpu": cpu_name()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_split.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Where edgevision's per-frame time goes (one thread per stage)", "",
        f"{result['machine']['cpu']}, {os.cpu_count()} cores (shared with other jobs: 1-minute load average "
        f"{load0:.2f} at the start, {load1:.2f} at the end). First {len(frames)} vtest frames, {args.rounds} rounds, "
        "stages and artifacts interleaved frame by frame. ms: median CPU time of the calling thread (wall in "
        "brackets). graph = the whole converted graph as `edgevision run` calls it; network and nms = its two halves "
        "run separately (their sum is the graph, give or take the cut).", "",
        "| artifact | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
    for name, by_stage in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{v['cpu_ms']:.2f} ({v['wall_ms']:.2f})" for v in by_stage.values())
                     + " |")
    (RESULTS / "bench_split.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
