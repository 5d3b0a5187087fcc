"""The CPU path against every peer a user would pick, whole process, all of vtest.avi.

Side by side, interleaved rounds in one run (the machine is shared: only ratios mean something):
- edgevision: `edgevision convert --precision int8 --calib vtest.avi` folder (and the same with
  `--int8-engine nncf`), each run as
  `edgevision run FOLDER` runs it (the fastest accepted artifact and runtime configuration
  from its precision report; one single-threaded inference per core), and FP32 on ONNX Runtime;
- Ultralytics' predictor on its ONNX export, on its OpenVINO export (FP32 IR, which OpenVINO
  runs in bf16 by default on CPUs that have it: AVX512-BF16 or AMX) and on its OpenVINO INT8 export (NNCF post-training
  quantization calibrated on the same 256 vtest frames edgevision calibrates on; needs
  `pip install nncf`, which Ultralytics' exporter uses).

Every run is a fresh process that decodes the whole video, infers boxes and instance masks for
every frame and writes its detections; wall time covers the whole process (start-up, model
load and compilation included). Agreement is against FP32 (edgevision FP32 on ONNX Runtime,
which equals Ultralytics' own ONNX path at F1 1.0: benchmarks/agreement_ultralytics.py), at
conf 0.25 / IoU 0.7 on all 795 frames (calibration frames included: this measures speed, the
held-out accuracy is in the precision report).

    .venv/bin/python benchmarks/bench_cpu.py [--rounds 2] [--frames 795]
Results: benchmarks/results/bench_cpu.json and .md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from demos.assets import VTEST, demo_checkpoint  # noqa: E402
from edgevision.detections import Detections  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REFERENCE = "edgevision fp32 ORT"  # agreement is measured against its detections


# -- preparation ------------------------------------------------------------------------
def prepare(work: Path) -> dict[str, dict[str, Any]]:
    """Every model, converted afresh: name -> how its child process runs it."""
    from benchmarks.ultralytics_ref import export_ultralytics_onnx, export_ultralytics_openvino, write_calib_images
    from converters.precision.calibration import split_frames

    ckpt = demo_checkpoint()
    ev = work / "edgevision"
    if ev.exists():
        shutil.rmtree(ev)
    subprocess.run([sys.executable, "-m", "edgevision", "convert", str(ckpt), "-o", str(ev), "--precision", "int8",
                    "--calib", str(VTEST)], check=True)
    ev_nncf = work / "edgevision-nncf"
    if ev_nncf.exists():
        shutil.rmtree(ev_nncf)
    subprocess.run([sys.executable, "-m", "edgevision", "convert", str(ckpt), "-o", str(ev_nncf), "--precision", "int8",
                    "--int8-engine", "nncf", "--calib", str(VTEST)], check=True)
    split = split_frames(str(VTEST), 256, None, 64)  # the very frames edgevision calibrated on
    calib_dir = write_calib_images(split.calib, work / "calib" / "images")
    ul = work / "ultralytics"
    return {
        "edgevision best": {"kind": "edgevision", "path": str(ev)},
        "edgevision best (nncf engine)": {"kind": "edgevision", "path": str(ev_nncf)},
        REFERENCE: {"kind": "edgevision", "path": str(ev / "yolo11n-seg.onnx"), "backend": "onnxruntime"},
        "ultralytics ONNX": {"kind": "ultralytics", "path": str(export_ultralytics_onnx(ckpt, ul / "onnx"))},
        "ultralytics OpenVINO": {"kind": "ultralytics", "path": str(export_ultralytics_openvino(ckpt, ul / "ov"))},
        "ultralytics OpenVINO INT8": {"kind": "ultralytics",
                                      "path": str(export_ultralytics_openvino(ckpt, ul / "ov-int8", calib_dir))},
    }


# -- one whole process per run ------------------------------------------------------------
def child(spec: dict[str, Any], frames: int, out: Path) -> None:
    """Run one configuration over the video and write one JSON line of detections per frame."""
    t0 = time.perf_counter()
    rows = []
    if spec["kind"] == "edgevision":
        import edgevision
        from edgevision.artifacts import resolve
        from edgevision.backends import onnx_backends
        from edgevision.pipeline import Pipeline, plan_workers

        picked = resolve(spec["path"], [spec["backend"]] if spec.get("backend") else onnx_backends())
        backend = spec.get("backend") or picked.backend
        workers, options = plan_workers(False, picked.path, backend)
        model = edgevision.load(picked.path, backend=backend, **picked.options, **options)  # masks on
        for r in Pipeline(model, str(VTEST), max_frames=frames, workers=workers):
            rows.append(_row(r.detections))
        what = f"{picked.path.name} on {picked.config or backend}"
    else:
        from ultralytics import YOLO

        model = YOLO(spec["path"], task="segment")
        for r in model.predict(str(VTEST), stream=True, conf=0.25, iou=0.7, imgsz=640, verbose=False):
            b = r.boxes
            rows.append(_row(Detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int32))))
            if len(rows) >= frames:
                break
        what = Path(spec["path"]).name
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(json.dumps({"frames": len(rows), "loop_s": time.perf_counter() - t0, "what": what}))


def _jsonl(work: Path, name: str) -> Path:
    """Where a configuration's detections (one JSON line per frame) are written."""
    return work / f"{name.replace(' ', '_')}.jsonl"


def _row(d: Detections) -> dict[str, Any]:
    return {"xyxy": np.round(d.xyxy, 2).tolist(), "confidence": np.round(d.confidence, 4).tolist(),
            "class_id": d.class_id.tolist()}


def _read(path: Path) -> list[Detections]:
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out.append(Detections(np.asarray(r["xyxy"], np.float32).reshape(-1, 4), np.asarray(r["confidence"], np.float32),
                              np.asarray(r["class_id"], np.int32)))
    return out


def timed_run(name: str, spec: dict[str, Any], frames: int, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec), "--frames", str(frames), "--out", str(out)]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
    info = json.loads(run.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "fps_whole_process": round(info["frames"] / wall, 2),
            "fps_loop": round(info["frames"] / info["loop_s"], 2), "frames": info["frames"], "what": info["what"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--frames", type=int, default=795)
    ap.add_argument("--work", default="runs/bench-cpu")
    ap.add_argument("--child")
    ap.add_argument("--out")
    ap.add_argument("--skip-prepare", action="store_true", help="reuse the models already in --work")
    ap.add_argument("--only", default="", help="comma-separated configurations to run (default: all); the FP32 "
                    "reference's detections are then read from --work, so run the full benchmark first")
    ap.add_argument("--tag", default="", help="write results/bench_cpu_TAG.{json,md} instead of bench_cpu.*")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child), args.frames, Path(args.out))
        return
    from edgevision.metrics import agreement, pooled_ap

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    specs_file = work / "specs.json"
    if args.skip_prepare and specs_file.is_file():
        specs = json.loads(specs_file.read_text())
    else:
        specs = prepare(work)
        specs_file.write_text(json.dumps(specs, indent=2))
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(specs))
    if unknown:
        raise SystemExit(f"--only: no configuration {unknown}; there are {list(specs)}")
    names = [n for n in specs if not only or n in only]
    ref_file = _jsonl(work, REFERENCE)  # checked before the rounds: --only may leave it out
    if REFERENCE not in names and not ref_file.is_file():
        raise SystemExit(f"{ref_file} is missing: agreement is measured against it; run without --only first")
    rounds: list[dict[str, Any]] = []
    for i in range(args.rounds):
        order = names if i % 2 == 0 else names[::-1]
        rounds.append({n: timed_run(n, specs[n], args.frames, _jsonl(work, n)) for n in order})
        print(f"round {i + 1}: " + ", ".join(f"{n} {r['fps_whole_process']} FPS" for n, r in rounds[-1].items()), flush=True)
    ref = _read(ref_file)
    summary = {}
    for n in names:
        cand = _read(_jsonl(work, n))
        a = agreement(cand, ref)
        fps = float(np.median([r[n]["fps_whole_process"] for r in rounds]))
        summary[n] = {"median_fps_whole_process": round(fps, 2), "what": rounds[-1][n]["what"],
                      "f1_vs_fp32": round(a.f1, 4), "ap50_95_vs_fp32": round(a.ap50_95, 4),
                      "pooled_ap50_95_vs_fp32": round(pooled_ap(cand, ref)[1], 4),
                      "detections": a.candidate_detections, "fp32_detections": a.reference_detections}
    peers = [n for n in names if n.startswith("ultralytics")]
    fastest_peer = max(peers, key=lambda n: summary[n]["median_fps_whole_process"])
    ours = [n for n in names if n.startswith("edgevision")]  # every edgevision row gets its ratio
    ratio = {n: round(float(np.median([r[n]["fps_whole_process"] / r[fastest_peer]["fps_whole_process"]
                                       for r in rounds])), 3) for n in ours}
    result = {
        "what": "whole process over vtest.avi (yolo11n-seg 640x640, boxes + instance masks, conf 0.25, IoU 0.7)",
        "frames": args.frames, "rounds": rounds, "summary": summary, "fastest_peer": fastest_peer,
        "edgevision_best_vs_fastest_peer": ratio,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True, cwd=ROOT).stdout.strip()},
    }
    RESULTS.mkdir(exist_ok=True)
    stem = f"bench_cpu_{args.tag}" if args.tag else "bench_cpu"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# CPU path vs peers (whole process, all of vtest.avi)", "",
             f"{result['what']}; {args.rounds} interleaved rounds, median; agreement vs FP32 on all frames.", "",
             "| configuration | runs | FPS (whole process) | F1 vs FP32 | AP50-95 vs FP32 (class mean) | "
             "AP50-95 vs FP32 (pooled) | detections |",
             "|---|---|---|---|---|---|---|"]
    for n, s in summary.items():
        lines.append(f"| {n} | {s['what']} | {s['median_fps_whole_process']} | {s['f1_vs_fp32']:.4f} | "
                     f"{s['ap50_95_vs_fp32']:.4f} | {s['pooled_ap50_95_vs_fp32']:.4f} | "
                     f"{s['detections']} / {s['fp32_detections']} |")
    lines += [""] + [f"{n} vs the fastest peer ({fastest_peer}): **{x}x** (median of per-round ratios)"
                     for n, x in ratio.items()]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    # The precision report of the folder edgevision ran: every (artifact, runtime) verdict and speed.
    for folder, name, config in (("edgevision", "precision_report_cpu", "edgevision best"),
                                 ("edgevision-nncf", "precision_report_cpu_nncf", "edgevision best (nncf engine)")):
        if config not in names:
            continue
        for suffix in ("json", "md"):
            shutil.copy(work / folder / f"yolo11n-seg.precision.{suffix}", RESULTS / f"{name}{'_' + args.tag if args.tag else ''}.{suffix}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
