"""RoIAlign forms (converters/roi_align.py) on ONNX Runtime: Faster R-CNN's box pool (7x7,
sampling 2, C 256) for a batch of 2 images at 320x448 with R boxes each, on the edge-case boxes
of tests/test_roi_align.py. Prints wall ms per call (median of --rounds, after one warm-up run;
the machine may be shared) and the max abs difference to torchvision's MultiScaleRoIAlign.

    .venv/bin/python benchmarks/bench_roi_align.py [--boxes 1000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import onnxruntime as ort

    import tests.test_roi_align as t

    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t.HW = (320, 448)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("gather", "onnx"):
            path, feeds, want = t.export_pool(mode, Path(tmp) / f"{mode}.onnx", r=args.boxes, c=256)
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = sess.run(None, feeds)[0]
            ms = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                sess.run(None, feeds)
                ms.append((time.perf_counter() - start) * 1000)
            print(f"{mode}: {statistics.median(ms):.0f} ms for 2 x {args.boxes} boxes, "
                  f"max abs diff to torchvision {np.abs(got - want.numpy()).max():.2e}")


if __name__ == "__main__":
    main()
