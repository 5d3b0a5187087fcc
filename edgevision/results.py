"""Result types for the tasks that are not detections: class maps and classifications.

Each is one frame's result as a validated dataclass of numpy arrays, like Detections,
with the same small protocol the pipeline, sinks and statistics use: `count_names()`
(names the statistics count per frame), `to_json()` (the frame's JSON-lines fields) and `len()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .detections import Detections
from .errors import EdgeVisionError


def _name(names: tuple[str, ...], cid: int) -> str:
    return names[cid] if 0 <= cid < len(names) else f"class {cid}"


@dataclass
class ClassMap:
    """Semantic segmentation of one frame.

    class_map: int32[H, W], the class of every frame pixel (frame resolution).
    class_names: names indexed by class id. background: the id counted as "nothing" (0 in
    torchvision's VOC-style segmenters), left out of `class_name`.
    """

    class_map: np.ndarray
    class_names: tuple[str, ...] = field(default=(), repr=False)
    background: int | None = 0

    def __post_init__(self) -> None:
        self.class_map = np.asarray(self.class_map)
        if self.class_map.ndim != 2 or not np.issubdtype(self.class_map.dtype, np.integer):
            raise EdgeVisionError(f"class_map must be integer[H, W], got {self.class_map.dtype} {self.class_map.shape}")
        self.class_map = self.class_map.astype(np.int32, copy=False)

    def pixel_counts(self) -> dict[int, int]:
        """{class id: pixels}, for the classes present, most pixels first."""
        ids, counts = np.unique(self.class_map, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {int(ids[i]): int(counts[i]) for i in order}

    @property
    def class_name(self) -> list[str]:
        """Names of the classes present (background left out), most pixels first."""
        return [_name(self.class_names, c) for c in self.pixel_counts() if c != self.background]

    def __len__(self) -> int:
        return len(self.class_name)

    def count_names(self) -> list[str]:
        """What the run statistics count for this frame: the classes present."""
        return self.class_name

    def rle(self) -> dict[str, Any]:
        """Row-major run-length encoding: {"size": [H, W], "values": [...], "counts": [...]}."""
        flat = self.class_map.reshape(-1)
        if flat.size == 0:
            return {"size": list(self.class_map.shape), "values": [], "counts": []}
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
        counts = np.diff(np.r_[starts, flat.size])
        return {"size": list(self.class_map.shape), "values": flat[starts].tolist(), "counts": counts.tolist()}

    def to_json(self, rle: bool = False) -> dict[str, Any]:
        """{"pixels": {name: count}} (+ "rle" when asked)."""
        out: dict[str, Any] = {"pixels": {_name(self.class_names, c): n for c, n in self.pixel_counts().items()}}
        if rle:
            out["rle"] = self.rle()
        return out


@dataclass
class Classification:
    """Top-k classification of one frame.

    class_id: int32[k], best first. confidence: float32[k] probabilities, same order.
    """

    class_id: np.ndarray
    confidence: np.ndarray
    class_names: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        if len(self.class_id) != len(self.confidence):
            raise EdgeVisionError(
                f"Classification arrays disagree in length: class_id {len(self.class_id)}, "
                f"confidence {len(self.confidence)}"
            )
        if len(self.confidence) > 1 and np.any(np.diff(self.confidence) > 1e-6):
            raise EdgeVisionError("Classification must be ordered best first")

    @property
    def class_name(self) -> list[str]:
        """Names of the top-k classes, best first."""
        return [_name(self.class_names, c) for c in self.class_id.tolist()]

    def __len__(self) -> int:
        return len(self.class_id)

    def count_names(self) -> list[str]:
        """What the run statistics count for this frame: the top-1 class."""
        return self.class_name[:1]

    def to_json(self) -> dict[str, Any]:
        """{"classes": [{"class_id", "class_name", "confidence"}, ...]}, best first."""
        return {
            "classes": [
                {"class_id": c, "class_name": n, "confidence": round(p, 5)}
                for c, n, p in zip(self.class_id.tolist(), self.class_name, self.confidence.tolist())
            ]
        }


# What edgevision.load(path)(frame) returns, by the artifact's task.
Result = Union[Detections, ClassMap, Classification]
