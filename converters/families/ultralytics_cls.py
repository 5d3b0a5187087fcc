"""Ultralytics YOLO classifiers (Classify head, -cls checkpoints) -> edgevision's `classify` graph.

The head in export mode already ends in a softmax; the graph adds top-k. Pre-processing is
Ultralytics' classify predictor's (classify_transforms, used for checkpoints without their
own transforms and whenever the size differs): PIL bilinear resize of the shorter side to
imgsz (antialiased, on uint8: resize_dtype "uint8-pil"), centre crop imgsz x imgsz, RGB, /255,
mean 0 / std 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_IMAGES, OUT_TOPK_IDS, OUT_TOPK_PROBS, Manifest, Preprocess, sha256_file
from edgevision.results import Classification, Result

from .base import Checkpoint, Exportable, Request
from .ultralytics_export import yolo_names
from .ultralytics_shared import export_ready

torch = lazy_import("torch")

DEFAULT_IMGSZ = 224  # Ultralytics' classify default when the checkpoint records none


class ProbsTopK(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] -> (top-k class ids int32[B, k], probabilities float32[B, k]);
    the model already outputs probabilities (no second softmax, unlike torchvision's Classifier)."""

    def __init__(self, model: Any, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, images: Any) -> tuple[Any, Any]:
        out = self.model(images)
        probs = out[0] if isinstance(out, (tuple, list)) else out
        top, ids = probs.topk(self.k, dim=-1)
        return ids.to(torch.int32), top


def classify_preprocess(size: int) -> Preprocess:
    """Ultralytics' classify_transforms(size) as the runtime's declared pre-processing."""
    return Preprocess(resize="center_crop", resize_size=size, antialias=True, interpolation="linear",
                      resize_dtype="uint8-pil", color="RGB", scale=1 / 255.0)


def ultralytics_classify_reference(model: Any, size: int, k: int, names: tuple[str, ...]) -> Any:
    """Ultralytics' own transforms (PIL) and the PyTorch model, per frame -> Classification."""
    def run(frames: Sequence[np.ndarray]) -> list[Result]:
        from PIL import Image
        from ultralytics.data.augment import classify_transforms

        tf = classify_transforms(size)
        out: list[Result] = []
        with torch.no_grad():
            for frame in frames:
                x = tf(Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])))
                probs = model(x[None])
                probs = (probs[0] if isinstance(probs, (tuple, list)) else probs)[0]
                p, i = probs.topk(k)
                out.append(Classification(i.numpy(), p.numpy(), names))
        return out
    return run


def prepare_classify(ckpt: Checkpoint, req: Request) -> Exportable:
    model = export_ready(ckpt.obj, ckpt.path)
    names = yolo_names(model)
    args = ckpt.obj.get("train_args") or {}
    if req.imgsz is not None and req.imgsz[0] != req.imgsz[1]:
        raise EdgeVisionError(f"--imgsz {req.imgsz[0]}x{req.imgsz[1]}: an Ultralytics classifier takes a square "
                              "input (its transforms centre-crop a square)")
    size = req.imgsz[0] if req.imgsz else int(args.get("imgsz") or DEFAULT_IMGSZ)
    k = min(5, len(names))
    manifest = Manifest(task="classify", class_names=names, input_hw=(size, size), max_det=k, topk=k,
                        preprocess=classify_preprocess(size), family="ultralytics-yolo",
                        source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "ultralytics"})
    return Exportable(ProbsTopK(model, k).eval(), (torch.rand(2, 3, size, size),), [IN_IMAGES],
                      [OUT_TOPK_IDS, OUT_TOPK_PROBS], manifest, ultralytics_classify_reference(model, size, k, names))
