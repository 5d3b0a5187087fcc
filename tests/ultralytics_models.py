"""Ultralytics pose / OBB / classify models from their YAML, made meaningful on real frames.

No trained checkpoint of these heads ships offline. The architecture is built with random
weights; every BatchNorm's statistics are re-estimated on real frames fed exactly as
Ultralytics feeds them (letterbox /255, or its classify transforms), so activations vary with
the picture. Detection heads are initialised for training (class bias ~ -10: nothing scores
above any useful conf); their last class convolution is rescaled to logits of std 2 and its
bias set so that about `candidates` anchor scores per frame pass conf, the keypoint head's
last convolution to outputs of std 1. Saved as Ultralytics saves checkpoints (half weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgevision.manifest import Preprocess
from edgevision.preprocess import preprocess


def _inputs(frames: list[np.ndarray], imgsz: int, pre: Preprocess) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([preprocess(f, (imgsz, imgsz), pre)[0] for f in frames]))


def _recalibrate(model: Any, x: torch.Tensor) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 4):
            model(x[i : i + 4])
    model.eval()


def _scale_last(convs: list[Any], outputs: torch.Tensor, std: float) -> None:
    with torch.no_grad():
        for conv in convs:
            conv.bias.zero_()
        factor = std / float(outputs.std())
        for conv in convs:
            conv.weight *= factor


def _head_outputs(model: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The head's raw training-mode outputs (class logits "scores", "kpts", ...) on x."""
    head = model.model[-1]
    head.train()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        head.eval()


def yolo_task_checkpoint(task: str, frames: list[np.ndarray], path: Path, imgsz: int = 320, nc: int = 3,
                         candidates: float = 40.0, conf: float = 0.25, seed: int = 0,
                         kpt_shape: tuple[int, int] = (17, 3)) -> Path:
    """A YOLO11n `task` ("pose", "obb", "classify") checkpoint at `path` (see the module docstring)."""
    from ultralytics.nn.tasks import ClassificationModel, OBBModel, PoseModel

    torch.manual_seed(seed)
    if task == "classify":
        from converters.families.ultralytics_cls import classify_preprocess

        model = ClassificationModel("yolo11n-cls.yaml", nc=nc, verbose=False)
        _recalibrate(model, _inputs(frames, imgsz, classify_preprocess(imgsz)))
        with torch.no_grad():  # logits of std 2: probabilities that differ between frames
            logits = model.model[-1].linear
            model.model[-1].linear = torch.nn.Identity()
            feats = model(_inputs(frames, imgsz, classify_preprocess(imgsz)))
            feats = feats[1] if isinstance(feats, tuple) else feats
            model.model[-1].linear = logits
            _scale_last([logits], logits(feats), 2.0)
    else:
        model = (PoseModel("yolo11n-pose.yaml", nc=nc, data_kpt_shape=kpt_shape, verbose=False) if task == "pose"
                 else OBBModel("yolo11n-obb.yaml", nc=nc, verbose=False))
        x = _inputs(frames, imgsz, Preprocess())
        _recalibrate(model, x)
        head = model.model[-1]
        out = _head_outputs(model, x)
        _scale_last([branch[-1] for branch in head.cv3], out["scores"], 2.0)
        if task == "pose":
            _scale_last([branch[-1] for branch in head.cv4], out["kpts"], 1.0)
        raw = _head_outputs(model, x)["scores"]  # [B, C, N], biases zero now
        lo, hi = -20.0, 20.0
        for _ in range(40):  # bisect the class bias: about `candidates` anchors per frame above conf
            b = (lo + hi) / 2
            if float((torch.sigmoid(raw + b).amax(1) > conf).sum()) / len(x) > candidates:
                hi = b
            else:
                lo = b
        with torch.no_grad():
            for branch in head.cv3:
                branch[-1].bias.fill_((lo + hi) / 2)
    model.names = {0: "person"} if task == "pose" and nc == 1 else {i: f"class{i}" for i in range(nc)}
    torch.save({"model": model.eval().half(), "train_args": {"task": task, "imgsz": imgsz}}, path)
    return path
