"""Family: Ultralytics pose, OBB and classify checkpoints, dispatched by their head.

Registered before UltralyticsFamily (detect / segment), under the same name "ultralytics": it
takes an Ultralytics checkpoint only when its head is one of TASK_HEADS. Each task's graph
module, manifest and reference live in its own file (ultralytics_pose.py, ultralytics_obb.py,
ultralytics_cls.py); what they share is in ultralytics_shared.py.
"""
from __future__ import annotations

from collections.abc import Callable

from .base import Checkpoint, Exportable, Request
from .ultralytics_cls import prepare_classify
from .ultralytics_obb import prepare_obb
from .ultralytics_pose import prepare_pose
from .ultralytics_shared import head_name

# head class name -> how to prepare it (Detect / Segment: ultralytics.py)
TASK_HEADS: dict[str, Callable[[Checkpoint, Request], Exportable]] = {
    "Pose": prepare_pose, "OBB": prepare_obb, "Classify": prepare_classify,
    "Pose26": prepare_pose, "OBB26": prepare_obb,  # YOLO26: end-to-end, one-to-one branch by default
}


def is_ultralytics_task(ckpt: Checkpoint) -> bool:
    return ckpt.kind == "ultralytics" and head_name(ckpt.obj) in TASK_HEADS


class UltralyticsTaskFamily:
    """Ultralytics YOLO pose, OBB and classify checkpoints (.pt): decode + NMS (rotated for OBB) or
    top-k in the graph."""

    name = "ultralytics"
    summary = "Ultralytics YOLO v8/11 pose, obb and classify, YOLO26 pose and obb (.pt)"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return is_ultralytics_task(ckpt) and (req.arch is None or req.arch.split(":")[0] == self.name)

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        return TASK_HEADS[head_name(ckpt.obj)](ckpt, req)
