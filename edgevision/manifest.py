"""The manifest an artifact carries about itself.

An ONNX file stores it as JSON under the `edgevision` key of `metadata_props`; a
TensorRT engine stores it in a JSON sidecar beside the plan. Everything the runtime
needs to pre- and post-process frames exactly as the converter did is in here, so the
runtime never needs to know which model family produced the graph.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgeVisionError

METADATA_KEY = "edgevision"
FORMAT_VERSION = 1

# The fixed output layout every converted detector graph produces (batch B, D = max_det).
OUT_BOXES = "boxes"  # float32[B, D, 4], xyxy in network-input pixels
OUT_SCORES = "scores"  # float32[B, D], sorted descending; padding rows are 0
OUT_CLASSES = "class_ids"  # int32[B, D]
OUT_NUM = "num_dets"  # int32[B], rows of each image that are real
OUT_COEFFS = "mask_coeffs"  # float32[B, D, M] (segmenters only)
OUT_PROTOS = "protos"  # float32[B, M, Hp, Wp] (segmenters with prototype masks)
OUT_MASKS = "masks"  # float32[B, D, Hm, Wm] per-detection mask probabilities (segmenters with mask heads)
OUT_CLASS_MAP = "class_map"  # int32[B, H, W] class per input pixel (semantic)
OUT_CLASS_SCORES = "class_scores"  # float32[B, C, H, W] per-class scores (semantic, optional)
OUT_TOPK_IDS = "topk_class_ids"  # int32[B, k], best first (classify)
OUT_TOPK_PROBS = "topk_probs"  # float32[B, k] softmax probabilities, best first (classify)
OUT_KEYPOINTS = "keypoints"  # float32[B, D, K, 3] x, y (input pixels), visibility (pose)
OUT_XYWHR = "xywhr"  # float32[B, D, 5] rotated boxes cx, cy, w, h (input pixels), angle (radians) (obb)
OUT_LIMITS = "nms_limits"  # int32[B], last; bits: 1 candidate cap may cut rows, 2 NMS unconverged; 0 = exact
IN_IMAGES = "images"  # float32[B, 3, H, W]
IN_CONF = "conf_threshold"  # float32[1]
IN_IOU = "iou_threshold"  # float32[1]

# What each task's graph outputs (beyond the optional ones); the runtime decodes by task.
TASKS: dict[str, tuple[str, ...]] = {
    "detect": (OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM),
    "segment": (OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM),  # + protos/mask_coeffs or masks
    "semantic": (OUT_CLASS_MAP,),
    "classify": (OUT_TOPK_IDS, OUT_TOPK_PROBS),
    "pose": (OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM, OUT_KEYPOINTS),
    # xyxy of a rotated box is its axis-aligned bounds, computed by the runtime in frame pixels
    "obb": (OUT_XYWHR, OUT_SCORES, OUT_CLASSES, OUT_NUM),
}
DETECTION_TASKS = ("detect", "segment", "pose", "obb")  # tasks whose results are Detections
MASK_KINDS = ("prototypes", "per_detection")
RESIZE_MODES = ("letterbox", "fit", "stretch", "center_crop")


@dataclass(frozen=True)
class Preprocess:
    """How a uint8 BGR frame becomes the network input. Mirrors the source model's own pipeline.

    resize: one of RESIZE_MODES.
      "letterbox": keep aspect, fit inside input_hw, centred, pad with pad_value (Ultralytics).
      "fit": keep aspect with torchvision's min/max side rule (scale = min(min_size / short side,
        max_size / long side); max_size 0 = no cap), placed top-left; if that does not fit
        input_hw it is scaled down to fit. Padding is 0 after normalisation, as torchvision's
        GeneralizedRCNNTransform batches images (pad_normalized=True).
      "stretch": plain resize to input_hw.
      "center_crop": shorter side to resize_size, then the centre input_hw (torchvision's
        ImageClassification).
    antialias: resize with torch's antialiased bilinear filter when shrinking (torchvision's
      tensor transforms), instead of OpenCV's plain bilinear taps.
    resize_dtype: "uint8" resizes uint8 pixels with fixed-point weights (torchvision v2 uint8
      kernels, OpenCV); "uint8-pil" the same with PIL's fixed 22-bit weights (transforms on PIL
      images: timm's); "float32" resizes unrounded values (torchvision's R-CNN transform
      resizes float tensors); "float32-rounded" resizes in float32 and rounds half to even
      back to uint8 (torchvision's v1 presets, ImageClassification / SemanticSegmentation,
      on uint8 tensors).
    pad_value: the grey the letterbox padding is filled with (0..255, before scaling).
    color: channel order the network expects ("RGB" or "BGR").
    scale, mean, std: x = (pixel * scale - mean) / std, per channel in network order.
    """

    resize: str = "letterbox"
    pad_value: int = 114
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: str = "linear"
    min_size: int = 0
    max_size: int = 0
    resize_size: int = 0
    antialias: bool = False
    resize_dtype: str = "uint8"
    pad_normalized: bool = False

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise EdgeVisionError(f"manifest resize {self.resize!r} is not one of {', '.join(RESIZE_MODES)}")
        if self.resize == "fit" and self.min_size <= 0:
            raise EdgeVisionError("a 'fit' resize needs min_size > 0")
        if self.resize == "center_crop" and self.resize_size <= 0:
            raise EdgeVisionError("a 'center_crop' resize needs resize_size > 0")
        if self.resize_dtype not in ("uint8", "uint8-pil", "float32", "float32-rounded"):
            raise EdgeVisionError(f"manifest resize_dtype {self.resize_dtype!r} is not uint8, uint8-pil, float32 or "
                                  "float32-rounded")


@dataclass(frozen=True)
class Manifest:
    """What an artifact is and how to feed it.

    task: one of TASKS; it alone decides how the runtime decodes the outputs.
    input_hw: (H, W) of the network input. max_det: D, rows in each detection output.
    proto_shape: (M, Hp, Wp) for segmenters with prototype masks (YOLO), else None.
    mask_kind: "prototypes" (mask_coeffs @ protos) or "per_detection" (fixed-size mask
      probabilities per detection, pasted into the box by the runtime: Mask R-CNN).
    mask_hw: (Hm, Wm) of per-detection masks. topk: k of a classifier's outputs.
    """

    task: str
    class_names: tuple[str, ...]
    input_hw: tuple[int, int]
    max_det: int
    preprocess: Preprocess = field(default_factory=Preprocess)
    proto_shape: tuple[int, int, int] | None = None
    mask_kind: str = "prototypes"
    mask_hw: tuple[int, int] | None = None
    topk: int = 0
    conf_threshold: float = 0.25
    iou_threshold: float = 0.7
    dynamic_batch: bool = True
    precision: str = "fp32"
    family: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise EdgeVisionError(f"manifest task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.mask_kind not in MASK_KINDS:
            raise EdgeVisionError(f"manifest mask_kind {self.mask_kind!r} is not one of {', '.join(MASK_KINDS)}")
        if self.task == "segment" and self.mask_kind == "prototypes" and self.proto_shape is None:
            raise EdgeVisionError("a segment manifest with prototype masks needs proto_shape (M, Hp, Wp)")
        if self.task == "segment" and self.mask_kind == "per_detection" and self.mask_hw is None:
            raise EdgeVisionError("a segment manifest with per-detection masks needs mask_hw (Hm, Wm)")
        if self.task == "classify" and self.topk <= 0:
            raise EdgeVisionError("a classify manifest needs topk > 0")

    @property
    def detects(self) -> bool:
        """True for tasks whose results are Detections (detect, segment, pose, obb)."""
        return self.task in DETECTION_TASKS

    @property
    def outputs(self) -> tuple[str, ...]:
        """The graph outputs this manifest's task requires."""
        extra: tuple[str, ...] = ()
        if self.task == "segment":
            extra = (OUT_COEFFS, OUT_PROTOS) if self.mask_kind == "prototypes" else (OUT_MASKS,)
        return TASKS[self.task] + extra

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EdgeVisionError(f"the artifact's manifest is not valid JSON: {exc}") from exc
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise EdgeVisionError(
                f"the artifact was written by a newer edgevision (manifest v{raw['format_version']}, "
                f"this one reads v{FORMAT_VERSION}); upgrade edgevision"
            )
        pre = raw.pop("preprocess", {})
        pre = Preprocess(**{**pre, "mean": tuple(pre.get("mean", (0, 0, 0))), "std": tuple(pre.get("std", (1, 1, 1)))})
        proto = raw.pop("proto_shape", None)
        mask_hw = raw.pop("mask_hw", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise EdgeVisionError(f"the artifact's manifest has fields this edgevision does not know: {unknown}")
        return cls(
            **{
                **raw,
                "class_names": tuple(raw["class_names"]),
                "input_hw": tuple(raw["input_hw"]),
                "proto_shape": tuple(proto) if proto else None,
                "mask_hw": tuple(mask_hw) if mask_hw else None,
                "preprocess": pre,
            }
        )

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed (engines and checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
