"""edgevision vs Ultralytics' predictor on Ultralytics' own ONNX export, on every frame of
vtest.avi (640x640, conf 0.25, IoU 0.7). Writes benchmarks/results/agreement_ultralytics.json.

    .venv/bin/python benchmarks/agreement_ultralytics.py [--frames N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edgevision  # noqa: E402
from benchmarks.ultralytics_ref import both_models, load_predictor, predict  # noqa: E402
from demos.assets import VTEST  # noqa: E402
from edgevision.metrics import agreement  # noqa: E402
from edgevision.sources import open_source  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=0, help="0 = all")
    ap.add_argument("--work", default="runs/bench")
    args = ap.parse_args()
    work = Path(args.work)
    ours_path, ref_path = both_models(work)
    ours = edgevision.load(ours_path, masks=False)
    ref = load_predictor(ref_path)
    got, want = [], []
    t0 = time.time()
    with open_source(str(VTEST)) as src:
        for frame in src:
            if args.frames and frame.index >= args.frames:
                break
            got.append(ours(frame.image))
            want.append(predict(ref, frame.image))
    a = agreement(got, want)
    print(a.summary())
    out = Path(__file__).parent / "results" / "agreement_ultralytics.json"
    out.write_text(json.dumps({"video": str(VTEST), "seconds": round(time.time() - t0, 1), **asdict(a)}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
