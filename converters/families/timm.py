"""Family: timm image classifiers by name, `--arch timm:NAME` (where timm is installed).

A state_dict (or a TorchScript file's own state_dict) is loaded into `timm.create_model(NAME,
pretrained=False, num_classes=N)`, so no code from the file runs and nothing is downloaded.
The graph is the network + softmax + top-k (the torchvision family's Classifier module).

Pre-processing is what timm's eval transform does with the model's pretrained config
(`resolve_data_config` + `create_transform`): PIL resize of the shorter side to
floor(img_size / crop_pct) with the config's interpolation (PIL's antialiased filters on uint8,
which edgevision.resample reproduces bit for bit: resize_dtype "uint8-pil"), centre crop, /255, mean/std. Only the
default "center" crop mode on a square input is taken; others are refused in one sentence.
"""
from __future__ import annotations

import math
from typing import Any

from edgevision._lazy import available, lazy_import
from edgevision.errors import EdgeVisionError, closest
from edgevision.manifest import IN_IMAGES, OUT_TOPK_IDS, OUT_TOPK_PROBS, Manifest, Preprocess, sha256_file

from .base import Checkpoint, Exportable, Request
from .torchvision import Classifier, class_names_for, classify_reference, head_size, load_weights

torch = lazy_import("torch")

_INTERP = {"bilinear": "linear", "bicubic": "cubic"}  # timm's names -> the manifest's (PIL's filters)


def timm_model(name: str, ckpt: Checkpoint, num_classes: int | None) -> tuple[Any, int]:
    """timm builder + the checkpoint's weights -> (eval model, number of classes)."""
    if not available("timm"):
        raise EdgeVisionError("--arch timm:NAME needs timm: pip install 'edgevision[timm]'")
    timm = lazy_import("timm")
    if name not in timm.list_models():
        raise EdgeVisionError(f"timm has no model {name!r}{closest(name, timm.list_models())}")
    if ckpt.kind == "module":
        model = ckpt.obj
        return model.eval(), num_classes or int(model.num_classes)
    state = ckpt.tensors(f"timm:{name}")
    if num_classes is None:
        probe = timm.create_model(name, pretrained=False)
        num_classes = head_size(state, probe) or int(probe.num_classes)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    return load_weights(model, state, ckpt.path, f"timm:{name}", num_classes).eval(), int(num_classes)


def eval_config(model: Any) -> dict[str, Any]:
    """timm's resolved eval data config of the model (input_size, interpolation, mean, std,
    crop_pct, crop_mode), checked to be one edgevision's runtime reproduces."""
    data = lazy_import("timm.data")
    cfg = data.resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    mode = cfg.get("crop_mode") or "center"
    if mode != "center" or h != w:
        raise EdgeVisionError(f"timm crop mode {mode!r} at {h}x{w}: edgevision takes timm's default centre crop "
                              "of a square input")
    if cfg["interpolation"] not in _INTERP:
        raise EdgeVisionError(f"timm interpolation {cfg['interpolation']!r}: edgevision takes {', '.join(_INTERP)}")
    return cfg


def timm_preset(cfg: dict[str, Any]) -> Any:
    """uint8[3, H, W] RGB tensor -> float32[3, h, w], through timm's own eval transform on a PIL
    image (what a timm user runs)."""
    data = lazy_import("timm.data")
    image = lazy_import("PIL.Image")
    transform = data.create_transform(**cfg)
    return lambda rgb: transform(image.fromarray(rgb.permute(1, 2, 0).numpy()))


class TimmFamily:
    """timm image classifiers by name (state_dict or TorchScript + --arch timm:NAME)."""

    name = "timm"
    summary = "timm image classifiers as a state_dict or TorchScript file with --arch timm:NAME"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return req.arch_name("timm") is not None

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        name = req.arch_name("timm") or ""
        if req.task not in (None, "classify"):
            raise EdgeVisionError(f"timm:{name} is an image classifier; --task {req.task} does not apply")
        model, nc = timm_model(name, ckpt, req.num_classes)
        cfg = eval_config(model)
        size = int(cfg["input_size"][1])
        if req.imgsz is not None and tuple(req.imgsz) != (size, size):
            raise EdgeVisionError(f"timm:{name} evaluates at {size}x{size}; --imgsz does not apply")
        names = class_names_for(req, None, nc)
        k = min(5, nc)
        pre = Preprocess(resize="center_crop", resize_size=int(math.floor(size / cfg["crop_pct"])), antialias=True,
                         interpolation=_INTERP[cfg["interpolation"]], resize_dtype="uint8-pil", color="RGB",
                         scale=1 / 255.0, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
        manifest = Manifest(task="classify", class_names=names, input_hw=(size, size), max_det=k, topk=k,
                            preprocess=pre, family="timm",
                            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": f"timm:{name}"},
                            extra={"arch": name, "crop_pct": float(cfg["crop_pct"])})
        user_model = ckpt.obj.eval() if ckpt.kind == "torchscript" else model
        reference = classify_reference(user_model, timm_preset(cfg), k, names)
        return Exportable(Classifier(model, k).eval(), (torch.rand(2, 3, size, size),), [IN_IMAGES],
                          [OUT_TOPK_IDS, OUT_TOPK_PROBS], manifest, reference)

