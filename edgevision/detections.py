"""The one result type: detections of one frame as numpy arrays."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import EdgeVisionError


@dataclass
class Detections:
    """Detections of one image, in that image's pixel coordinates.

    xyxy: float32[N, 4], x1 y1 x2 y2 in source-frame pixels.
    confidence: float32[N].
    class_id: int32[N].
    masks: bool[N, H, W] at frame resolution, or None for detectors.
    class_names: names indexed by class_id (shared, not copied, between frames).
    tracker_id: int64[N] track ids given by a tracker, or None when nothing tracked them.
    data: free-form per-detection arrays (each with N rows), indexed with the rest.
      Frame-level facts go in `frame_data` (not indexed).
    keypoints: float32[N, K, 3] x, y (frame pixels), visibility in [0, 1], or None (pose).
    xywhr: float32[N, 5] rotated boxes cx, cy, w, h (frame pixels), angle (radians), or None
      (obb); xyxy then holds each rotated box's axis-aligned bounds.

    Index with an int array, a slice or a bool[N] mask: `dets[dets.confidence > 0.5]`.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    masks: np.ndarray | None = None
    class_names: tuple[str, ...] = field(default=(), repr=False)
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    frame_data: dict[str, Any] = field(default_factory=dict, repr=False)
    keypoints: np.ndarray | None = None
    xywhr: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise EdgeVisionError(
                f"Detections arrays disagree in length: xyxy {n}, confidence {len(self.confidence)}, "
                f"class_id {len(self.class_id)}"
            )
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise EdgeVisionError(f"masks must be bool[{n}, H, W], got shape {self.masks.shape}")
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            if len(self.tracker_id) != n:
                raise EdgeVisionError(f"tracker_id has {len(self.tracker_id)} rows, the detections {n}")
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if self.keypoints.ndim != 3 or len(self.keypoints) != n or self.keypoints.shape[2] != 3:
                raise EdgeVisionError(f"keypoints must be float32[{n}, K, 3], got shape {self.keypoints.shape}")
        if self.xywhr is not None:
            self.xywhr = np.asarray(self.xywhr, dtype=np.float32)
            if self.xywhr.shape != (n, 5):
                raise EdgeVisionError(f"xywhr must be float32[{n}, 5], got shape {self.xywhr.shape}")
        for key, value in self.data.items():
            self.data[key] = value = np.asarray(value)
            if len(value) != n:
                raise EdgeVisionError(f"Detections.data[{key!r}] has {len(value)} rows, the detections {n}")

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), None, class_names)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            None if self.masks is None else self.masks[index],
            self.class_names,
            None if self.tracker_id is None else self.tracker_id[index],
            {k: v[index] for k, v in self.data.items()},
            self.frame_data,
            None if self.keypoints is None else self.keypoints[index],
            None if self.xywhr is None else self.xywhr[index],
        )

    @property
    def class_name(self) -> list[str]:
        """Name of each detection's class ('class N' when the model has no name for it)."""
        names = self.class_names
        return [names[c] if 0 <= c < len(names) else f"class {c}" for c in self.class_id.tolist()]

    def count_names(self) -> list[str]:
        """What the run statistics count for this frame: one name per detection."""
        return self.class_name

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready list: [{"xyxy": [...], "confidence": f, "class_id": i, "class_name": s}],
        plus "tracker_id" per detection when a tracker ran, "keypoints" ([[x, y, visibility]] * K)
        for pose and "corners" (the rotated box's 4 corner points [[x, y]] * 4) for obb."""
        records = [
            {"xyxy": [round(v, 2) for v in box], "confidence": round(conf, 4), "class_id": cid, "class_name": name}
            for box, conf, cid, name in zip(
                self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist(), self.class_name
            )
        ]
        if self.tracker_id is not None:
            for record, tid in zip(records, self.tracker_id.tolist()):
                record["tracker_id"] = tid
        if self.keypoints is not None:
            for record, kpts in zip(records, self.keypoints.tolist()):
                record["keypoints"] = [[round(x, 2), round(y, 2), round(v, 4)] for x, y, v in kpts]
        if self.xywhr is not None:
            from .rotated import xywhr_corners

            for record, corners in zip(records, xywhr_corners(self.xywhr).tolist()):
                record["corners"] = [[round(x, 2), round(y, 2)] for x, y in corners]
        return records

    def to_json(self) -> dict[str, Any]:
        """The frame's JSON-lines fields: {"detections": [...]}."""
        return {"detections": self.to_records()}
