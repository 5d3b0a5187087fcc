"""Test assets: the real demo model and video (demos/assets.py), and a real detector made from them."""
from __future__ import annotations

from pathlib import Path

from demos.assets import VTEST, demo_checkpoint

__all__ = ["VTEST", "demo_checkpoint", "make_detect_checkpoint"]


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
