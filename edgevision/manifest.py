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
OUT_PROTOS = "protos"  # float32[B, M, Hp, Wp] (segmenters only)
OUT_LIMITS = "nms_limits"  # int32[B], last; bits: 1 candidate cap may cut rows, 2 NMS unconverged; 0 = exact
IN_IMAGES = "images"  # float32[B, 3, H, W]
IN_CONF = "conf_threshold"  # float32[1]
IN_IOU = "iou_threshold"  # float32[1]


@dataclass(frozen=True)
class Preprocess:
    """How a uint8 BGR frame becomes the network input. Mirrors the training pipeline.

    resize: "letterbox" keeps aspect ratio and pads, centred.
    pad_value: the grey the padding is filled with (0..255, before scaling).
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


@dataclass(frozen=True)
class Manifest:
    """What an artifact is and how to feed it.

    input_hw: (H, W) of the network input. max_det: D, rows in each output.
    proto_shape: (M, Hp, Wp) for segmenters, None for detectors.
    """

    task: str
    class_names: tuple[str, ...]
    input_hw: tuple[int, int]
    max_det: int
    preprocess: Preprocess = field(default_factory=Preprocess)
    proto_shape: tuple[int, int, int] | None = None
    conf_threshold: float = 0.25
    iou_threshold: float = 0.7
    dynamic_batch: bool = True
    precision: str = "fp32"
    family: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in ("detect", "segment"):
            raise EdgeVisionError(f"manifest task {self.task!r} is not one of detect, segment")
        if self.task == "segment" and self.proto_shape is None:
            raise EdgeVisionError("a segment manifest needs proto_shape (M, Hp, Wp)")

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
        return cls(
            **{
                **raw,
                "class_names": tuple(raw["class_names"]),
                "input_hw": tuple(raw["input_hw"]),
                "proto_shape": tuple(proto) if proto else None,
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
