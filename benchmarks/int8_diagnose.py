"""Why INT8 calibrated on vtest.avi loses agreement on other scenes (issue 12, item 1).

On the scenes of int8_scenes.py, with every layer in INT8 (no protection, so each effect shows):
1. ranges: per quantized activation, the scene's own |x| percentile over the range calibration
   set on vtest (> 1: the scene saturates what vtest calibrated), summarised per layer group;
2. clipping: the TensorRT placement with ranges set by several calibration methods, scored per scene;
3. sensitivity: each layer group quantized alone, its loss (judge.loss) per scene, and the effect of
   keeping the head's final convolutions (box / class / mask-coefficient outputs) in float.
Results: benchmarks/results/int8_diagnosis.json / .md

    .venv/bin/python benchmarks/int8_diagnose.py [--calib-frames 64] [--val-frames 32] [--imgsz 640]
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.int8_scenes import RESULTS, fp32_model, scenes  # noqa: E402


def range_ratios(fp32: Path, ref: dict[float, Any], frames: dict[str, list[np.ndarray]], pct: float) -> dict[str, Any]:
    """Per scene: how many quantized activations exceed vtest's calibrated range, and the worst groups."""
    import onnx

    from converters.onnx_io import read_manifest
    from converters.precision.calibration import collect_ranges_multi
    from converters.precision.regions import find_regions

    manifest = read_manifest(fp32)
    model = onnx.load(str(fp32))
    regions = find_regions(model, manifest.family, manifest.extra)
    nodes = {n.name: n for n in model.graph.node}
    acts = {nodes[layer.name].input[i]: layer.group for layer in regions.layers for i in layer.activations}
    tensors = list(acts)
    out: dict[str, Any] = {}
    for scene, fr in frames.items():
        got = collect_ranges_multi(fp32, manifest, tensors, fr, (pct, 100.0))
        ratio = {t: got[pct].amax(t) / ref[pct].amax(t) for t in tensors}
        peak = {t: got[100.0].amax(t) / ref[pct].amax(t) for t in tensors}
        by_group: dict[str, float] = defaultdict(float)
        for t, r in ratio.items():
            by_group[acts[t]] = max(by_group[acts[t]], r)
        out[scene] = {
            "tensors": len(tensors),
            f"p{pct}_above_vtest_range": sum(r > 1.0 for r in ratio.values()),
            f"p{pct}_above_1.5x": sum(r > 1.5 for r in ratio.values()),
            "max_above_vtest_range": sum(r > 1.0 for r in peak.values()),
            "median_ratio": round(float(np.median(list(ratio.values()))), 3),
            "worst_groups": [(g, round(r, 2)) for g, r in sorted(by_group.items(), key=lambda kv: -kv[1])[:8]],
        }
        print(f"[ranges] {scene}: {out[scene]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib-frames", type=int, default=64)
    ap.add_argument("--val-frames", type=int, default=32)
    ap.add_argument("--sens-frames", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgevision-int8-scenes"))
    ap.add_argument("--skip-ranges", default="", help="comma list of range sets not to score, e.g. p99.9")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: ranges,clipping,sensitivity")
    args = ap.parse_args(argv)
    skip = set(args.skip.split(","))

    import onnx

    from converters.onnx_io import read_manifest
    from converters.precision.calibration import collect_ranges_mse, collect_ranges_multi, float_tensors
    from converters.precision.evaluate import prepare
    from converters.precision.int8 import evenly, final_layers
    from converters.precision.judge import evaluate, loss
    from converters.precision.regions import find_regions
    from converters.precision.sensitivity import GatedRunner

    fp32 = fp32_model(args.work, args.imgsz)
    calib, frames, sources = scenes(args.calib_frames, args.val_frames)
    manifest = read_manifest(fp32)
    model = onnx.load(str(fp32))
    regions = find_regions(model, manifest.family, manifest.extra)
    data: dict[str, Any] = {"imgsz": args.imgsz, "calib_frames": len(calib), "sources": sources}
    path = RESULTS / "int8_diagnosis.json"
    if path.is_file():
        data = {**json.loads(path.read_text()), **data}

    tensors = float_tensors(model, regions.network_nodes)
    pcts = (99.9, 99.99, 99.999, 100.0)
    cache = args.work / f"ranges-{args.imgsz}-{len(calib)}.pkl"  # calibration is the slow part: once per setting
    by_pct: dict[Any, Any] = pickle.loads(cache.read_bytes()) if cache.is_file() else \
        dict(collect_ranges_multi(fp32, manifest, tensors, calib, pcts))
    cache.write_bytes(pickle.dumps(by_pct))
    if "ranges" not in skip:
        data["ranges"] = range_ratios(fp32, by_pct, frames, 99.999)
        path.write_text(json.dumps(data, indent=1))
    if "mse" not in skip and "mse" not in by_pct:
        by_pct["mse"] = collect_ranges_mse(fp32, manifest, tensors, calib, first=by_pct)
    cache.write_bytes(pickle.dumps(by_pct))
    head = final_layers(model, regions)
    data["head_outputs"] = head
    print(f"[head] {len(head)} final layers: {head}")
    preps = {s: prepare(fp32, fr) for s, fr in frames.items()}

    if "clipping" not in skip:
        clip: dict[str, Any] = {}
        # the final layers get a gate of their own, so they can stay float while their blocks are INT8
        layers = [replace(layer, group="final") if layer.name in head else layer for layer in regions.layers]
        for p in by_pct:
            if f"p{p}" in args.skip_ranges.split(","):
                continue
            runner = GatedRunner(model, layers, by_pct[p], manifest)
            for label, on in (("all int8", set(runner.groups)), ("final layers float", set(runner.groups) - {"final"})):
                key = f"{p if p == 'mse' else f'p{p}'} {label}"
                clip[key] = {}
                for s, prep in preps.items():
                    ref = prep.references.setdefault("fp32", runner.run(prep, set()))
                    ev = evaluate(runner.run(prep, on), ref, manifest)
                    clip[key][s] = {"f1": round(ev.f1, 4), "ap_pooled": round(ev.ap50_95_pooled, 4),
                                    "ap_per_class": round(ev.ap50_95, 4)}
                print(f"[clipping] {key}: {clip[key]}", flush=True)
            del runner
        data["clipping"] = clip
        path.write_text(json.dumps(data, indent=1))

    if "cpu" not in skip:
        from converters.precision.cpu_int8 import build_cpu_int8
        from converters.precision.int8 import _session_results

        cpu: dict[str, Any] = {}
        for p, ranges in by_pct.items():
            if f"p{p}" in args.skip_ranges.split(","):
                continue
            for label, extra in (("all int8", set()), ("final layers float", set(head))):
                key = f"{p if p == 'mse' else f'p{p}'} {label}"
                out = args.work / "cpu-twin-trial.onnx"
                build_cpu_int8(fp32, out, ranges, regions.float_nodes | extra)
                cpu[key] = {}
                for s, prep in preps.items():
                    ref = prep.references.setdefault("fp32-ort", _session_results(fp32, prep, manifest))
                    ev = evaluate(_session_results(out, prep, manifest), ref, manifest)
                    cpu[key][s] = {"f1": round(ev.f1, 4), "ap_pooled": round(ev.ap50_95_pooled, 4),
                                   "ap_per_class": round(ev.ap50_95, 4)}
                print(f"[cpu twin] {key}: {cpu[key]}", flush=True)
        data["cpu_twin"] = cpu
        path.write_text(json.dumps(data, indent=1))

    if "sensitivity" not in skip:
        runner = GatedRunner(model, regions.layers, by_pct[99.999], manifest)
        sens: dict[str, dict[str, float]] = {}
        for s, fr in frames.items():
            prep = prepare(fp32, evenly(fr, args.sens_frames))
            ref = runner.run(prep, set(), masks=False)
            sens[s] = {g: round(loss(runner.run(prep, {g}, masks=False), ref, manifest), 4) for g in runner.groups}
            worst = sorted(sens[s].items(), key=lambda kv: -kv[1])[:8]
            print(f"[sensitivity] {s}: {worst}", flush=True)
        data["sensitivity"] = sens
        path.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
