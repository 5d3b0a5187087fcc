"""The in-graph NMS (converters/nms.py) alone: what its defaults cost and whether they are exact.

Inputs are the real yolo11n's raw predictions (its box and class rows, float32[84, 8400]):
- vtest: real vtest frames letterboxed to 640x640, at the default conf 0.25;
- crowd: a 640x640 mosaic of 20 vtest frames (aspect kept, 4 across, 5 down; about 200
  pedestrians, 20-40 px tall), at conf 0.01, where hundreds of candidates pass.
For each input: how many anchors pass conf, how many survive greedy NMS, the candidates the
graph must take for its max_det rows to equal greedy NMS over all of them (the rank of the
max_det-th kept box), and the suppression chain depth (reference.nms_chain_depth, whole and
per block).

For each post-processing configuration (K = pre_nms_topk, iterations, block): the ONNX graph of
the post-processing alone in ONNX Runtime, batch 1, one thread: CPU ms per call of the calling
thread, median and min (the machine may be shared; wall ms beside it), interleaved rounds; and on every
input whether its rows equal plain greedy NMS exactly, with the graph's nms_limits. The baseline
is the post-processing as it was before nms_limits (converters/nms.py at --baseline, from git).

    .venv/bin/python benchmarks/bench_nms.py [--rounds 8] [--baseline REV]
Results: benchmarks/results/bench_nms.json and .md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.nms import DEFAULT_BLOCK  # noqa: E402
from converters.reference import candidates, decode_nms, greedy_nms, nms_chain_depth  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NC = 80  # COCO classes: preds rows 4..83
# The post-processing before nms_limits (512 candidates, 8 iterations, one K x K block).
BASELINE_REV = "cea8939"


def crowd_mosaic(frames: list[np.ndarray], cols: int = 4, size: int = 640) -> np.ndarray:
    """uint8[size, size, 3] BGR: the frames shrunk with their aspect kept and tiled `cols`
    across and as many rows down as fit, the rest letterbox grey (114). Raises if too few frames."""
    import cv2

    fh, fw = frames[0].shape[:2]
    w = size // cols
    h = w * fh // fw
    rows = size // h
    if len(frames) < rows * cols:
        raise ValueError(f"a {cols}x{rows} mosaic needs {rows * cols} frames, got {len(frames)}")
    out = np.full((size, size, 3), 114, np.uint8)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = cv2.resize(frames[k], (w, h), interpolation=cv2.INTER_AREA)
    return out


def yolo_preds(checkpoint: Path, images: list[np.ndarray]) -> np.ndarray:
    """float32[B, 84, 8400]: the checkpoint's box and class rows on uint8 BGR frames, letterboxed to 640."""
    import torch

    from converters.families.ultralytics import load_yolo
    from edgevision.manifest import Preprocess
    from edgevision.preprocess import preprocess

    src = load_yolo(checkpoint)
    x = np.concatenate([preprocess(im, (640, 640), Preprocess())[0] for im in images])
    with torch.no_grad():
        raw = src.model(torch.from_numpy(x))
    preds = (raw[0] if isinstance(raw, (tuple, list)) else raw).numpy()
    return np.ascontiguousarray(preds[:, : 4 + NC])


def load_baseline(rev: str) -> Any:
    """converters/nms.py as it was at `rev` (a module), or None where git cannot show it."""
    try:
        code = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:converters/nms.py"], capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("nms_baseline")
    exec(compile(code, f"{rev}:converters/nms.py", "exec"), module.__dict__)
    return module


def export_post(module: Any, k: int, iters: int, block: int | None, path: Path) -> Any:
    """The post-processing alone as ONNX (preds, conf, iou -> rows [, nms_limits]); an ORT session, 1 thread."""
    import onnxruntime as ort
    import torch

    args = (NC, 0, 300, k, iters) + ((block,) if block is not None else ())
    post = module.DetectPostprocess(*args).eval()
    example = (torch.rand(2, 4 + NC, 8400), torch.tensor([0.25]), torch.tensor([0.7]))
    names = ["boxes", "scores", "class_ids", "num_dets", "nms_limits"][: len(post(*example))]
    torch.onnx.export(post, example, str(path), opset_version=17, dynamo=False, input_names=["preds", "conf", "iou"],
                      output_names=names, dynamic_axes={"preds": {0: "b"}, **{n: {0: "b"} for n in names}})
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def feeds(preds: np.ndarray, conf: float, iou: float) -> dict[str, np.ndarray]:
    return {"preds": preds, "conf": np.array([conf], np.float32), "iou": np.array([iou], np.float32)}


def input_figures(preds: np.ndarray, conf: float, iou: float, max_det: int) -> dict[str, Any]:
    """Candidates above conf, greedy survivors, candidates needed for exact rows, chain depths."""
    _, boxes, scores, classes, above = candidates(preds, NC, conf)
    kept = greedy_nms(boxes, scores, classes, iou)
    rank = np.empty(len(scores), np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    needed = int(rank[kept[max_det - 1]]) + 1 if len(kept) >= max_det else above
    return {"above_conf": above, "greedy_kept": len(kept), "k_needed": needed,
            "chain_depth": nms_chain_depth(boxes, scores, classes, iou),
            "chain_depth_per_block": nms_chain_depth(boxes, scores, classes, iou, DEFAULT_BLOCK)}


def exact(outs: list[np.ndarray], preds: np.ndarray, conf: float, iou: float, max_det: int) -> bool:
    """The graph's rows for one image equal greedy NMS over all candidates, bit for bit."""
    ref = decode_nms(preds, NC, conf, iou, max_det)
    n = int(outs[3][0])
    return (n == len(ref.scores) and np.array_equal(outs[0][0, :n], ref.boxes)
            and np.array_equal(outs[1][0, :n], ref.scores) and np.array_equal(outs[2][0, :n], ref.class_ids))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--baseline", default=BASELINE_REV, help="git revision of the post-processing to compare with")
    args = ap.parse_args()

    import converters.nms as current
    from demos.assets import VTEST, demo_checkpoint
    from edgevision.sources import sample_frames

    frames, _ = sample_frames(VTEST, 20)
    crowd = crowd_mosaic(frames)
    images = [frames[5], frames[15], crowd]
    preds = yolo_preds(demo_checkpoint(), images)
    # (label, preds[1, 84, 8400], conf, iou)
    inputs = [("vtest frame A @0.25", preds[0:1], 0.25, 0.7), ("vtest frame B @0.25", preds[1:2], 0.25, 0.7),
              ("crowd @0.25", preds[2:3], 0.25, 0.7), ("crowd @0.01", preds[2:3], 0.01, 0.7),
              ("crowd @0.01 iou 0.45", preds[2:3], 0.01, 0.45)]
    figures = {label: input_figures(p[0], conf, iou, 300) for label, p, conf, iou in inputs}
    for label, f in figures.items():
        print(f"{label}: {f}", flush=True)

    baseline = load_baseline(args.baseline)
    # (label, module, K, iterations, block): None block = the baseline's signature
    configs: list[tuple[str, Any, int, int, int | None]] = []
    if baseline is not None:
        configs.append((f"before ({args.baseline}): K 512, 8 iters, one block", baseline, 512, 8, None))
    configs += [("K 512, 8 iters, one block", current, 512, 8, 512),
                (f"K 512, 8 iters, blocks of {DEFAULT_BLOCK}", current, 512, 8, DEFAULT_BLOCK),
                ("K 1024, 8 iters, one block", current, 1024, 8, 1024),
                (f"K 1024, 8 iters, blocks of {DEFAULT_BLOCK} (default)", current, 1024, 8, DEFAULT_BLOCK),
                (f"K 2048, 8 iters, blocks of {DEFAULT_BLOCK}", current, 2048, 8, DEFAULT_BLOCK)]
    tmp = ROOT / "runs" / "bench-nms"
    tmp.mkdir(parents=True, exist_ok=True)
    sessions = {label: export_post(m, k, it, blk, tmp / f"post{i}.onnx") for i, (label, m, k, it, blk) in enumerate(configs)}

    rows: dict[str, dict[str, Any]] = {}
    for label, _, k, it, blk in configs:
        s = sessions[label]
        agree, limits = {}, {}
        for name, p, conf, iou in inputs:
            outs = s.run(None, feeds(p, conf, iou))
            agree[name] = exact(outs, p[0], conf, iou, 300)
            limits[name] = int(outs[4][0]) if len(outs) > 4 else None
        rows[label] = {"k": k, "iters": it, "block": blk or k, "exact": agree, "nms_limits": limits,
                       "cpu_ms": {"0.25": [], "0.01": []}, "wall_ms": {"0.25": [], "0.01": []}}
    timed = {"0.25": feeds(preds[0:1], 0.25, 0.7), "0.01": feeds(preds[2:3], 0.01, 0.7)}
    load_start = round(os.getloadavg()[0], 2)  # other processes on the machine inflate the memory-bound K x K part
    for r in range(args.rounds):
        for label in (list(rows) if r % 2 == 0 else list(rows)[::-1]):
            for key, feed in timed.items():
                s = sessions[label]
                s.run(None, feed)
                for _ in range(5):
                    t0, w0 = time.thread_time(), time.perf_counter()
                    s.run(None, feed)
                    rows[label]["cpu_ms"][key].append((time.thread_time() - t0) * 1e3)
                    rows[label]["wall_ms"][key].append((time.perf_counter() - w0) * 1e3)
        print(f"round {r + 1}/{args.rounds}", flush=True)
    for row in rows.values():
        row["cpu_min_ms"] = {key: round(float(np.min(v)), 2) for key, v in row["cpu_ms"].items()}
        for kind in ("cpu_ms", "wall_ms"):
            row[kind] = {key: round(float(np.median(v)), 2) for key, v in row[kind].items()}
    result = {"rounds": args.rounds, "baseline": args.baseline if baseline is not None else None,
              "threads": 1, "cores": os.cpu_count(), "load_average_1min": [load_start, round(os.getloadavg()[0], 2)],
              "max_det": 300, "inputs": figures, "configs": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_nms.json").write_text(json.dumps(result, indent=2) + "\n")
    render(result)


def render(result: dict[str, Any]) -> None:
    """bench_nms.md from the JSON results."""
    inputs = list(result["inputs"])
    lines = ["# In-graph NMS: cost of the post-processing alone, and exactness against greedy NMS", "",
             "yolo11n's raw predictions (box + 80 class rows, 8400 anchors) on real frames: two vtest frames, and a "
             "640x640 mosaic of 20 vtest frames (about 200 pedestrians). max_det 300, IoU 0.7 unless noted.", "",
             "| input | anchors above conf | kept by greedy NMS | K needed for exact rows | chain depth (whole / "
             f"per block of {DEFAULT_BLOCK}) |", "|---|---|---|---|---|"]
    for label, f in result["inputs"].items():
        lines.append(f"| {label} | {f['above_conf']} | {f['greedy_kept']} | {f['k_needed']} | "
                     f"{f['chain_depth']} / {f['chain_depth_per_block']} |")
    load = result.get("load_average_1min", ["?", "?"])
    lines += ["", f"ONNX Runtime, batch 1, 1 thread, {result['rounds']} interleaved rounds of 5 calls, {result.get('cores')} "
              f"cores, 1-minute load average {load[0]} at the start and {load[1]} at the end. ms: CPU time of "
              "the calling thread per call, median (min), then wall-clock median; on a shared machine the min is "
              "the least disturbed. exact: the rows equal plain greedy NMS over all candidates, bit for bit; "
              "nms_limits in brackets (the baseline has none).", "",
              "| configuration | ms @ conf 0.25 (vtest): cpu (min), wall | ms @ conf 0.01 (crowd): cpu (min), wall | "
              + " | ".join(f"exact: {i}" for i in inputs) + " |",
              "|---|---|---|" + "---|" * len(inputs)]
    for label, r in result["configs"].items():
        cells = [f"{'yes' if r['exact'][i] else 'NO'}" + (f" [{r['nms_limits'][i]}]" if r["nms_limits"][i] is not None
                                                          else "") for i in inputs]
        ms = [f"{r['cpu_ms'][c]} ({r['cpu_min_ms'][c]}), {r['wall_ms'][c]}" for c in ("0.25", "0.01")]
        lines.append(f"| {label} | {ms[0]} | {ms[1]} | " + " | ".join(cells) + " |")
    (RESULTS / "bench_nms.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
