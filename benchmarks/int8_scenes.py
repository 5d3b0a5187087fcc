"""INT8 on scenes calibration never saw: calibrate on vtest.avi, measure agreement with FP32 elsewhere.

Scenes (all offline, from Debian packages):
- vtest (held out): the last 20% of vtest.avi, which calibration does not read (what the gate sees);
- megamind: /usr/share/doc/opencv-doc/examples/data/Megamind.avi (opencv-doc): an animated indoor
  close-up of a person, another scale, colours and lighting;
- stills: the photos of people, animals, vehicles and objects shipped by opencv-doc (messi5,
  basketball, fruits, ...) and darknet (`apt-get install darknet`: dog, horses, person, kite, ...).

Per scene and per INT8 file (the TensorRT Q/DQ graph and the CPU twin), F1 at IoU 0.5 (conf 0.25),
AP50-95 pooled over all detections (one curve, class-aware matching) and the per-class mean, all
against FP32 on ONNX Runtime's CPU provider. Results: benchmarks/results/int8_scenes.json / .md

    .venv/bin/python benchmarks/int8_scenes.py [--calib-frames 64] [--val-frames 64] [--imgsz 640]
        [--keep-float auto] [--calibration percentile|mse] [--tag NAME]
        [--qat [--qat-minutes M] [--qat-steps N] [--qat-lr LR] [--qat-learn-scales] [--qat-feature-weight W]]

--qat measures both files without QAT (post-training) and with it (the same placement and ranges,
weights distilled against FP32 on the augmented calibration frames: converters/precision/qat.py)
side by side in one run: results/int8_scenes_qat.json / .md (or _qat_<tag> when --tag is given).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demos.assets import VTEST, demo_checkpoint  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
DARKNET_DATA = Path("/usr/share/darknet/data")
# Photos with things COCO knows (people, animals, vehicles, fruit, furniture); charts, text and
# textures are left out: FP32 sees nothing there to agree on.
STILLS = [OPENCV_DATA / n for n in ("messi5.jpg", "basketball1.png", "basketball2.png", "fruits.jpg", "home.jpg",
                                    "building.jpg", "apple.jpg", "orange.jpg", "baboon.jpg", "stuff.jpg",
                                    "squirrel_cls.jpg", "rubberwhale1.png", "lena.jpg", "aero1.jpg", "pic1.png")]
STILLS += [DARKNET_DATA / n for n in ("dog.jpg", "horses.jpg", "person.jpg", "kite.jpg", "eagle.jpg", "giraffe.jpg",
                                      "scream.jpg")]


def scenes(calib_frames: int, val_frames: int) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], dict[str, str]]:
    """(calibration frames from vtest, scene name -> frames uint8[H, W, 3] BGR, scene -> source)."""
    import cv2

    from converters.precision.calibration import split_frames
    from edgevision.sources import sample_frames

    split = split_frames(str(VTEST), calib_frames, None, val_frames)
    out = {"vtest (held out)": split.val}
    src = {"vtest (held out)": f"{VTEST} frames {split.describe()['val']['indices']}"}
    mega = OPENCV_DATA / "Megamind.avi"
    if mega.is_file():
        out["megamind"], idx = sample_frames(mega, val_frames)
        src["megamind"] = f"{mega} ({len(idx)} frames)"
    stills = [p for p in STILLS if p.is_file()]
    if stills:
        out["stills"] = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in stills]
        src["stills"] = f"{len(stills)} photos: " + ", ".join(p.name for p in stills)
    return split.calib, out, src


def fp32_model(work: Path, imgsz: int) -> Path:
    from converters.export import ExportOptions, convert

    path = work / f"fp32-{imgsz}" / "yolo11n-seg.onnx"
    if not path.is_file():
        convert(demo_checkpoint(), path.parent, ExportOptions(imgsz=(imgsz, imgsz)))
    return path


def agreement(fp32: Path, files: dict[str, Path], frames: dict[str, list[np.ndarray]]) -> dict[str, dict[str, Any]]:
    """scene -> file name -> evaluation summary (F1, pooled and per-class AP50-95, mask IoU) vs FP32."""
    from converters.onnx_io import read_manifest
    from converters.precision.evaluate import prepare
    from converters.precision.int8 import _session_results
    from converters.precision.judge import evaluate

    manifest = read_manifest(fp32)
    out: dict[str, dict[str, Any]] = {}
    for scene, fr in frames.items():
        prep = prepare(fp32, fr)
        ref = _session_results(fp32, prep, manifest)
        out[scene] = {}
        for name, path in files.items():
            ev = evaluate(_session_results(path, prep, manifest), ref, manifest)
            out[scene][name] = {"f1": round(ev.f1, 4), "ap50_95_pooled": round(ev.ap50_95_pooled, 4),
                                "ap50_95_per_class": round(ev.ap50_95, 4),
                                "mask_iou": None if ev.mask_iou is None else round(ev.mask_iou, 4),
                                "fp32_detections": ev.reference_detections, "frames": ev.frames}
            print(f"[scenes] {scene:18s} {name:10s} {ev.summary()}", flush=True)
    return out


def build(fp32: Path, calib: list[np.ndarray], work: Path, opts: Any) -> tuple[dict[str, Path], Any]:
    from converters.onnx_io import read_manifest
    from converters.precision.budget import DEFAULT_BUDGETS
    from converters.precision.int8 import build_int8

    manifest = read_manifest(fp32)
    trt, cpu = work / "int8.onnx", work / "int8-cpu.onnx"
    b = build_int8(fp32, manifest, calib, trt, cpu, DEFAULT_BUDGETS["int8"], opts, log=lambda m: print(f"[int8] {m}"))
    print(f"[scenes] kept float: TensorRT {len(b.kept_float)} layers, CPU twin {len(b.cpu_kept_float)}; "
          f"{ {k: round(v, 1) for k, v in b.seconds.items()} }")
    return {"int8": trt, "int8-cpu": cpu}, b


def qat_build(fp32: Path, calib: list[np.ndarray], work: Path, opts: Any, b: Any, qopts: Any) -> tuple[dict[str, Path], Any]:
    """The post-training files copied to work/ptq-*, then --qat rewrites work/int8*.onnx in place
    (qat_int8.qat_int8, as `edgevision convert --qat` does) -> ({name: file}, QatResult)."""
    import shutil
    from dataclasses import replace

    from converters.export import ExportOptions
    from converters.onnx_io import read_manifest
    from converters.precision.qat_int8 import qat_int8

    manifest = read_manifest(fp32)
    for name in ("int8", "int8-cpu"):
        shutil.copy(work / f"{name}.onnx", work / f"ptq-{name}.onnx")
    trt, cpu = work / "qat-int8.onnx", work / "qat-int8-cpu.onnx"
    b = replace(b, trt_path=trt, cpu_path=cpu)
    res = qat_int8(demo_checkpoint(), ExportOptions(imgsz=tuple(manifest.input_hw)), fp32, manifest, b, calib, opts,
                   qopts, log=lambda m: print(f"[qat] {m}", flush=True), progress=lambda p: print(f"[qat] {p.line()}", flush=True))
    print(f"[qat] {res.summary()}")
    return {"int8 +qat": trt, "int8-cpu +qat": cpu}, res


def to_markdown(data: dict[str, Any]) -> str:
    lines = [f"# INT8 vs FP32 on scenes calibration never saw ({data['tag']})", "",
             f"yolo11n-seg at {data['imgsz']}x{data['imgsz']}, calibrated on {data['calib_frames']} vtest.avi frames "
             f"(`{data['options']}`); ONNX Runtime CPU; F1 at IoU 0.5, conf 0.25; AP50-95 of candidates scored down "
             "to conf 0.001 against FP32 at 0.25, pooled over all detections (class-aware) and per-class mean.", "",
             "| scene | file | F1 | AP50-95 pooled | AP50-95 per class | mask IoU | FP32 detections |",
             "|---|---|---|---|---|---|---|"]
    for scene, files in data["agreement"].items():
        for name, e in files.items():
            lines.append(f"| {scene} | {name} | {e['f1']:.3f} | {e['ap50_95_pooled']:.3f} | {e['ap50_95_per_class']:.3f} "
                         f"| {e['mask_iou']:.3f} | {e['fp32_detections']} |")
    if "qat" in data:
        q = data["qat"]
        lines += ["", f"--qat: {q['steps']} steps in {q['seconds'] / 60:.1f} min ({q['stopped']}, best step {q['best_step']}), "
                  f"held-out distillation loss {q['loss_before']:.4f} -> {q['loss_after']:.4f}, {q['train_frames']} "
                  f"training frames (augmented), {q['held_out_frames']} held out; options {q['options']}"]
    if "speed" in data:
        lines += ["", "ONNX Runtime CPU speed vs FP32 (interleaved): " + ", ".join(
            f"{n} {e['latency_ms']} ms ({e['latency_vs_fp32']}x latency, {e['throughput_vs_fp32']}x throughput)"
            for n, e in data["speed"].items())]
    lines += ["", "Scenes:", *[f"- {k}: {v}" for k, v in data["sources"].items()], ""]
    return "\n".join(lines)


def speed(fp32: Path, files: dict[str, Path], rounds: int) -> dict[str, Any]:
    """FP32 and the INT8 files on ONNX Runtime's CPU provider, interleaved (bench_precision's helpers):
    median ms with every core on one inference, and frames/s with one 1-thread inference per core."""
    from benchmarks.bench_precision import interleaved, throughput
    from converters.precision.evaluate import prepare

    image = prepare(fp32, scenes(1, 1)[1]["vtest (held out)"]).batches[0][:1]
    paths = {"fp32": fp32, **files}
    lat = {n: float(np.median(v)) for n, v in interleaved(paths, image, rounds, 5).items()}
    fps = {n: float(np.median(v)) for n, v in throughput(paths, image, rounds, 5).items()}
    out = {n: {"latency_ms": round(lat[n], 2), "latency_vs_fp32": round(lat["fp32"] / lat[n], 3),
               "throughput_fps": round(fps[n], 2), "throughput_vs_fp32": round(fps[n] / fps["fp32"], 3)} for n in paths}
    print(f"[speed] {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib-frames", type=int, default=64)
    ap.add_argument("--val-frames", type=int, default=64)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--keep-float", default="auto")
    ap.add_argument("--calibration", default=None, help="Int8Options.calibration (default: its default)")
    ap.add_argument("--float-final", default=None, choices=["yes", "no"], help="Int8Options.float_final")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgevision-int8-scenes"))
    ap.add_argument("--tag", default="current")
    ap.add_argument("--speed", nargs="*", metavar="NAME=FILE", default=None,
                    help="only time FP32 against these ONNX files, interleaved (e.g. before=.../int8-cpu.onnx)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--qat", action="store_true", help="also distil (--qat) and compare with and without, side by side")
    ap.add_argument("--qat-minutes", type=float, default=None)
    ap.add_argument("--qat-steps", type=int, default=None)
    ap.add_argument("--qat-lr", type=float, default=None)
    ap.add_argument("--qat-batch", type=int, default=None)
    ap.add_argument("--qat-imgsz", type=int, default=None)
    ap.add_argument("--qat-learn-scales", action="store_true")
    ap.add_argument("--qat-feature-weight", type=float, default=None)
    args = ap.parse_args(argv)

    from converters.precision.int8 import Int8Options

    opts = Int8Options(keep_float=args.keep_float)
    if args.calibration:
        opts.calibration = args.calibration
    if args.float_final:
        opts.float_final = args.float_final == "yes"
    work = args.work / args.tag
    work.mkdir(parents=True, exist_ok=True)
    fp32 = fp32_model(args.work, args.imgsz)
    if args.speed is not None:
        files = {k: Path(v) for k, v in (x.split("=", 1) for x in args.speed)}
        data = {"imgsz": args.imgsz, "rounds": args.rounds, "files": {k: str(v) for k, v in files.items()},
                "load_before": os.getloadavg()[0], "speed": speed(fp32, files, args.rounds),
                "load_after": os.getloadavg()[0]}
        (RESULTS / f"int8_scenes_speed_{args.tag}.json").write_text(json.dumps(data, indent=1))
        return 0
    calib, frames, sources = scenes(args.calib_frames, args.val_frames)
    t0 = time.perf_counter()
    files, b = build(fp32, calib, work, opts)
    build_s = time.perf_counter() - t0
    data = {"tag": args.tag, "imgsz": args.imgsz, "calib_frames": len(calib), "build_seconds": round(build_s, 1),
            "options": f"keep_float={opts.keep_float}, calibration={opts.calibration}, float_final={opts.float_final}",
            "sources": sources}
    stem = RESULTS / f"int8_scenes_{args.tag}"
    if args.qat:
        from converters.precision.qat import QatOptions

        qopts = QatOptions()
        for k in ("minutes", "steps", "lr", "batch", "feature_weight", "imgsz"):
            if getattr(args, f"qat_{k}") is not None:
                setattr(qopts, k, getattr(args, f"qat_{k}"))
        qopts.learn_scales = args.qat_learn_scales
        t0 = time.perf_counter()
        qfiles, res = qat_build(fp32, calib, work, opts, b, qopts)
        data["qat"] = {**res.as_dict(), "seconds_with_export": round(time.perf_counter() - t0, 1)}
        files = {"int8": files["int8"], "int8 +qat": qfiles["int8 +qat"],
                 "int8-cpu": files["int8-cpu"], "int8-cpu +qat": qfiles["int8-cpu +qat"]}
        stem = RESULTS / ("int8_scenes_qat" + ("" if args.tag == "current" else f"_{args.tag}"))
    data["agreement"] = agreement(fp32, files, frames)
    if args.qat:
        data["speed"] = speed(fp32, {n: files[n] for n in ("int8-cpu", "int8-cpu +qat")}, args.rounds)
    RESULTS.mkdir(exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    stem.with_suffix(".md").write_text(to_markdown(data))
    print(to_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
