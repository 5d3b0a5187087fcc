"""Family: Roboflow RF-DETR checkpoints (the `rfdetr` package), detection.

RF-DETR (LW-DETR style: a DINOv2 backbone, a deformable-attention decoder) needs no NMS: its
decoder scores a fixed set of queries, and its PostProcess takes the best num_select (query,
class) pairs of sigmoid(logits) over all Q x C with one top-k. The graph is the model's own
export path (LWDETR.export(): forward_export -> normalised cx, cy, w, h boxes and logits)
followed by that top-k with a constant K, boxes to xyxy input pixels clamped to the input (as
PostProcess clamps to the image), and the conf input applied as RFDETR.predict does (score >
threshold). Deformable attention samples with Gathers instead of GridSample
(converters.deformable.rfdetr_gather_sampling).

A checkpoint is what RF-DETR's trainer saves ({"model": state_dict, "args", "model_name",
"model_config"}); it loads with torch.load(weights_only=True) and is rebuilt with
RFDETR.from_checkpoint (no download: the weights are the file's). Class ids are the logit
slots, as RFDETR.predict reports them; a slot with no class name (RF-DETR keeps one more slot
than classes) is named "class<i>".

Pre-processing is RFDETR.predict's: RGB /255, stretched to the square resolution with a
float bilinear resize (no antialias), ImageNet mean/std.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (IN_CONF, IN_IMAGES, OUT_BOXES, OUT_CLASSES, OUT_NUM, OUT_SCORES, Manifest, Preprocess,
                                 sha256_file)
from edgevision.results import Result

from ..deformable import rfdetr_gather_sampling
from .base import Checkpoint, Exportable, Request

torch = lazy_import("torch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CONF = 0.5  # RFDETR.predict's threshold


def is_rfdetr_payload(obj: Any) -> bool:
    """True for the dict RF-DETR's trainer saves: a state_dict under "model" and the variant's
    class name ("RFDETRNano", ...) under "model_name"."""
    return (isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping)
            and str(obj.get("model_name", "")).startswith("RFDETR"))


def load_rfdetr(path: Any) -> Any:
    """The checkpoint rebuilt by rfdetr itself (weights-only load, CPU, no download)."""
    rfdetr = lazy_import("rfdetr")
    try:
        return rfdetr.RFDETR.from_checkpoint(str(path), device="cpu")
    except (ValueError, KeyError, RuntimeError) as exc:
        raise EdgeVisionError(f"{path}: rfdetr cannot rebuild this checkpoint: {exc}") from exc


def slot_names(rf: Any, slots: int) -> tuple[str, ...]:
    """One name per logit slot (class id), as RFDETR.predict maps them: COCO-pretrained heads by
    COCO's sparse ids, others in order; slots without a name are "class<i>"."""
    names = list(rf.class_names)
    by_id: dict[int, str] = dict(enumerate(names))
    if slots > len(names):
        from rfdetr.assets.coco_classes import COCO_CLASSES, COCO_CLASS_NAMES

        if names == list(COCO_CLASS_NAMES):
            by_id = {coco_id: names[i] for i, coco_id in enumerate(COCO_CLASSES) if i < len(names)}
    return tuple(by_id.get(i, f"class{i}") for i in range(slots))


class RFDETROutputs(torch.nn.Module):  # type: ignore[misc]
    """images float32[B, 3, H, W] (normalised), conf float32[1] -> boxes float32[B, K, 4] xyxy
    input pixels, scores float32[B, K] (descending; rows at or below conf zeroed), class_ids
    int32[B, K], num_dets int32[B]. K = min(num_select, queries * slots), a constant."""

    def __init__(self, net: Any, input_hw: tuple[int, int], k: int) -> None:
        super().__init__()
        self.net, self.k = net, k
        h, w = input_hw
        self.register_buffer("scale", torch.tensor([w, h, w, h], dtype=torch.float32), persistent=False)

    def forward(self, images: Any, conf: Any) -> tuple[Any, Any, Any, Any]:
        with rfdetr_gather_sampling():
            boxes, logits = self.net(images)[:2]  # [B, Q, 4] cx, cy, w, h in [0, 1]; [B, Q, S]
        slots = logits.shape[-1]
        scores, index = logits.sigmoid().flatten(1).topk(self.k, dim=1)  # [B, K], sorted descending
        query, cls = index // slots, index % slots
        xy, half = boxes[..., :2], boxes[..., 2:4] / 2
        xyxy = torch.cat([xy - half, xy + half], -1) * self.scale
        xyxy = torch.minimum(xyxy.clamp(min=0.0), self.scale)  # PostProcess clamps to the image
        xyxy = xyxy.gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
        valid = (scores > conf).to(torch.float32)  # a prefix: sorted by score
        return (xyxy * valid.unsqueeze(-1), scores * valid, (cls.to(torch.float32) * valid).to(torch.int32),
                valid.sum(1).to(torch.int32))


def rfdetr_reference(rf: Any, frames: Sequence[np.ndarray], manifest: Manifest) -> list[Result]:
    """RFDETR.predict on each frame (RGB), threshold = the manifest's conf: its own
    pre-processing, GridSample and PostProcess."""
    out: list[Result] = []
    for frame in frames:
        d = rf.predict(np.ascontiguousarray(frame[:, :, ::-1]), threshold=manifest.conf_threshold)
        out.append(Detections(np.asarray(d.xyxy, np.float32), np.asarray(d.confidence, np.float32),
                              np.asarray(d.class_id, np.int32), None, manifest.class_names))
    return out


class RFDETRFamily:
    """Roboflow RF-DETR detection checkpoints (.pth from its trainer): decoder top-k in the graph."""

    name = "rfdetr"
    summary = "Roboflow RF-DETR detection (.pth, needs the rfdetr package)"

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return ckpt.kind == "rfdetr" and (req.arch is None or req.arch.split(":")[0] == self.name)

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        rf = load_rfdetr(ckpt.path)
        net = rf.model.model
        if getattr(net, "segmentation_head", None) is not None or getattr(net, "use_grouppose_keypoints", False):
            raise EdgeVisionError(f"{ckpt.path} is an RF-DETR segmentation or keypoint model; edgevision converts "
                                  "RF-DETR detection")
        size = int(rf.model.resolution)
        if req.imgsz is not None and tuple(req.imgsz) != (size, size):
            raise EdgeVisionError(f"--imgsz {req.imgsz[0]}x{req.imgsz[1]}: this RF-DETR runs at its resolution "
                                  f"{size}x{size} (its windowed backbone is sized for it)")
        opts = req.options
        conf = getattr(opts, "conf", None)
        conf = DEFAULT_CONF if conf is None else conf
        slots = int(net.class_embed.out_features)
        k = min(int(rf.model.postprocess.num_select), int(net.num_queries) * slots)
        max_det = getattr(opts, "max_det", None)
        k = k if max_det is None else min(k, max_det)
        export_net = copy.deepcopy(net).eval()
        export_net.export()  # rfdetr's own export path (forward_export), as its ONNX exporter uses
        for p in export_net.parameters():
            p.requires_grad_(False)
        manifest = Manifest(
            task="detect", class_names=slot_names(rf, slots), input_hw=(size, size), max_det=k,
            preprocess=Preprocess(resize="stretch", interpolation="linear", antialias=False, resize_dtype="float32",
                                  color="RGB", scale=1 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD),
            conf_threshold=conf, family="rfdetr",
            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": "rfdetr",
                    "model_name": str(ckpt.obj.get("model_name"))},
            extra={"head": "rfdetr", "queries": int(net.num_queries), "nms": "none (decoder queries: top-k)",
                   "deformable_sampling": "Gather (no GridSample)"},
        )
        module = RFDETROutputs(export_net, (size, size), k).eval()
        return Exportable(module, (torch.rand(2, 3, size, size), torch.tensor([conf])), [IN_IMAGES, IN_CONF],
                          [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM], manifest,
                          lambda frames: rfdetr_reference(rf, frames, manifest))
