"""Ultralytics end-to-end (NMS-free) heads: YOLOv10 and YOLO26 detect and segment, YOLO26 pose
(Pose26) and OBB (OBB26).

Such a head has two branches trained together: one-to-many (as YOLOv8/11: many boxes per
object, needs NMS) and one-to-one (one box per object: the best max_det (anchor, class)
pairs are the detections, no NMS). Ultralytics' predictor picks the branch with `nms`:
`nms=False` runs the one-to-one branch, its top-k and a conf filter; otherwise the
one-to-many branch and NMS.

`--head one2one` (the default for these checkpoints) exports the one-to-one branch with
Ultralytics' own top-k (Detect.postprocess: the max_det best anchors by their best class,
then the max_det best (anchor, class) pairs; every TopK has a constant K) and a conf filter:
no NMS in the graph, a fixed cost, and nothing for an iteration count or a candidate cap to
make inexact (so the graph has no nms_limits output). `--head one2many` exports the other
branch with edgevision's in-graph NMS, exactly as for YOLOv8/11 (rotated NMS for OBB).

Every task's one-to-one rows have the same layout (Detect.postprocess): 4 box values, score,
class id, then the task's channels (mask coefficients, keypoints, or the angle), so one module
(E2EOutputs) and one reference (e2e_reference) serve all four tasks.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest
from edgevision.results import Result
from edgevision.rotated import xywhr_bounds

from .ultralytics_export import head_outputs

torch = lazy_import("torch")

HEADS = ("one2one", "one2many")


def has_e2e_branch(head: Any) -> bool:
    """True for a head that carries a one-to-one branch (YOLOv10, YOLO26)."""
    return getattr(head, "one2one_cv2", None) is not None


def select_branch(head: Any, choice: str | None, max_det: int) -> bool:
    """Put an Ultralytics head on the branch `choice` ("one2one", "one2many"; None: one2one
    where the head has it) before fusing; fusing then drops the other branch. Returns True
    when the head runs end to end. max_det: the one-to-one top-k's K."""
    if choice is not None and choice not in HEADS:
        raise EdgeVisionError(f"--head {choice}: choose one of {', '.join(HEADS)}")
    if not has_e2e_branch(head):
        if choice == "one2one":
            raise EdgeVisionError(f"--head one2one: this {type(head).__name__} head has no one-to-one branch "
                                  "(YOLOv10 and YOLO26 have one)")
        return False
    e2e = choice != "one2many"
    head.end2end = e2e
    head.max_det = max_det
    head.agnostic_nms = False
    return e2e


def keypoints_kx3(flat: Any, kpt_shape: Sequence[int]) -> Any:
    """float32[..., K*dims] decoded keypoints (torch or numpy) -> float32[..., K, 3]: x, y,
    visibility; visibility 1 where the model has none (dims == 2)."""
    k, dims = int(kpt_shape[0]), int(kpt_shape[1])
    kpts = flat.reshape(*flat.shape[:-1], k, dims)
    if dims == 3:
        return kpts
    if isinstance(kpts, np.ndarray):
        return np.concatenate([kpts, np.ones_like(kpts[..., :1])], -1)
    return torch.cat([kpts, torch.ones_like(kpts[..., :1])], -1)


class E2EOutputs(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W], conf float32[1] -> edgevision's outputs of `task` ("detect",
    "segment", "pose", "obb") from a one-to-one head.

    The head (in export mode) gives float32[B, D, 6 + E]: 4 box values (x1, y1, x2, y2 input
    pixels; cx, cy, w, h for OBB), score, class id (float), E task channels (M mask
    coefficients, K*dims keypoints, or 1 angle), sorted by score descending. Rows at or below
    conf are what Ultralytics' predictor drops; here they are zeroed and counted out.
    Returns boxes float32[B, D, 4] (obb: xywhr float32[B, D, 5]), scores float32[B, D],
    class_ids int32[B, D], num_dets int32[B]; then for a segmenter mask_coeffs float32[B, D, M]
    and protos float32[B, M, h, w], for pose keypoints float32[B, D, K, 3].
    """

    def __init__(self, model: Any, task: str, kpt_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.model, self.task, self.kpt_shape = model, task, kpt_shape

    def forward(self, images: Any, conf: Any) -> tuple[Any, ...]:
        out = self.model(images)
        y = out[0] if isinstance(out, (tuple, list)) else out
        scores = y[..., 4]
        valid = (scores > conf).to(torch.float32)  # [B, D]: a prefix, since rows are sorted
        rows = y * valid.unsqueeze(-1)
        boxes = torch.cat([rows[..., :4], rows[..., 6:7]], -1) if self.task == "obb" else rows[..., :4]
        outs = [boxes, rows[..., 4], rows[..., 5].to(torch.int32), valid.sum(1).to(torch.int32)]
        if self.task == "segment":
            outs += [rows[..., 6:], out[1]]
        if self.task == "pose":
            outs.append(keypoints_kx3(rows[..., 6:], self.kpt_shape))
        return tuple(outs)


def e2e_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model's one-to-one branch on each frame, filtered as Ultralytics' predictor
    does with nms=False (score > conf, at most max_det rows), boxes (keypoints, rotated boxes)
    mapped to the frame."""
    out: list[Result] = []
    for y, geo in head_outputs(model, frames, manifest):
        y = y[y[:, 4] > manifest.conf_threshold][: manifest.max_det]
        scores, classes = y[:, 4], y[:, 5].astype(np.int32)
        if manifest.task == "obb":
            xywhr = geo.xywhr_to_frame(np.concatenate([y[:, :4], y[:, 6:7]], 1))
            out.append(Detections(xywhr_bounds(xywhr), scores, classes, None, manifest.class_names, xywhr=xywhr))
            continue
        kpts = (geo.points_to_frame(keypoints_kx3(y[:, 6:], manifest.extra["kpt_shape"]))
                if manifest.task == "pose" else None)
        out.append(Detections(geo.boxes_to_frame(y[:, :4]), scores, classes, None, manifest.class_names,
                              keypoints=kpts))
    return out
