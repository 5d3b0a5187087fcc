"""An RF-DETR checkpoint for the tests, made offline: no trained weights ship here.

RFDETRNano built from rfdetr's own config with random weights (pretrain_weights=None: no
download) at resolution 320, 3 classes. Its normalisation layers are LayerNorms (nothing to
re-estimate). An untrained head scores every query ~0.02; the decoder's class projection is
rescaled on real frames to logits of std 1.5 and its bias set so that about `per_frame`
(query, class) pairs per frame score above conf, as a trained head separates objects from
background. Saved as RF-DETR's trainer saves ({"model", "args", "model_name", "model_config"}).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def rfdetr_checkpoint(frames: list[np.ndarray], path: Path, per_frame: float = 15.0, conf: float = 0.5,
                      seed: int = 0) -> Path:
    from rfdetr import RFDETRNano

    torch.manual_seed(seed)
    rf = RFDETRNano(pretrain_weights=None, num_classes=3, resolution=320, device="cpu")
    net = rf.model.model.eval()
    head = net.class_embed
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach()))
    try:
        for f in frames:
            rf.predict(np.ascontiguousarray(f[:, :, ::-1]), threshold=0.0)
    finally:
        hook.remove()
    x = torch.cat([h.reshape(-1, h.shape[-1]) for h in feats])  # [frames * queries, hidden]
    with torch.no_grad():
        head.bias.zero_()
        head.weight *= 1.5 / float(head(x).std())
        logits = head(x).reshape(len(frames), -1)  # [frames, queries * slots]
        lo, hi = -20.0, 20.0
        for _ in range(40):  # bisect the bias: about per_frame pairs above conf
            b = (lo + hi) / 2
            if float((torch.sigmoid(logits + b) > conf).sum()) / len(frames) > per_frame:
                hi = b
            else:
                lo = b
        head.bias.fill_((lo + hi) / 2)
    cfg = rf.model_config.model_dump(mode="json")
    torch.save({"model": net.state_dict(), "args": {"num_classes": 3, "class_names": ["a", "b", "c"]},
                "model_name": "RFDETRNano", "model_config": cfg}, path)
    return path
