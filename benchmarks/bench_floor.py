"""Know the floor: for each backend and precision on this CPU, the network alone vs edgevision
end to end, and throughput with 1, 2 and `cores` workers.

For every artifact of a convert folder (FP32, INT8 for TensorRT, INT8 for CPUs) on every CPU
runtime configuration (ONNX Runtime; OpenVINO f32; OpenVINO bf16):
- infer_ms: one inference call at batch 1, one thread (the graph: network + decode + NMS);
- e2e_ms: edgevision's whole per-frame cost with one worker of one thread (video decode,
  pre-processing, the call, masks and result assembly), from Pipeline wall time;
- own_ms = e2e - infer: what edgevision's own work costs per frame, and its share;
- fps_w{N}: Pipeline throughput with N workers (threads split between them), boxes + masks.
Interleaved rounds (the machine is shared), medians.

    .venv/bin/python benchmarks/bench_floor.py [FOLDER] [--frames 60] [--rounds 2]
FOLDER: a convert folder with a precision report (default: runs/bench-cpu/edgevision, made by
bench_cpu.py). Results: benchmarks/results/bench_floor.json and .md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgevision  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.artifacts import CONFIGS, accepted_on  # noqa: E402
from edgevision.backends import onnx_backends, run_options  # noqa: E402
from edgevision.pipeline import Pipeline, plan_workers  # noqa: E402
from edgevision.sources import sample_frames  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def infer_ms(path: Path, backend: str, options: dict[str, Any], image: np.ndarray, runs: int = 10) -> float:
    with edgevision.load(path, backend=backend, masks=False, **options, **_one_thread(backend)) as model:
        model.infer(image)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model.infer(image)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _one_thread(backend: str) -> dict[str, Any]:
    return {**run_options(backend, 1, 1), **({"cache_dir": ""} if backend == "openvino" else {})}


def pipeline_fps(path: Path, backend: str, options: dict[str, Any], workers: int, frames: int) -> tuple[float, float]:
    """(frames per second, mean ms of edgevision's own pre + post-processing) over `frames` video frames."""
    _, plan = plan_workers(False, path, backend, workers)
    extra = plan if workers > 1 else _one_thread(backend)
    with edgevision.load(path, backend=backend, **options, **extra) as model:
        pipe = Pipeline(model, str(VTEST), max_frames=frames, workers=workers)
        t0 = time.perf_counter()
        stats = pipe.run()
        wall = time.perf_counter() - t0
    p = stats.percentiles()
    return stats.frames / wall, p["preprocess"]["mean"] + p["postprocess"]["mean"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default="runs/bench-cpu/edgevision")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--render", action="store_true", help="rewrite bench_floor.md from bench_floor.json")
    args = ap.parse_args()
    if args.render:
        render(json.loads((RESULTS / "bench_floor.json").read_text()))
        return
    folder = Path(args.folder)
    report = json.loads(next(folder.glob("*.precision.json")).read_text())
    usable = onnx_backends()
    configs = [(name, c) for name in report["artifacts"] for c in ("onnxruntime", "openvino", "openvino-bf16")
               if CONFIGS[c][0] in usable]
    cores = os.cpu_count() or 1
    worker_counts = sorted({1, 2, cores})
    frames, _ = sample_frames(VTEST, 1)
    first = edgevision.load(folder / report["artifacts"]["fp32"]["path"], backend="onnxruntime")
    image, _ = first.preprocess(frames)
    samples: dict[str, dict[str, list[float]]] = {f"{n}@{c}": {} for n, c in configs}
    for r in range(args.rounds):
        for name, config in (configs if r % 2 == 0 else configs[::-1]):
            path = folder / report["artifacts"][name]["path"]
            backend, options = CONFIGS[config]
            s = samples[f"{name}@{config}"]
            s.setdefault("infer_ms", []).append(infer_ms(path, backend, options, image))
            for w in worker_counts:
                fps, own = pipeline_fps(path, backend, options, w, args.frames)
                s.setdefault(f"fps_w{w}", []).append(fps)
                if w == 1:
                    s.setdefault("e2e_ms", []).append(1e3 / fps)
                    s.setdefault("pre_post_ms", []).append(own)
            print(f"round {r + 1} {name}@{config}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in s.items()), flush=True)
    rows = {}
    for key, s in samples.items():
        med = {k: float(np.median(v)) for k, v in s.items()}
        accepted = accepted_on(report["artifacts"][key.split("@")[0]], key.split("@")[1])
        rows[key] = {**{k: round(v, 2) for k, v in med.items()}, "own_ms": round(med["e2e_ms"] - med["infer_ms"], 2),
                     "own_share": round((med["e2e_ms"] - med["infer_ms"]) / med["e2e_ms"], 3), "accepted": accepted}
    result = {"folder": str(folder), "frames": args.frames, "rounds": args.rounds, "cores": cores, "rows": rows,
              "worker_counts": worker_counts, "fastest_run": report.get("fastest_run")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_floor.json").write_text(json.dumps(result, indent=2) + "\n")
    render(result)


def render(result: dict[str, Any]) -> None:
    """bench_floor.md from the JSON results (also: bench_floor.py --render, without re-measuring)."""
    counts = result.get("worker_counts") or sorted({1, 2, result["cores"]})
    fps_cols = [f"fps_w{w}" for w in counts]
    lines = ["# The floor: network alone vs edgevision end to end, per backend and precision", "",
             f"{result['cores']} cores; batch 1; {result['frames']} vtest frames per pipeline run, boxes + masks; "
             f"{result['rounds']} interleaved rounds, median. infer: one call of the graph, 1 thread. e2e: wall time per "
             "frame with one worker of one thread (video decode runs in its own thread, overlapped). pre+post: "
             "edgevision's own pre-processing and post-processing (masks, results) per frame, measured in the pipeline.",
             "", "| artifact @ runtime | gate | infer ms | e2e ms | pre+post ms (share of e2e) | " + " | ".join(
                 f"FPS {c[5:]} worker(s)" for c in fps_cols) + " |",
             "|---|---|---|---|---|" + "---|" * len(fps_cols)]
    for key, r in result["rows"].items():
        lines.append(f"| {key} | {'accepted' if r['accepted'] else 'rejected'} | {r['infer_ms']} | {r['e2e_ms']} | "
                     f"{r['pre_post_ms']} ({100 * r['pre_post_ms'] / r['e2e_ms']:.0f}%) | "
                     + " | ".join(str(r[c]) for c in fps_cols) + " |")
    (RESULTS / "bench_floor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
