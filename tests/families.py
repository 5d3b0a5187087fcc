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


def _inputs(frames: list[np.ndarray], size: tuple[int, int], imagenet: bool = True) -> Any:
    """float32[N, 3, H, W]: frames as RGB, /255, resized, then ImageNet mean/std unless
    imagenet=False (YOLO's input is /255 only)."""
    mean = torch.tensor([0.485, 0.456, 0.406] if imagenet else [0.0] * 3)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225] if imagenet else [1.0] * 3)[:, None, None]
    return torch.stack([
        (torch.nn.functional.interpolate(torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255,
                                         size=size, mode="bilinear", antialias=True)[0] - mean) / std
        for f in frames
    ])


def recalibrate_bn(model: Any, frames: list[np.ndarray], size: tuple[int, int], key: str | None = None,
                   imagenet: bool = True) -> Any:
    """Re-estimate every BatchNorm's running statistics on real frames (RGB, /255, then ImageNet
    mean/std unless imagenet=False)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    x = _inputs(frames, size, imagenet)
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 4):
            model(x[i : i + 4])
    return model.eval()


def center_logits(model: Any, frames: list[np.ndarray], size: tuple[int, int], logit_std: float = 2.0) -> Any:
    """Give a random head the margins a trained one has. A random head's logits are mostly one
    frame-independent vector (its weights times the mean feature) whose nearly equal classes
    tie, so rounding noise (FP16, INT8) flips the top class. The last layer's weights lose
    their component along the mean input feature over the frames (and pixels), the bias
    centres what is left, and the layer is scaled so the logits have std `logit_std`: they
    vary with the picture, as a trained model's do, with no large constant cancelled in the
    graph (which would turn FP16 rounding of a big number into a big error of a small one).
    The last layer: a classifier's last Linear, or a segmenter's last Conv2d."""
    last = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    seen: list[Any] = []
    hook = last.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    x = _inputs(frames, size)

    def logits() -> Any:
        out = model(x)
        y = out["out"] if isinstance(out, dict) else out
        return y.transpose(0, 1).reshape(y.shape[1], -1)  # [C, N * H * W]

    with torch.no_grad():
        logits()
        hook.remove()
        feats = seen[0].transpose(0, 1).reshape(seen[0].shape[1], -1)  # [K, N * H * W]
        mean = feats.mean(1)
        w = last.weight.view(last.weight.shape[0], -1)  # [C, K] (1x1 conv or Linear)
        w -= (w @ mean)[:, None] * mean[None, :] / float(mean @ mean)
        y = logits()
        last.bias -= y.mean(1)
        factor = logit_std / float((y - y.mean(1, keepdim=True)).std())
        last.weight *= factor
        last.bias *= factor
    return model


def torchvision_state_dict(name: str, frames: list[np.ndarray], path: Path, size: tuple[int, int],
                           seed: int = 0, logit_std: float | None = None, **kwargs: Any) -> Path:
    """A state_dict of torchvision's NAME with seeded random weights and real-frame BN statistics
    (and, with logit_std, a centred head: see center_logits)."""
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    recalibrate_bn(model, frames, size)
    if logit_std is not None:
        center_logits(model, frames, size, logit_std)
    torch.save(model.state_dict(), path)
    return path


def torchvision_detector_state_dict(name: str, frames: list[np.ndarray], path: Path, candidates: int = 200,
                                    seed: int = 0, cls_std: float = 1.0, box_std: float = 0.2,
                                    **kwargs: Any) -> Path:
    """A state_dict of torchvision's one-stage detector NAME (RetinaNet, FCOS, SSD) whose random
    weights make detections that vary with the picture, for the conversion tests.

    Every BatchNorm's statistics are re-estimated on real frames (at the model's own transform
    size). torchvision initialises the heads for training from scratch: class logits of std
    ~0.02 around a prior (RetinaNet/FCOS: bias -log(99), every score ~0.01, nothing passes
    score_thresh) and box deltas ~0 (every box its anchor). The heads' last convolutions are
    rescaled so class logits have std `cls_std` and box deltas std `box_std` on these frames,
    and the class bias (SSD: the background logit's) set so that about `candidates`
    anchor-class pairs per frame pass the model's score_thresh.
    kwargs: the builder's (num_classes, min_size, max_size, ...).
    """
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kwargs)
    x = [torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255 for f in frames]
    with torch.no_grad():
        images, _ = model.transform(x)  # normalised, resized and padded as the model sees frames
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 4):
            model.head(list(model.backbone(images.tensors[i : i + 4]).values()))
    model.eval()
    head = model.head
    ssd = not hasattr(head.classification_head, "cls_logits")

    def last(m: Any) -> Any:
        return m[-1] if isinstance(m, torch.nn.Sequential) else m

    if ssd:
        cls = [last(m) for m in head.classification_head.module_list]
        reg = [last(m) for m in head.regression_head.module_list]
        nc = head.classification_head.num_columns
    else:
        cls, reg = [head.classification_head.cls_logits], [head.regression_head.bbox_reg]
    ctr = getattr(head.regression_head, "bbox_ctrness", None)
    with torch.no_grad():
        def outputs() -> dict[str, Any]:
            return head(list(model.backbone(images.tensors).values()))

        out = outputs()
        for convs, key, std in ((cls, "cls_logits", cls_std), (reg, "bbox_regression", box_std),
                                ([ctr] if ctr is not None else [], "bbox_ctrness", 1.0)):
            for conv in convs:
                conv.bias.zero_()
            if convs:
                factor = std / float(out[key].std())
                for conv in convs:
                    conv.weight *= factor
        out = outputs()
        raw = out["cls_logits"]  # biases are zero now

        def count(b: float) -> float:
            if ssd:  # softmax with background 0: b is the background logit
                s = torch.softmax(torch.cat([raw[..., :1] + b, raw[..., 1:]], -1), -1)[..., 1:]
            else:
                s = torch.sigmoid(raw + b)
                if ctr is not None:  # FCOS: sqrt(sigmoid(cls) * sigmoid(centerness))
                    s = torch.sqrt(s * torch.sigmoid(out["bbox_ctrness"]))
            return float((s > model.score_thresh).sum()) / len(x)

        lo, hi = -20.0, 20.0
        more_when_higher = count(hi) > count(lo)
        for _ in range(40):  # bisect the bias: ~`candidates` scores per frame above score_thresh
            b = (lo + hi) / 2
            if (count(b) > candidates) == more_when_higher:
                hi = b
            else:
                lo = b
        b = (lo + hi) / 2
        if ssd:
            for conv in cls:
                conv.bias.view(-1, nc)[:, 0] = b  # channels are (anchor, class)
        else:
            cls[0].bias.fill_(b)
    torch.save(model.state_dict(), path)
    return path


def rcnn_state_dict(name: str, frames: list[np.ndarray], path: Path, candidates: int = 150, seed: int = 0,
                    obj_std: float = 2.0, rpn_box_std: float = 0.1, cls_std: float = 1.5, box_std: float = 0.1,
                    **kwargs: Any) -> Path:
    """A state_dict of torchvision's Faster / Mask R-CNN NAME whose random weights make proposals
    and detections that vary with the picture, for the conversion tests.

    BatchNorm statistics (backbone, and v2's box and mask heads) are re-estimated on real frames
    at the model's transform size. torchvision initialises the RPN's objectness and box convs
    with std 0.01 (every objectness ~0.5, every proposal its anchor): they are rescaled to std
    `obj_std` / `rpn_box_std` on these frames. The box predictor's class logits are rescaled to
    std `cls_std`, its box deltas to `box_std`, and the background bias set so that about
    `candidates` (proposal, class) pairs per frame pass the model's box score_thresh.
    kwargs: the builder's (num_classes, min_size, max_size, ...).
    """
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kwargs)
    x = [torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255 for f in frames]
    with torch.no_grad():
        images, _ = model.transform(x)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    heads, rpn = model.roi_heads, model.rpn
    with torch.no_grad():
        model.backbone.train()
        for i in range(0, len(x), 4):
            model.backbone(images.tensors[i : i + 4])
        model.eval()
        feats = model.backbone(images.tensors)
        obj, deltas = rpn.head(list(feats.values()))
        for conv, outs, std in ((rpn.head.cls_logits, obj, obj_std), (rpn.head.bbox_pred, deltas, rpn_box_std)):
            conv.bias.zero_()
            conv.weight *= std / float(torch.cat([o.flatten() for o in outs]).std())
        proposals, _ = rpn(images, feats)
        pooled = heads.box_roi_pool(feats, proposals, images.image_sizes)
        def has_bn(m: Any) -> bool:
            return any(isinstance(b, torch.nn.modules.batchnorm._BatchNorm) for b in m.modules())

        if has_bn(heads.box_head):  # v2's conv head (TwoMLPHead has none)
            heads.box_head.train()
            heads.box_head(pooled)
            heads.box_head.eval()
        if heads.has_mask() and has_bn(heads.mask_head):  # v2: on the 100 best proposals per frame
            best = [p[:100] for p in proposals]
            heads.mask_head.train()
            heads.mask_head(heads.mask_roi_pool(feats, best, images.image_sizes))
            heads.mask_head.eval()
        feat = heads.box_head(pooled)
        pred = heads.box_predictor
        for lin, std in ((pred.cls_score, cls_std), (pred.bbox_pred, box_std)):
            lin.bias.zero_()
            lin.weight *= std / float(lin(feat).std())
        raw = pred.cls_score(feat)  # biases are zero now

        def count(b: float) -> float:
            s = torch.softmax(torch.cat([raw[:, :1] + b, raw[:, 1:]], 1), 1)[:, 1:]
            return float((s > heads.score_thresh).sum()) / len(x)

        lo, hi = -20.0, 20.0
        for _ in range(40):  # bisect the background bias: ~`candidates` pairs per frame above score_thresh
            b = (lo + hi) / 2
            if count(b) > candidates:
                lo = b
            else:
                hi = b
        pred.cls_score.bias[0] = (lo + hi) / 2
    torch.save(model.state_dict(), path)
    return path


def batch_and_single(model: Any, frames: list[np.ndarray], box_atol: float = 1e-3) -> list[tuple[Any, Any]]:
    """A detector's batch of frames against one run per frame: the same detections (count > 0,
    class ids, boxes within box_atol px). Returns the (batch, single) pairs for further checks."""
    pairs = list(zip(model.predict(frames), (model(f) for f in frames)))
    for got, single in pairs:
        assert len(got) == len(single) > 0
        assert np.allclose(got.xyxy, single.xyxy, atol=box_atol) and np.array_equal(got.class_id, single.class_id)
    return pairs


def torchvision_detector(name: str, state_dict: Path, **kwargs: Any) -> Any:
    """torchvision's detector NAME as its user builds it from a state_dict (no pretrained parts)."""
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kwargs)
    model.load_state_dict(torch.load(state_dict, weights_only=True))
    return model.eval()
