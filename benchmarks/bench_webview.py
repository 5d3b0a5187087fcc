"""What the web view costs the pipeline, before (d3d1fb8: JPEG-encode every frame in the writer
thread) and now (keep a reference; encode once per frame a client asks for, in the client's thread).

1. The writer thread's CPU per write() on real annotated vtest frames (768x576), with nobody
   watching and with one client on /stream: CPU time of the writing thread (time.thread_time),
   median (min) over interleaved rounds, and the whole process's CPU per frame (the HTTP threads'
   encoding included). Frames are written at ~25 FPS, as a camera would deliver them.
2. /api/stats: RunStats.to_dict() for a run of N frames (8 stages), the call the page makes every
   second: its percentiles run over every sample, so it grows with the run.

    .venv/bin/python benchmarks/bench_webview.py [--rounds 6] [--frames 50] [--baseline REV]
Results: benchmarks/results/bench_webview.json and .md
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.detections import Detections  # noqa: E402
from edgevision.draw import annotate  # noqa: E402
from edgevision.sources import Frame, sample_frames  # noqa: E402
from edgevision.stats import RunStats  # noqa: E402
from edgevision.webpreview import WebPreviewSink  # noqa: E402
from tests.assets import VTEST  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BASELINE_REV = "d3d1fb8"


def load_baseline(rev: str) -> Any:
    """edgevision/webpreview.py at `rev`, as a module inside the edgevision package."""
    code = subprocess.run(["git", "show", f"{rev}:edgevision/webpreview.py"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    module = types.ModuleType("edgevision._webpreview_baseline")
    module.__package__ = "edgevision"
    exec(compile(code, f"{rev}:edgevision/webpreview.py", "exec"), module.__dict__)
    return module


def watch(port: int, stop: threading.Event) -> None:
    """One browser-like client reading /stream to the end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    while not stop.is_set():
        try:
            if not resp.read1(65536):
                break
        except (TimeoutError, OSError):
            break
    conn.close()


def one_round(make_sink: Any, frames: list[tuple[Frame, Detections, np.ndarray]], watched: bool) -> tuple[float, float]:
    """(writer CPU ms per write, median; process CPU ms per frame) for one sink over the frames."""
    sink = make_sink()
    stop = threading.Event()
    client = threading.Thread(target=watch, args=(sink.port, stop), daemon=True) if watched else None
    if client:
        client.start()
        time.sleep(0.2)
    per_write = []
    p0 = time.process_time()
    for frame, dets, drawn in frames:
        t0 = time.thread_time()
        sink.write(frame, dets, drawn)
        per_write.append((time.thread_time() - t0) * 1e3)
        time.sleep(0.04)  # ~25 FPS: the client keeps up, as with a camera
    process_ms = (time.process_time() - p0) * 1e3 / len(frames)
    stop.set()
    sink.close()
    if client:
        client.join(timeout=5)
    return statistics.median(per_write), process_ms


def stats_cost(n: int, repeats: int = 3) -> float:
    """ms per RunStats.to_dict() after n frames (8 stages)."""
    stats = RunStats()
    rng = np.random.default_rng(0)
    for stage in ("decode", "wait", "preprocess", "infer", "postprocess", "annotate", "write", "latency"):
        stats.stage_ms[stage] = list(rng.random(n) * 10)
    stats.frames = n
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        stats.to_dict()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--frames", type=int, default=50, help="frames written per round")
    ap.add_argument("--baseline", default=BASELINE_REV)
    args = ap.parse_args()

    images, _ = sample_frames(VTEST, 8)
    names = ("person", "bicycle", "car")
    frames = []
    for i in range(args.frames):
        image = images[i % len(images)]
        dets = Detections(np.array([[40 + 50 * k, 100, 90 + 50 * k, 260] for k in range(5)], np.float32),
                          np.full(5, 0.8, np.float32), np.arange(5) % 3, class_names=names)
        frames.append((Frame(image, i), dets, annotate(image, dets)))
    before = load_baseline(args.baseline)
    sinks = {f"before ({args.baseline}): encode every frame": lambda: before.WebPreviewSink("http://127.0.0.1:0"),
             "now: encode when asked": lambda: WebPreviewSink("127.0.0.1:0")}
    load_start = os.getloadavg()[0]
    runs: dict[str, dict[str, list[float]]] = {f"{k} | {w}": {"writer": [], "process": []}
                                               for k in sinks for w in ("nobody watching", "one /stream client")}
    for _ in range(args.rounds):  # interleaved: every configuration once per round
        for label, make in sinks.items():
            for watched, w in ((False, "nobody watching"), (True, "one /stream client")):
                writer, process = one_round(make, frames, watched)
                runs[f"{label} | {w}"]["writer"].append(writer)
                runs[f"{label} | {w}"]["process"].append(process)
    load_end = os.getloadavg()[0]
    stats = {n: stats_cost(n) for n in (1_000, 30_000, 108_000)}

    result = {"rounds": args.rounds, "frames": args.frames, "baseline": args.baseline,
              "load_start": load_start, "load_end": load_end,
              "write_ms": {k: {"writer_median": statistics.median(v["writer"]), "writer_min": min(v["writer"]),
                               "process_median": statistics.median(v["process"])} for k, v in runs.items()},
              "to_dict_ms": stats}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_webview.json").write_text(json.dumps(result, indent=2))
    lines = ["# Web view: what it costs the pipeline", "",
             f"Real vtest frames (768x576) with 5 boxes drawn, {args.frames} writes per round at ~25 FPS, "
             f"{args.rounds} interleaved rounds, 2 cores, 1-minute load average {load_start:.1f} at the start and "
             f"{load_end:.1f} at the end (a shared machine). writer: CPU ms of the pipeline's writer thread per "
             "write(), median over rounds of each round's median (min); process: CPU ms of the whole process "
             "per frame (the HTTP threads' JPEG encoding included).", "",
             "| sink | clients | writer ms: median (min) | process ms per frame |", "|---|---|---|---|"]
    for key, v in result["write_ms"].items():
        sink, clients = key.split(" | ")
        lines.append(f"| {sink} | {clients} | {v['writer_median']:.2f} ({v['writer_min']:.2f}) | "
                     f"{v['process_median']:.2f} |")
    lines += ["", "RunStats.to_dict() (what /api/stats and /metrics serve; the view computes it at most twice a "
              "second and at most a tenth of the time), best of 3:", "", "| frames in the run (8 stages) | ms |", "|---|---|"]
    lines += [f"| {n:,} | {ms:.1f} |" for n, ms in stats.items()]
    (RESULTS / "bench_webview.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
