"""End-to-end speed: `edgevision run` vs Ultralytics' predictor, same video, same model,
both on ONNX Runtime CPU, interleaved rounds in one process run (the machine is shared and
noisy, so only the side-by-side ratio means something).

Both sides decode the video themselves and produce boxes and instance masks for every
frame; neither writes output. Results: benchmarks/results/bench_run.json (+ .md).

    .venv/bin/python benchmarks/bench_run.py [--frames 200] [--rounds 3] [--baseline OLD.onnx]

--baseline: an earlier edgevision artifact run in the same interleaved rounds (before/after in
one run: the machine's load changes between runs). Each round records the 1-minute load
average at its start: other jobs share these cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edgevision  # noqa: E402
from benchmarks.ultralytics_ref import both_models, load_predictor  # noqa: E402
from benchmarks.bench_split import cpu_name  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.pipeline import Pipeline, plan_workers  # noqa: E402


def run_edgevision(onnx: Path, frames: int) -> dict[str, float]:
    """What `edgevision run ONNX --source VIDEO` does, without writing outputs."""
    workers, options = plan_workers(False, onnx, "onnxruntime")
    model = edgevision.load(onnx, **options)
    pipe = Pipeline(model, str(VTEST), max_frames=frames, workers=workers)
    t0 = time.perf_counter()
    stats = pipe.run()
    wall = time.perf_counter() - t0
    p = stats.percentiles()
    infer = p["infer"]["mean"]  # per inference call (single-threaded when workers > 1)
    own = p["preprocess"]["mean"] + p["postprocess"]["mean"]
    return {
        "fps": stats.frames / wall,
        "infer_ms": infer,
        "own_main_thread_ms": own,
        "own_overhead_vs_infer": own / infer,
    }


def run_ultralytics(onnx: Path, frames: int) -> dict[str, float]:
    model = load_predictor(onnx)
    t0 = time.perf_counter()
    n = 0
    speed = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    for r in model.predict(str(VTEST), stream=True, conf=0.25, iou=0.7, imgsz=640, verbose=False):
        for k in speed:
            speed[k] += r.speed[k]
        n += 1
        if n >= frames:
            break
    wall = time.perf_counter() - t0
    return {"fps": n / wall, "infer_ms": speed["inference"] / n,
            "own_main_thread_ms": (speed["preprocess"] + speed["postprocess"]) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="an earlier edgevision .onnx to run in the same rounds")
    ap.add_argument("--work", default="runs/bench")
    args = ap.parse_args()
    work = Path(args.work)
    ours, theirs = both_models(work)
    run_edgevision(ours, 10)  # warm both (page cache, ORT arenas)
    run_ultralytics(theirs, 10)
    rounds = []
    for i in range(args.rounds):
        order = [("edgevision", run_edgevision, ours), ("ultralytics", run_ultralytics, theirs)]
        if args.baseline:
            order.insert(1, ("baseline", run_edgevision, args.baseline))
        order = order[i % len(order):] + order[: i % len(order)]  # each side takes each place in turn
        load = os.getloadavg()[0]
        rounds.append({name: fn(path, args.frames) for name, fn, path in order})
        r = rounds[-1]
        r["load_average_1min"] = load  # type: ignore[assignment]
        base = (f", baseline {r['baseline']['fps']:.2f} FPS = {r['baseline']['fps'] / r['ultralytics']['fps']:.2f}x"
                if args.baseline else "")
        print(f"round {i + 1} (load {load:.2f}): edgevision {r['edgevision']['fps']:.2f} FPS, ultralytics "
              f"{r['ultralytics']['fps']:.2f} FPS, ratio {r['edgevision']['fps'] / r['ultralytics']['fps']:.2f}x{base}; "
              f"edgevision overhead {100 * r['edgevision']['own_overhead_vs_infer']:.1f}% of inference", flush=True)
    ratio = float(np.median([r["edgevision"]["fps"] / r["ultralytics"]["fps"] for r in rounds]))
    overhead = float(np.median([r["edgevision"]["own_overhead_vs_infer"] for r in rounds]))
    result = {
        "what": "edgevision Pipeline vs Ultralytics predictor, yolo11n-seg 640x640, ONNX Runtime CPU, boxes + masks",
        "video": str(VTEST), "frames_per_round": args.frames, "rounds": rounds,
        "median_fps_ratio": round(ratio, 3), "median_edgevision_overhead_vs_infer": round(overhead, 4),
        **({"baseline": str(args.baseline), "median_baseline_fps_ratio": round(float(np.median(
            [r["baseline"]["fps"] / r["ultralytics"]["fps"] for r in rounds])), 3)} if args.baseline else {}),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "cpu": cpu_name(),
                    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True).stdout.strip()},
    }
    out = Path(__file__).parent / "results" / "bench_run.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"median ratio {ratio:.2f}x (goal >= 1.5x); edgevision's own per-frame work {100 * overhead:.1f}% of the "
          f"ONNX Runtime call (goal < 10%)\nwritten to {out}")


if __name__ == "__main__":
    main()
