"""Family: torchvision architectures by name (`--arch torchvision:NAME`).

A state_dict is loaded into torchvision's own builder (`torchvision.models.get_model(NAME,
weights=None, num_classes=N)`), so no code from the file runs. The task follows the
builder's package: classification models become `classify` graphs (softmax and top-k in the
graph), segmentation models `semantic` graphs (arg-max class map in the graph, the aux head
dropped). Pre-processing is what the architecture's weights declare (torchvision's presets:
resize with antialiasing, centre crop, mean/std), reproduced bit for bit by the runtime.
Detection builders are taken by converters.families.torchvision_detect.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError, closest
from edgevision.manifest import IN_IMAGES, OUT_CLASS_MAP, OUT_TOPK_IDS, OUT_TOPK_PROBS, Manifest, Preprocess, sha256_file
from edgevision.preprocess import fit_size
from edgevision.results import Classification, ClassMap, Result

from .base import Checkpoint, Exportable, Request

torch = lazy_import("torch")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_INTERP = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


def task_of(name: str) -> str:
    """'classify', 'semantic' or 'detect' for a torchvision builder name (EdgeVisionError if none)."""
    models = lazy_import("torchvision.models")
    if name in models.list_models(module=models.segmentation):
        return "semantic"
    if name in models.list_models(module=models.detection):
        return "detect"
    if name in models.list_models(module=models.quantization) or name in models.list_models(module=models.video) \
            or name in models.list_models(module=models.optical_flow):
        raise EdgeVisionError(f"torchvision:{name} is not an image classifier, detector or segmenter")
    if name in models.list_models(module=models):
        return "classify"
    known = models.list_models(module=models) + models.list_models(module=models.segmentation) \
        + models.list_models(module=models.detection)
    raise EdgeVisionError(f"torchvision has no model {name!r}{closest(name, known)}")


def default_weights(name: str) -> Any:
    """The architecture's first weights enum member (its meta and preset), or None."""
    models = lazy_import("torchvision.models")
    try:
        return next(iter(models.get_model_weights(name)))
    except (ValueError, StopIteration):
        return None


def head_size(state: dict[str, Any], model: Any) -> int | None:
    """Classes of the checkpoint's head: the first dim of the state_dict tensors whose shape
    differs from the default-built model's (the classifier's weight and bias)."""
    own = model.state_dict()
    dims = {tuple(v.shape)[0] for k, v in state.items() if k in own and v.ndim and v.shape != own[k].shape}
    return dims.pop() if len(dims) == 1 else None


def build(name: str, task: str, ckpt: Checkpoint, num_classes: int | None) -> tuple[Any, int]:
    """torchvision builder + the checkpoint's weights -> (eval module, number of classes)."""
    models = lazy_import("torchvision.models")
    if ckpt.kind == "module":
        model = ckpt.obj
        nc = num_classes or int(getattr(model, "num_classes", 0) or 0) or None
        if nc is None:
            raise EdgeVisionError("give --num-classes for a whole pickled model")
        return model.eval(), nc
    state = ckpt.tensors(f"torchvision:{name}")
    extra: dict[str, Any] = {}
    if task == "semantic":
        extra["aux_loss"] = any(k.startswith("aux_classifier.") for k in state)
        extra["weights_backbone"] = None
    if num_classes is None:
        probe = models.get_model(name, weights=None, **extra)
        num_classes = head_size(state, probe) or _default_classes(probe)
    model = load_weights(models.get_model(name, weights=None, num_classes=num_classes, **extra), state, ckpt.path,
                         f"torchvision:{name}", num_classes)
    if task == "semantic":
        model.aux_classifier = None  # the aux head only serves training
    return model.eval(), int(num_classes)


def load_weights(model: Any, state: dict[str, Any], path: Path, arch: str, num_classes: int) -> Any:
    """A state_dict (from the file at path) into a freshly built model (arch: how the user named
    it, e.g. "torchvision:resnet18"), strictly; a mismatch is one sentence naming the first
    missing, unexpected and differently shaped tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = [f"{label} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs for", shapes)) if keys]
    if parts:
        raise EdgeVisionError(f"{path} does not fit {arch} with {num_classes} classes: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model


def _default_classes(model: Any) -> int:
    for mod in reversed(list(model.modules())):
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            return int(mod.out_features if isinstance(mod, torch.nn.Linear) else mod.out_channels)
    raise EdgeVisionError("cannot tell the number of classes; pass --num-classes")


def class_names_for(req: Request, weights: Any, nc: int) -> tuple[str, ...]:
    if req.class_names is not None:
        if len(req.class_names) != nc:
            raise EdgeVisionError(f"--class-names lists {len(req.class_names)} names, the model has {nc} classes")
        return req.class_names
    cats = list(weights.meta.get("categories", [])) if weights is not None else []
    return tuple(cats) if len(cats) == nc else tuple(f"class {i}" for i in range(nc))


def _preset(weights: Any, task: str) -> dict[str, Any]:
    """The weights' own preset (resize, crop, interpolation, mean/std), or torchvision's defaults."""
    t = weights.transforms() if weights is not None else None
    interp = getattr(getattr(t, "interpolation", None), "value", "bilinear")
    return {
        "resize_size": int((getattr(t, "resize_size", None) or [256 if task == "classify" else 520])[0]),
        "crop_size": int((getattr(t, "crop_size", None) or [224])[0]),
        "interpolation": _INTERP.get(interp, "linear"),
        "mean": tuple(getattr(t, "mean", IMAGENET_MEAN)),
        "std": tuple(getattr(t, "std", IMAGENET_STD)),
    }


def to_tensor_rgb(frame: np.ndarray) -> Any:
    """uint8[H, W, 3] BGR -> uint8[3, H, W] RGB tensor, what a torchvision user feeds its presets."""
    return torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1).contiguous()


class Classifier(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] -> (top-k class ids int32[B, k], probabilities float32[B, k])."""

    def __init__(self, model: Any, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, images: Any) -> tuple[Any, Any]:
        probs, ids = self.model(images).softmax(-1).topk(self.k, dim=-1)
        return ids.to(torch.int32), probs


class SemanticArgmax(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] -> class map int32[B, H, W] (arg-max of the "out" logits)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Any) -> Any:
        out = self.model(images)
        logits = out["out"] if isinstance(out, dict) else out
        return logits.argmax(1).to(torch.int32)


def classify_reference(model: Any, preset: Any, k: int, names: tuple[str, ...]) -> Any:
    def run(frames: Sequence[np.ndarray]) -> list[Result]:
        out: list[Result] = []
        with torch.no_grad():
            for frame in frames:
                probs = model(preset(to_tensor_rgb(frame))[None]).softmax(-1)[0]
                p, i = probs.topk(k)
                out.append(Classification(i.numpy(), p.numpy(), names))
        return out
    return run


def semantic_reference(model: Any, p: dict[str, Any], names: tuple[str, ...]) -> Any:
    """torchvision's SemanticSegmentation preset (shorter side resized, antialiased; no padding),
    arg-max at that size, then nearest (pixel centres) back to the frame."""
    presets = lazy_import("torchvision.transforms._presets")
    preset = presets.SemanticSegmentation(resize_size=p["resize_size"], mean=p["mean"], std=p["std"],
                                          interpolation=_interp_mode(p["interpolation"]))

    def run(frames: Sequence[np.ndarray]) -> list[Result]:
        out: list[Result] = []
        with torch.no_grad():
            for frame in frames:
                x = preset(to_tensor_rgb(frame))
                cmap = model(x[None])["out"].argmax(1, keepdim=True).float()
                full = torch.nn.functional.interpolate(cmap, size=frame.shape[:2], mode="nearest-exact")
                out.append(ClassMap(full[0, 0].to(torch.int32).numpy(), names))
        return out
    return run


class TorchvisionFamily:
    """torchvision classifiers and semantic segmenters by builder name (state_dict + --arch)."""

    name = "torchvision"
    summary = ("torchvision classifiers and semantic segmenters (FCN, DeepLabV3, LRASPP) as a state_dict "
               "with --arch torchvision:NAME")

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        name = req.arch_name("torchvision")
        return name is not None and task_of(name) in ("classify", "semantic")

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        name = req.arch_name("torchvision") or ""
        task = task_of(name)
        model, nc = build(name, task, ckpt, req.num_classes)
        # What the user runs: a TorchScript file is its own reference (it also proves that its
        # weights landed in the right places of the rebuilt architecture).
        user_model = ckpt.obj.eval() if ckpt.kind == "torchscript" else model
        weights = default_weights(name)
        names = class_names_for(req, weights, nc)
        p = _preset(weights, task)
        source = {"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": f"torchvision:{name}"}
        # torchvision's presets resize uint8 tensors in float32 and round back (v1 functional)
        common = dict(color="RGB", scale=1 / 255.0, mean=p["mean"], std=p["std"], antialias=True,
                      interpolation=p["interpolation"], resize_dtype="float32-rounded")
        if task == "classify":
            hw = req.imgsz or (p["crop_size"], p["crop_size"])
            k = min(5, nc)
            pre = Preprocess(resize="center_crop", resize_size=p["resize_size"], **common)
            manifest = Manifest(task="classify", class_names=names, input_hw=hw, max_det=k, topk=k, preprocess=pre,
                                family="torchvision", source=source, extra={"arch": name})
            presets = lazy_import("torchvision.transforms._presets")
            preset = presets.ImageClassification(crop_size=hw[0], resize_size=p["resize_size"],
                                           interpolation=_interp_mode(p["interpolation"]), mean=p["mean"], std=p["std"])
            return Exportable(
                Classifier(model, k).eval(), (torch.rand(2, 3, *hw),), [IN_IMAGES], [OUT_TOPK_IDS, OUT_TOPK_PROBS],
                manifest, classify_reference(user_model, preset, k, names),
            )
        pre = Preprocess(resize="fit", min_size=p["resize_size"], max_size=0, pad_normalized=True, **common)
        hw = req.imgsz or (fit_size(req.frame_hw, pre) if req.frame_hw
                           else (p["resize_size"], p["resize_size"]))
        manifest = Manifest(task="semantic", class_names=names, input_hw=tuple(hw), max_det=0, preprocess=pre,
                            family="torchvision", source=source, extra={"arch": name, "background": 0})
        return Exportable(
            SemanticArgmax(model).eval(), (torch.rand(2, 3, *hw),), [IN_IMAGES], [OUT_CLASS_MAP], manifest,
            semantic_reference(user_model, p, names),
            notes=[f"input {hw[0]}x{hw[1]}: frames of another aspect are padded (torchvision would not pad)"],
        )


def _interp_mode(name: str) -> Any:
    mode = lazy_import("torchvision.transforms").InterpolationMode
    return mode.BICUBIC if name == "cubic" else mode.BILINEAR
