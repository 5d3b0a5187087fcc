"""INT8 against the best peer: Ultralytics' OpenVINO INT8 export beside edgevision's INT8 files, one run.

Everything is calibrated on the same vtest.avi frames (split_frames: evenly across the first 80%
of the clip) and judged on the scenes of int8_scenes.py, which calibration never saw: vtest's
held-out last 20%, Megamind.avi, the stills. Configurations:
- ultralytics OV INT8: Ultralytics' OpenVINO INT8 export (NNCF post-training quantization, its
  MIXED preset, the head's arithmetic float) on the calibration frames, run by Ultralytics' predictor;
- ultralytics OV FP32: its OpenVINO FP32 export (OpenVINO's default precision on this CPU);
- edgevision int8 / int8-cpu: the TensorRT Q/DQ file and the CPU twin of `edgevision convert
  --precision int8` (edgevision's own quantizer), on ONNX Runtime, the twin also on OpenVINO;
- edgevision conv-only int8-cpu: the twin with Q/DQ on Conv alone (Int8Options.cpu_ops);
- edgevision nncf int8 / nncf int8-cpu: the same files written by `--int8-engine nncf`
  (NNCF's ONNX backend on our FP32 graph: PERFORMANCE preset for the TensorRT file, MIXED for the twin);
- edgevision nncf int8-ov: the OpenVINO IR `--int8-engine nncf` also writes (NNCF's OpenVINO backend,
  converters/precision/openvino_int8.py), on OpenVINO;
- edgevision fp32: the reference.
Agreement with FP32 (edgevision's FP32 graph on ONNX Runtime, which equals Ultralytics' own ONNX
path at F1 1.0): F1 at IoU 0.5 (conf 0.25) and AP50-95 pooled over all detections
(edgevision.metrics.pooled_ap) of candidates scored down to conf 0.001, every configuration
through the same code. Speed: end-to-end milliseconds per frame (pre-processing, inference,
decode and instance masks; conf 0.25), one frame at a time with every core (each runtime's own
threading), the configurations interleaved frame by frame; median.

    .venv/bin/python benchmarks/int8_peers.py [--calib-frames 256] [--val-frames 64] [--imgsz 640]
        [--engines own,nncf,conv-only] [--tag NAME]
Results: benchmarks/results/int8_peers.json and .md
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from benchmarks.int8_scenes import RESULTS, build, fp32_model, scenes  # noqa: E402
from demos.assets import demo_checkpoint  # noqa: E402
from edgevision.detections import Detections  # noqa: E402

AP_CONF, CONF, IOU = 0.001, 0.25, 0.7
ENGINES = ("own", "nncf", "conv-only")
Predict = Callable[[np.ndarray, float], Detections]  # (frame, conf) -> detections in frame pixels


def stamp(path: Path, variant: str, weight_bits: int) -> None:
    """Give a file build_int8 wrote the precision manifest `edgevision convert` gives it (the OpenVINO
    backend reads weight_bits to decide whether its integer kernels are exact on this CPU)."""
    from converters.onnx_io import read_manifest, write_manifest

    m = read_manifest(path)
    meta = {"variant": variant, "accepted": True, "weight_bits": weight_bits,
            "targets": ["onnxruntime"] if variant == "int8-cpu" else ["tensorrt", "onnxruntime"]}
    write_manifest(path, m.replace(precision="int8", extra={**m.extra, "precision": meta}))


def edgevision_predictor(path: Path, backend: str) -> tuple[Predict, Any]:
    import edgevision

    models = {conf: edgevision.load(path, backend=backend, conf=conf, iou=IOU, cache_dir="") if backend == "openvino"
              else edgevision.load(path, backend=backend, conf=conf, iou=IOU) for conf in (AP_CONF, CONF)}

    def predict(frame: np.ndarray, conf: float) -> Detections:
        d: Detections = models[conf].predict([frame])[0]
        return d
    return predict, models


def ultralytics_predictor(folder: Path, imgsz: int) -> tuple[Predict, Any]:
    from ultralytics import YOLO

    model = YOLO(str(folder), task="segment")

    def predict(frame: np.ndarray, conf: float) -> Detections:
        r = model.predict(frame, conf=conf, iou=IOU, imgsz=imgsz, max_det=300, verbose=False)[0]
        b = r.boxes
        return Detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int32))
    return predict, model


def prepare(work: Path, imgsz: int, calib: list[np.ndarray], keep_float: str,
            engines_wanted: tuple[str, ...] = ENGINES) -> dict[str, Predict]:
    """Build every configuration (afresh) and load it: name -> predictor."""
    from benchmarks.ultralytics_ref import export_ultralytics_openvino, write_calib_images
    from converters.onnx_io import read_manifest
    from converters.precision.int8 import Int8Options
    from converters.precision.artifact_kind import OPENVINO_IR
    from converters.precision.openvino_int8 import quantize_openvino

    fp32 = fp32_model(work, imgsz)
    files: dict[str, tuple[Path, int]] = {}
    seconds: dict[str, float] = {}
    # The CPU twin that quantizes Conv alone (99.999th percentile) beside the default one.
    engines = {"": Int8Options(keep_float=keep_float), "nncf ": Int8Options(keep_float=keep_float, engine="nncf"),
               "conv-only ": Int8Options(keep_float=keep_float, cpu_ops=("Conv",), cpu_percentile=99.999)}
    for prefix, opts in engines.items():
        if (prefix.strip() or "own") not in engines_wanted:
            continue
        t0 = time.perf_counter()
        folder = work / (prefix.strip() or "edgevision")
        folder.mkdir(parents=True, exist_ok=True)
        built, b = build(fp32, calib, folder, opts)
        for variant, path in built.items():
            if prefix == "conv-only " and variant == "int8":
                continue  # the TensorRT graph is the same as edgevision's
            bits = 8 if variant == "int8" else b.cpu_weight_bits
            stamp(path, variant, bits)
            files[f"{prefix}{variant}"] = (path, bits)
        if opts.engine == "nncf":  # the OpenVINO IR `convert --int8-engine nncf` writes beside them
            xml = folder / "int8-ov.xml"
            manifest = read_manifest(fp32)
            quantize_openvino(fp32, manifest, calib, xml, b.regions.float_nodes | set(b.cpu_kept_float),
                              log=lambda m: print(f"[int8] {m}"))
            meta = {"variant": "int8-ov", "accepted": True, "weight_bits": 8, "targets": ["openvino"]}
            OPENVINO_IR.stamp(xml, manifest.replace(precision="int8", extra={**manifest.extra, "precision": meta}))
            files["nncf int8-ov"] = (xml, 8)
        seconds[f"edgevision {prefix or 'own '}engine"] = round(time.perf_counter() - t0, 1)
    ckpt = demo_checkpoint()
    images = write_calib_images(calib, work / "calib" / "images")
    t0 = time.perf_counter()
    ov_int8 = export_ultralytics_openvino(ckpt, work / "ul-ov-int8", images, imgsz=imgsz)
    seconds["ultralytics OV INT8 export"] = round(time.perf_counter() - t0, 1)
    ov_fp32 = export_ultralytics_openvino(ckpt, work / "ul-ov", imgsz=imgsz)
    print(f"[peers] build seconds: {seconds}", flush=True)
    PREPARED["build_seconds"] = seconds
    runs: dict[str, Predict] = {}
    runs["edgevision fp32 (ORT)"] = edgevision_predictor(fp32, "onnxruntime")[0]
    for name, (path, _) in files.items():
        if path.suffix == ".xml":  # an OpenVINO IR runs on OpenVINO alone
            runs[f"edgevision {name} (OpenVINO)"] = edgevision_predictor(path, "openvino")[0]
            continue
        runs[f"edgevision {name} (ORT)"] = edgevision_predictor(path, "onnxruntime")[0]
        if name.endswith("int8-cpu"):
            runs[f"edgevision {name} (OpenVINO)"] = edgevision_predictor(path, "openvino")[0]
    runs["ultralytics OV FP32"] = ultralytics_predictor(ov_fp32, imgsz)[0]
    runs["ultralytics OV INT8 (NNCF)"] = ultralytics_predictor(ov_int8, imgsz)[0]
    return runs


PREPARED: dict[str, Any] = {}


def agreement(runs: dict[str, Predict], frames: dict[str, list[np.ndarray]]) -> dict[str, dict[str, dict[str, Any]]]:
    """scene -> configuration -> F1 (conf 0.25) and pooled AP50-95 (candidates to conf 0.001) vs FP32."""
    from edgevision.metrics import agreement as agree
    from edgevision.metrics import pooled_ap

    ref_name = "edgevision fp32 (ORT)"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for scene, fr in frames.items():
        ref = [runs[ref_name](f, CONF) for f in fr]
        out[scene] = {}
        for name, predict in runs.items():
            cand = [predict(f, AP_CONF) for f in fr]
            a = agree([c[c.confidence >= CONF] for c in cand], ref)
            ap = pooled_ap(cand, ref)[1]
            out[scene][name] = {"f1": round(a.f1, 4), "ap50_95_pooled": round(ap, 4),
                                "detections": a.candidate_detections, "fp32_detections": a.reference_detections}
            print(f"[peers] {scene:18s} {name:34s} F1 {a.f1:.4f} pooled AP50-95 {ap:.4f} "
                  f"({a.candidate_detections} vs {a.reference_detections})", flush=True)
    return out


def speed(runs: dict[str, Predict], frames: list[np.ndarray], rounds: int) -> dict[str, dict[str, float]]:
    """Median end-to-end ms per frame at conf 0.25, the configurations interleaved frame by frame
    (order reversed every other round: the shared machine's load falls on all alike)."""
    names = list(runs)
    for name in names:  # warm-up: first-call allocations, OpenVINO's compilation
        runs[name](frames[0], CONF)
    ms: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for f in frames:
            for name in (names if r % 2 == 0 else names[::-1]):
                t0 = time.perf_counter()
                runs[name](f, CONF)
                ms[name].append((time.perf_counter() - t0) * 1e3)
    base = float(np.median(ms["edgevision fp32 (ORT)"]))
    return {n: {"ms_per_frame": round(float(np.median(v)), 2), "p90_ms": round(float(np.percentile(v, 90)), 2),
                "speedup_vs_fp32_ort": round(base / float(np.median(v)), 3), "frames": len(v)} for n, v in ms.items()}


def to_markdown(data: dict[str, Any]) -> str:
    scenes_ = list(data["agreement"])
    head = " | ".join(f"{s} F1 / AP" for s in scenes_)
    lines = [f"# INT8 vs the best peer ({data['imgsz']}x{data['imgsz']}, calibrated on {data['calib_frames']} "
             "vtest.avi frames)", "",
             "yolo11n-seg; agreement with FP32 (edgevision FP32 on ONNX Runtime) on scenes calibration never saw: "
             "F1 at IoU 0.5 (conf 0.25) / AP50-95 pooled over all detections (candidates to conf 0.001). Speed: "
             "end-to-end ms per frame (pre-processing, inference, decode, instance masks), one frame at a time, "
             f"every core, interleaved, median over {data['speed_frames']} frames; {data['machine']['cpu']}.", "",
             f"| configuration | {head} | ms/frame | vs FP32 ORT |", "|---|" + "---|" * (len(scenes_) + 2)]
    for name, sp in data["speed"].items():
        cells = " | ".join(f"{data['agreement'][s][name]['f1']:.3f} / {data['agreement'][s][name]['ap50_95_pooled']:.3f}"
                           for s in scenes_)
        lines.append(f"| {name} | {cells} | {sp['ms_per_frame']} | {sp['speedup_vs_fp32_ort']}x |")
    lines += ["", "Scenes:", *[f"- {k}: {v}" for k, v in data["sources"].items()],
              f"- calibration: {data['calib_source']}", f"- build seconds: {data['build_seconds']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib-frames", type=int, default=256)
    ap.add_argument("--val-frames", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--keep-float", default="auto", help="Int8Options.keep_float for edgevision's files")
    ap.add_argument("--speed-frames", type=int, default=24, help="held-out vtest frames timed per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgevision-int8-peers"))
    ap.add_argument("--tag", default="", help="suffix of the result files (int8_peers<_tag>.json)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="edgevision's engines to build: own,nncf,conv-only")
    args = ap.parse_args(argv)

    calib, frames, sources = scenes(args.calib_frames, args.val_frames)
    args.work.mkdir(parents=True, exist_ok=True)
    engines = tuple(e for e in args.engines.split(",") if e)
    if set(engines) - set(ENGINES):
        ap.error(f"--engines: choose from {', '.join(ENGINES)}")
    runs = prepare(args.work, args.imgsz, calib, args.keep_float, engines)
    data: dict[str, Any] = {
        "imgsz": args.imgsz, "calib_frames": len(calib), "keep_float": args.keep_float, "sources": sources,
        "calib_source": f"vtest.avi, {len(calib)} frames evenly across its first 80% (split_frames)",
        "build_seconds": PREPARED.get("build_seconds"), "speed_frames": args.speed_frames * args.rounds,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_before": os.getloadavg()[0]},
    }
    data["agreement"] = agreement(runs, frames)
    data["speed"] = speed(runs, frames["vtest (held out)"][:args.speed_frames], args.rounds)
    data["machine"]["load_after"] = os.getloadavg()[0]
    cpu = Path("/proc/cpuinfo")
    if cpu.is_file():
        model = [ln.split(":", 1)[1].strip() for ln in cpu.read_text().splitlines() if ln.startswith("model name")]
        data["machine"]["cpu"] = f"{model[0] if model else data['machine']['cpu']}, {os.cpu_count()} cores"
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"int8_peers{'_' + args.tag if args.tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(data))
    print(to_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
