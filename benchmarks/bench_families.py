"""Each torchvision (and timm) family's artifact on ONNX Runtime vs the same model in eager PyTorch on the CPU.

Same frames, interleaved rounds (the machine is shared), per-frame medians. Both sides do
the whole per-frame job a user runs: eager = torchvision's own preset on the frame, the model,
softmax/top-k or arg-max (and for semantic maps the resize back to the frame); edgevision =
edgevision.load(artifact)(frame) (pre-processing, the graph with its post-processing, results
at frame resolution). Threads: both sides get every core (torch.set_num_threads(cores),
ONNX Runtime's default), so neither is starved. Random weights with real-frame BN statistics
(no weights download here): speed does not depend on the weights' values.

    .venv/bin/python benchmarks/bench_families.py [--frames 20] [--rounds 3] [--models NAME ...]
Results: benchmarks/results/bench_families.json and .md
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

import torch  # noqa: E402

import edgevision  # noqa: E402
from converters.export import ExportOptions, convert  # noqa: E402
from converters.families.torchvision import (  # noqa: E402
    _interp_mode, _preset, build, classify_reference, default_weights, semantic_reference,
)
from converters.intake import open_checkpoint  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.sources import sample_frames  # noqa: E402
from converters.families.torchvision_detect import build_detector, detect_reference  # noqa: E402
from converters.families.torchvision_rcnn import TWO_STAGE, build_rcnn  # noqa: E402
from converters.families.timm import eval_config, timm_model, timm_preset  # noqa: E402
from tests.families import (  # noqa: E402
    rcnn_state_dict, recalibrate_bn, torchvision_detector_state_dict, torchvision_state_dict,
)

RESULTS = Path(__file__).parent / "results"
MODELS = {  # torchvision name or timm:NAME: (task, BN-statistics input size, builder kwargs)
    "ssdlite320_mobilenet_v3_large": ("detect", (320, 320), {"num_classes": 8}),
    "retinanet_resnet50_fpn": ("detect", (320, 427), {"num_classes": 8, "min_size": 320, "max_size": 512}),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("detect", (320, 427), {"num_classes": 8}),
    "maskrcnn_resnet50_fpn": ("detect", (320, 427), {"num_classes": 8, "min_size": 320, "max_size": 512}),
    "mobilenet_v3_small": ("classify", (224, 224), {"num_classes": 10}),
    "resnet18": ("classify", (224, 224), {}),
    "lraspp_mobilenet_v3_large": ("semantic", (520, 693), {"weights_backbone": None}),
    "deeplabv3_mobilenet_v3_large": ("semantic", (520, 693), {"weights_backbone": None}),
    "timm:mobilenetv3_small_050": ("classify", (224, 224), {"num_classes": 10}),
    "timm:efficientnet_b0": ("classify", (224, 224), {}),
}


def timm_state_dict(name: str, frames: list[np.ndarray], path: Path, size: tuple[int, int], **kwargs: Any) -> Path:
    """timm's NAME with seeded random weights and real-frame BN statistics."""
    import timm

    torch.manual_seed(0)
    model = recalibrate_bn(timm.create_model(name, pretrained=False, **kwargs), frames, size)
    torch.save(model.state_dict(), path)
    return path


def eager_runner(name: str, sd: Path, manifest: Any = None) -> Any:
    task = MODELS[name][0]
    if name.startswith("timm:"):
        model, _ = timm_model(name[5:], open_checkpoint(sd), None)
        return classify_reference(model, timm_preset(eval_config(model)), manifest.topk, manifest.class_names)
    if task == "detect":
        sides = {k: v for k, v in MODELS[name][2].items() if k in ("min_size", "max_size")}
        builder = build_rcnn if name in TWO_STAGE else build_detector
        model, _ = builder(name, open_checkpoint(sd), None, sides.get("min_size"), sides.get("max_size"))
        return detect_reference(model, manifest.class_names, manifest.conf_threshold, manifest.max_det)
    model, nc = build(name, task, open_checkpoint(sd), None)
    p = _preset(default_weights(name), task)
    if task == "classify":
        from torchvision.transforms._presets import ImageClassification

        preset = ImageClassification(crop_size=p["crop_size"], resize_size=p["resize_size"],
                                     interpolation=_interp_mode(p["interpolation"]), mean=p["mean"], std=p["std"])
        return classify_reference(model, preset, min(5, nc), tuple(str(i) for i in range(nc)))
    return semantic_reference(model, p, tuple(str(i) for i in range(nc)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="runs/bench-families")
    ap.add_argument("--models", nargs="*", default=None,
                    help="only these (default: all); the other rows of an earlier run are kept")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    frames, _ = sample_frames(VTEST, args.frames + 20)
    calib, verify, timed = frames[:16], frames[16:20], frames[20:]
    old = RESULTS / "bench_families.json"
    chosen = args.models or list(MODELS)
    rows = [r for r in json.loads(old.read_text())["rows"] if r["model"] not in chosen] if old.exists() else []
    for name in chosen:
        task, size, kwargs = MODELS[name]
        sides = {k: v for k, v in kwargs.items() if k in ("min_size", "max_size")}
        arch = name if ":" in name else f"torchvision:{name}"
        stem = name.replace(":", "-")
        if name.startswith("timm:"):
            sd = timm_state_dict(name[5:], calib, work / f"{stem}.pth", size, **kwargs)
        elif name in TWO_STAGE:
            sd = rcnn_state_dict(name, calib[:8], work / f"{name}.pth", **kwargs)
        elif task == "detect":
            sd = torchvision_detector_state_dict(name, calib[:8], work / f"{name}.pth", **kwargs)
        else:
            sd = torchvision_state_dict(name, calib, work / f"{name}.pth", size, **kwargs)
        result = convert(sd, work / stem, ExportOptions(arch=arch, **sides), verify)
        ours = edgevision.load(result.onnx_path, backend="onnxruntime")
        eager = eager_runner(name, sd, result.manifest)
        times: dict[str, list[float]] = {"eager": [], "edgevision": []}
        for _ in range(args.rounds):
            for label, run in (("eager", lambda f: eager([f])), ("edgevision", ours)):
                for f in timed:
                    t0 = time.perf_counter()
                    run(f)
                    times[label].append((time.perf_counter() - t0) * 1e3)
        ours.close()
        e, o = float(np.median(times["eager"])), float(np.median(times["edgevision"]))
        rows.append({"model": name, "task": task, "input": list(result.manifest.input_hw),
                     "verification": result.verdict.summary if result.verdict else None,
                     "eager_ms": round(e, 2), "edgevision_ms": round(o, 2), "speedup": round(e / o, 2)})
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {"cores": cores, "frames": len(timed), "rounds": args.rounds, "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__}
    (RESULTS / "bench_families.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    rows.sort(key=lambda r: list(MODELS).index(r["model"]) if r["model"] in MODELS else len(MODELS))
    lines = [f"# torchvision and timm families: edgevision on ONNX Runtime vs eager PyTorch ({cores} cores, "
             f"{len(timed)} vtest frames x {args.rounds} interleaved rounds, per-frame medians)", "",
             "| model | task | input | eager PyTorch ms | edgevision ms | speed-up | verification vs PyTorch |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['task']} | {r['input'][0]}x{r['input'][1]} | {r['eager_ms']} | {r['edgevision_ms']} "
              f"| {r['speedup']}x | {r['verification']} |" for r in rows]
    (RESULTS / "bench_families.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
