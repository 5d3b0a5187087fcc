"""Ultralytics end-to-end (NMS-free) heads: YOLOv10 and YOLO26, detect and segment.

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
branch with edgevision's in-graph NMS, exactly as for YOLOv8/11.
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


class E2EOutputs(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W], conf float32[1] -> edgevision's detection outputs from a
    one-to-one head.

    The head (in export mode) gives float32[B, D, 6 + M]: x1, y1, x2, y2 (input pixels),
    score, class id (float), M mask coefficients, sorted by score descending. Rows at or below
    conf are what Ultralytics' predictor drops; here they are zeroed and counted out.
    Returns boxes float32[B, D, 4], scores float32[B, D], class_ids int32[B, D], num_dets
    int32[B], and for a segmenter mask_coeffs float32[B, D, M] and protos float32[B, M, h, w].
    """

    def __init__(self, model: Any, segment: bool) -> None:
        super().__init__()
        self.model, self.seg = model, segment

    def forward(self, images: Any, conf: Any) -> tuple[Any, ...]:
        out = self.model(images)
        y = out[0] if self.seg else (out[0] if isinstance(out, (tuple, list)) else out)
        scores = y[..., 4]
        valid = (scores > conf).to(torch.float32)  # [B, D]: a prefix, since rows are sorted
        outs = [y[..., :4] * valid.unsqueeze(-1), scores * valid, (y[..., 5] * valid).to(torch.int32),
                valid.sum(1).to(torch.int32)]
        if self.seg:
            outs += [y[..., 6:] * valid.unsqueeze(-1), out[1]]
        return tuple(outs)


def e2e_reference(model: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """The PyTorch model's one-to-one branch on each frame, filtered as Ultralytics' predictor
    does with nms=False (score > conf, at most max_det rows), boxes mapped to the frame."""
    out: list[Result] = []
    for y, geo in head_outputs(model, frames, manifest):
        y = y[y[:, 4] > manifest.conf_threshold][: manifest.max_det]
        out.append(Detections(geo.boxes_to_frame(y[:, :4]), y[:, 4], y[:, 5].astype(np.int32), None,
                              manifest.class_names))
    return out
