"""Does batching cameras pay? Four file sources through one model with MultiPipeline, batching on
(max_batch 4: one frame of each source per inference) vs off (max_batch 1), interleaved rounds
in one process on the same model instance (the machine is shared and noisy: only the
side-by-side ratio means something). The batch path is Model.predict_timed, the one TensorRT
runs too.

Sources: four clips of vtest.avi (768x576, different parts of the video) written once with
cv2.VideoWriter (MJPG); each delivers every frame (policy "all"), so both modes process exactly
the same frames. Reported per mode: throughput (frames/s, wall clock of the run), end-to-end
latency p50/p99 (frame read -> written), and compute per inference call p50/p99 (preprocess +
infer + postprocess). Two scenarios: flat out (unpaced files: throughput; latency there is
mostly queueing behind the other frames) and paced (each source capped at a rate the model
keeps up with, all four arriving together: latency as cameras would see it).
Results: benchmarks/results/bench_multi.json (+ .md).

    .venv/bin/python benchmarks/bench_multi.py [--artifact M.onnx] [--frames 24] [--rounds 3]

--artifact: a converted artifact with a dynamic batch axis (or a batch range up to 4); default:
the demo checkpoint converted afresh under --work.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edgevision  # noqa: E402
from benchmarks.bench_split import cpu_name  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.multi import MultiPipeline, batch_range  # noqa: E402

SOURCES = 4
STARTS = (0, 200, 400, 600)  # frame offsets in vtest.avi: four different "cameras"


def write_clips(work: Path, frames: int) -> list[Path]:
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, start in enumerate(STARTS[:SOURCES]):
        path = work / f"cam{i}.avi"
        cap = cv2.VideoCapture(str(VTEST))
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
        for _ in range(frames):
            ok, image = cap.read()
            if not ok:
                raise SystemExit(f"vtest.avi has fewer than {start + frames} frames")
            out.write(image)
        out.release()
        cap.release()
        paths.append(path)
    return paths


def run_once(model: edgevision.Model, clips: list[Path], max_batch: int, max_wait_ms: float,
             fps_cap: float | None = None) -> dict[str, float]:
    pipe = MultiPipeline(model, [str(c) for c in clips], max_batch=max_batch, max_wait_ms=max_wait_ms, fps_cap=fps_cap)
    per_call: list[float] = []
    last: tuple[float, float, float] | None = None
    t0 = time.perf_counter()
    for r in pipe:
        # every frame of a batch carries that batch's stage times: count each call once
        stages = (r.timings["preprocess"], r.timings["infer"], r.timings["postprocess"])
        if stages != last:
            per_call.append(sum(stages))
            last = stages
    wall = time.perf_counter() - t0
    stats = pipe.stats
    lat = stats.stage_ms["latency"]
    n_calls = sum(pipe.batch_sizes.values())
    return {
        "frames": stats.frames,
        "fps": stats.frames / wall,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "compute_per_call_p50_ms": float(np.percentile(per_call, 50)),
        "compute_per_call_p99_ms": float(np.percentile(per_call, 99)),
        "inference_calls": n_calls,
        "mean_batch": stats.frames / max(n_calls, 1),
        "load1": os.getloadavg()[0],
    }


KEYS = ("fps", "latency_p50_ms", "latency_p99_ms", "compute_per_call_p50_ms", "compute_per_call_p99_ms", "mean_batch")


def compare(label: str, model: edgevision.Model, clips: list[Path], modes: dict[str, int], rounds: int,
            max_wait_ms: float, fps_cap: float | None = None) -> dict[str, Any]:
    """Interleaved rounds of every mode (order alternating per round); medians and per-round ratios."""
    runs: list[dict[str, dict[str, float]]] = []
    for k in range(rounds):
        order = list(modes.items()) if k % 2 == 0 else list(reversed(modes.items()))
        rnd = {}
        for name, size in order:
            rnd[name] = run_once(model, clips, size, max_wait_ms, fps_cap)
            print(f"{label} round {k + 1} {name}: {rnd[name]['fps']:.2f} frames/s, latency p99 "
                  f"{rnd[name]['latency_p99_ms']:.0f} ms, compute/call p50 {rnd[name]['compute_per_call_p50_ms']:.0f} ms",
                  flush=True)
        runs.append(rnd)
    on, off = list(modes)
    return {
        "fps_cap_per_source": fps_cap, "rounds": runs,
        "median": {name: {key: float(np.median([r[name][key] for r in runs])) for key in KEYS} for name in modes},
        "ratios": {
            "throughput_on_over_off": [r[on]["fps"] / r[off]["fps"] for r in runs],
            "latency_p99_on_over_off": [r[on]["latency_p99_ms"] / r[off]["latency_p99_ms"] for r in runs],
        },
    }


def table(title: str, res: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "", "| mode | frames/s | latency p50 ms | latency p99 ms | compute/call p50 ms | mean batch |",
             "|---|---|---|---|---|---|"]
    for name, s in res["median"].items():
        lines.append(f"| {name} | {s['fps']:.2f} | {s['latency_p50_ms']:.0f} | {s['latency_p99_ms']:.0f} | "
                     f"{s['compute_per_call_p50_ms']:.0f} | {s['mean_batch']:.2f} |")
    r = res["ratios"]
    return lines + ["", "throughput on/off per round: " + ", ".join(f"{x:.2f}" for x in r["throughput_on_over_off"]),
                    "latency p99 on/off per round: " + ", ".join(f"{x:.2f}" for x in r["latency_p99_on_over_off"]), ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", type=Path, help="converted .onnx with a dynamic batch axis (default: convert the demo model)")
    ap.add_argument("--frames", type=int, default=24, help="frames per source")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paced-frames", type=int, default=5, help="frames per source in the paced comparison")
    ap.add_argument("--max-wait-ms", type=float, default=20.0)
    ap.add_argument("--work", default="runs/bench_multi")
    args = ap.parse_args()
    work = Path(args.work)
    artifact = args.artifact
    if artifact is None:
        from converters.export import ExportOptions, convert
        from demos.assets import demo_checkpoint

        artifact = convert(demo_checkpoint(), work / "model", ExportOptions()).onnx_path
    clips = write_clips(work / "clips", args.frames)
    model = edgevision.load(artifact, masks=False)
    lo, hi = batch_range(model)
    on = SOURCES if hi is None else min(SOURCES, hi)
    if on < 2:
        raise SystemExit(f"{artifact} takes batches of {lo}..{hi}: convert it with a dynamic batch to compare")
    modes = {f"batch {on}": on, "batch 1": 1}
    warm = write_clips(work / "warm", 2)
    for size in modes.values():  # warm both shapes (ORT arenas, page cache)
        run_once(model, warm, size, args.max_wait_ms)
    # 1. flat out: every file as fast as the model takes it (throughput; latency is then mostly
    #    the time a frame queues behind the others)
    flat = compare("flat out", model, clips, modes, args.rounds, args.max_wait_ms)
    # 2. paced like cameras, all four at once, at 60% of what batch 1 sustained flat out: latency
    #    when the model keeps up (the arrivals are aligned: the case batching is best at)
    cap = 0.6 * flat["median"]["batch 1"]["fps"] / SOURCES
    paced = compare("paced", model, write_clips(work / "paced", args.paced_frames), modes, args.rounds,
                    args.max_wait_ms, cap)
    model.close()
    result = {
        "artifact": str(artifact), "sources": SOURCES, "frames_per_source": args.frames,
        "paced_frames_per_source": args.paced_frames, "input_hw": list(model.manifest.input_hw),
        "batch_range": [lo, hi], "max_wait_ms": args.max_wait_ms, "cpu": cpu_name(), "cores": os.cpu_count(),
        "python": platform.python_version(), "flat_out": flat, "paced": paced,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_multi.json").write_text(json.dumps(result, indent=2))
    lines = [f"# bench_multi: {SOURCES} file sources, one model, batching on vs off", "",
             f"{cpu_name()}, {os.cpu_count()} cores (shared: 1-min load per run in the JSON); vtest.avi clips 768x576, "
             f"input {model.manifest.input_hw}, ONNX Runtime CPU, max_wait_ms {args.max_wait_ms}, "
             f"{args.rounds} interleaved rounds (medians)", ""]
    lines += table(f"Flat out: {args.frames} frames per source, unpaced", flat)
    lines += table(f"Paced: {args.paced_frames} frames per source at {cap:.3f} frames/s each, aligned", paced)
    (out / "bench_multi.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
