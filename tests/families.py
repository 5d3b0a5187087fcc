"""Torchvision models with random weights made meaningful, for the family tests.

No pretrained weights can be downloaded here. A randomly initialised network's BatchNorm
statistics are those of random data, so its activations on real frames blow up or die;
re-estimating them on real frames (train-mode forward passes, cumulative average) gives
a network whose outputs vary with the picture, as a trained one's do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision


def recalibrate_bn(model: Any, frames: list[np.ndarray], size: tuple[int, int], key: str | None = None) -> Any:
    """Re-estimate every BatchNorm's running statistics on real frames (RGB, /255, ImageNet mean/std)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x = torch.stack([
        (torch.nn.functional.interpolate(torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255,
                                         size=size, mode="bilinear", antialias=True)[0] - mean) / std
        for f in frames
    ])
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 4):
            model(x[i : i + 4])
    return model.eval()


def torchvision_state_dict(name: str, frames: list[np.ndarray], path: Path, size: tuple[int, int],
                           seed: int = 0, **kwargs: Any) -> Path:
    """A state_dict of torchvision's NAME with seeded random weights and real-frame BN statistics."""
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    recalibrate_bn(model, frames, size)
    torch.save(model.state_dict(), path)
    return path
