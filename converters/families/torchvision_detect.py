"""Family: torchvision's one-stage detectors (RetinaNet, FCOS, SSD) by name, `--arch torchvision:NAME`.

A state_dict is loaded into torchvision's own builder (weights=None, weights_backbone=None,
num_classes, and the transform's min_size/max_size), so no code from the file runs. The graph
is one fixed-shape network from standard ONNX ops (no NonZero, no NonMaxSuppression, no
Loop; every TopK has a constant K):

  backbone + FPN + head -> per-class scores (RetinaNet: sigmoid; FCOS: sqrt(sigmoid(cls) *
  sigmoid(centerness)); SSD: softmax with background 0) -> per level (SSD: per foreground
  class), the `topk_candidates` best (constant K; the conf input plays torchvision's
  score_thresh) -> the best `nms_candidates` over all of them -> torchvision's
  box coder (anchors / points are constants for the fixed input) -> clip -> class-aware greedy
  NMS (converters.nms.class_aware_nms, torchvision's batched_nms rule) -> the D best.

Pre-processing is torchvision's GeneralizedRCNNTransform (min/max side, float bilinear, no
antialias, top-left, zero padding after normalisation), reproduced by the runtime ("fit").
The input size is fixed at convert time: the verify frames' fit size rounded up to the
transform's size_divisible (32), as torchvision pads a batch of one such frame. SSD's
transform resizes to its fixed size (300x300, SSDlite 320x320): the runtime's "stretch".

Where it can differ from torchvision (each measured by the tests to stay within the bars):
- torchvision clips boxes to the resized content before NMS. The graph reads the content's
  extent from its input (the last row and column that are not exact zeros: the padding is
  0.0 after normalisation); a content edge whose every pixel equals the mean exactly would
  be taken for padding (a mean of 0 and black borders; not with torchvision's mean).
- torchvision runs NMS over every candidate (up to topk_candidates per level); the graph over
  the best nms_candidates. Exact whenever fewer candidates pass conf, or the first
  nms_candidates already hold max_det survivors.
- Greedy NMS is a fixed point of nms_iters iterations (exact up to that chain length).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_LIMITS, OUT_NUM, OUT_SCORES,
                                 Manifest, Preprocess, sha256_file)
from edgevision.preprocess import fit_size
from edgevision.results import Result

from ..nms import DEFAULT_BLOCK, class_aware_nms
from .base import Checkpoint, Exportable, Request
from .torchvision import class_names_for, default_weights, load_weights, to_tensor_rgb

torch = lazy_import("torch")

# builder name -> kind of head/decoder. Two-stage (R-CNN) builders: torchvision_rcnn.py.
ONE_STAGE = {
    "retinanet_resnet50_fpn": "retinanet",
    "retinanet_resnet50_fpn_v2": "retinanet",
    "fcos_resnet50_fpn": "fcos",
    "ssdlite320_mobilenet_v3_large": "ssd",
    "ssd300_vgg16": "ssd",
}
DEFAULT_NMS_CANDIDATES = 1000  # candidates entering NMS when --pre-nms-topk is not given
# Fixed-point NMS iterations when --nms-iters is not given: SSD300's densely overlapping default
# boxes made suppression chains longer than 8 in the tests (exact from 16); an iteration is one
# [1, K] x [K, K] MatMul, negligible beside the backbone, so the default leaves a margin.
DEFAULT_NMS_ITERS = 32


def _ceil_to(v: int, m: int) -> int:
    return int(math.ceil(v / m) * m)


def build_detector(name: str, ckpt: Checkpoint, num_classes: int | None, min_size: int | None,
                   max_size: int | None) -> tuple[Any, int]:
    """torchvision builder + the checkpoint's weights -> (eval model, number of classes).

    num_classes None: read from the checkpoint's classification head (out channels / anchors
    per location). min_size / max_size None: the builder's transform defaults (800 / 1333).
    """
    models = lazy_import("torchvision.models")
    if ckpt.kind == "module":
        model = ckpt.obj
        return model.eval(), num_classes or _classes_of(model)
    state = ckpt.tensors(f"torchvision:{name}")
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
    if ONE_STAGE[name] == "ssd" and (min_size is not None or max_size is not None):
        raise EdgeVisionError(f"torchvision:{name} resizes to a fixed size; --min-size/--max-size do not apply")
    if min_size is not None:
        kwargs["min_size"] = min_size
    if max_size is not None:
        kwargs["max_size"] = max_size
    if num_classes is None:
        # the first classification conv's bias: anchors per location x classes
        first = "head.classification_head.module_list.0." if ONE_STAGE[name] == "ssd" else \
            "head.classification_head.cls_logits."
        biases = [k for k in state if k.startswith(first) and k.endswith("bias")]
        if not biases:
            raise EdgeVisionError(f"{ckpt.path} has no {first}*: not a torchvision {name} state_dict "
                                  "(or pass --num-classes)")
        probe = models.get_model(name, **kwargs)
        per_loc = probe.anchor_generator.num_anchors_per_location()[0]
        num_classes = int(state[biases[-1]].shape[0]) // per_loc
    model = load_weights(models.get_model(name, num_classes=num_classes, **kwargs), state, ckpt.path,
                         f"torchvision:{name}", num_classes)
    return model.eval(), int(num_classes)


def _classes_of(model: Any) -> int:
    """Classes of a built detector's head (SSD's include the background class 0)."""
    head = model.head.classification_head
    return int(getattr(head, "num_classes", 0) or getattr(head, "num_columns"))


def content_extent(images: Any, input_hw: tuple[int, int]) -> tuple[Any, Any]:
    """images float32[B, 3, H, W] -> (content height, content width), float32[B] each.

    The runtime places the resized frame top-left and pads with exact zeros after
    normalisation (pad_normalized), as torchvision batches images. A content pixel is 0.0
    in all three channels only where it equals the mean exactly, which 8-bit pixels
    (resized in float) practically never do for torchvision's mean, so the last row and
    column holding any non-zero value end the content.
    """
    h, w = input_hw
    nz = (images != 0).to(torch.float32).amax(dim=1)  # [B, H, W]
    rows = nz.amax(dim=2) * torch.arange(1, h + 1, dtype=torch.float32)  # [B, H]: row number where content
    cols = nz.amax(dim=1) * torch.arange(1, w + 1, dtype=torch.float32)  # [B, W]
    return rows.amax(dim=1), cols.amax(dim=1)


def fit_input(t: Any, req: Request, common: dict[str, Any], notes: list[str]) -> tuple[Preprocess, tuple[int, int]]:
    """A GeneralizedRCNNTransform t -> the runtime's "fit" Preprocess and the fixed input (H, W):
    --imgsz, else the verify frames' fit size rounded up to size_divisible (as torchvision pads
    one such frame), else the largest fit (a note says so). common: the colour/scale/mean/std
    fields of Preprocess."""
    min_size, max_size, div = int(t.min_size[-1]), int(t.max_size), int(t.size_divisible)
    pre = Preprocess(resize="fit", min_size=min_size, max_size=max_size, pad_normalized=True, **common)
    if req.imgsz is not None:
        hw = (int(req.imgsz[0]), int(req.imgsz[1]))
        if hw[0] % div or hw[1] % div:
            raise EdgeVisionError(f"--imgsz {hw[0]}x{hw[1]} must be a multiple of {div} (torchvision pads to it)")
    elif req.frame_hw is not None:
        nh, nw = fit_size(req.frame_hw, pre)
        hw = (_ceil_to(nh, div), _ceil_to(nw, div))
    else:
        hw = (_ceil_to(min_size, div), _ceil_to(max_size, div))
        notes.append(f"input {hw[0]}x{hw[1]} sized without frames: pass --verify (or --imgsz) to size it "
                     "after the camera, as torchvision pads each frame")
    return pre, hw


class OneStageDetect(torch.nn.Module):  # type: ignore[misc,name-defined]
    """images float32[B, 3, H, W] (normalised, zero-padded), conf float32[1], iou float32[1]
    -> boxes float32[B, D, 4] xyxy in input pixels, scores float32[B, D] descending,
    class_ids int32[B, D], num_dets int32[B], nms_limits int32[B] (converters.nms: bit 1 where
    more of torchvision's candidates passed conf than nms_candidates and fewer than D survived,
    bit 2 where the NMS fixed point had not converged; 0: exactly torchvision's NMS).

    model: a torchvision RetinaNet, FCOS or SSD in eval mode; kind: "retinanet", "fcos" or "ssd";
    input_hw: the fixed (H, W) the anchors are made for; topk_candidates: per-level K (SSD:
    per class, over all anchors, as its postprocess_detections selects);
    nms_candidates: K entering NMS; max_det: D; nms_iters: fixed-point NMS iterations.
    """

    def __init__(self, model: Any, kind: str, input_hw: tuple[int, int], topk_candidates: int,
                 nms_candidates: int | None, max_det: int, nms_iters: int) -> None:
        super().__init__()
        ImageList = lazy_import("torchvision.models.detection.image_list").ImageList
        self.backbone, self.head, self.kind = model.backbone, model.head, kind
        self.box_coder = model.box_coder
        self.nc = _classes_of(model)
        h, w = input_hw
        with torch.no_grad():
            # The anchors (points, for FCOS) depend only on the input and feature sizes:
            # computed once, by torchvision's own generator, and stored as a constant.
            probe = torch.zeros(1, 3, h, w)
            feats = list(self.backbone(probe).values())
            anchors = model.anchor_generator(ImageList(probe, [(h, w)]), feats)[0]  # [A_total, 4]
        per_loc = model.anchor_generator.num_anchors_per_location()
        self.level_sizes = [int(f.shape[2] * f.shape[3]) * a for f, a in zip(feats, per_loc)]
        if kind == "ssd":
            # SSD: softmax over classes with background 0; per foreground class, the best
            # topk_candidates over all anchors
            self.class_k = min(topk_candidates, int(anchors.shape[0]))
            self.level_k = []
            total = (self.nc - 1) * self.class_k
            labels = torch.arange(1, self.nc).repeat_interleave(self.class_k)  # [(C-1) * K]
            self.register_buffer("ssd_labels", labels, persistent=False)
        else:
            self.level_k = [min(topk_candidates, n * self.nc) for n in self.level_sizes]
            total = sum(self.level_k)
        self.nms_k = min(total, nms_candidates or DEFAULT_NMS_CANDIDATES)
        self.max_det = min(max_det, self.nms_k)
        self.iters = nms_iters
        self.input_hw = (h, w)
        # a "fit" input is padded and torchvision clips to the content; SSD's fixed-size
        # resize fills the input, which is what torchvision clips to
        self.clip_content = kind != "ssd"
        self.register_buffer("anchors", anchors.float(), persistent=False)
        # upper[i, j] = 1 where i < j: only a higher-ranked box may suppress a lower one.
        # Blocks of ranks as in DetectPostprocess (converters/nms.py): about half the IoU pairs.
        b = min(self.nms_k, DEFAULT_BLOCK)
        self.register_buffer("upper", torch.triu(torch.ones(b, b), diagonal=1), persistent=False)

    def scores(self, out: dict[str, Any]) -> Any:
        """Head outputs -> per-anchor, per-class scores float32[B, A_total, C], as torchvision's
        postprocess_detections computes them."""
        if self.kind == "fcos":
            return torch.sqrt(torch.sigmoid(out["cls_logits"]) * torch.sigmoid(out["bbox_ctrness"]))
        if self.kind == "ssd":
            return torch.softmax(out["cls_logits"], dim=-1)
        return torch.sigmoid(out["cls_logits"])

    def decode(self, rel: Any, anchors: Any) -> Any:
        """rel float32[B, K, 4] regression, anchors float32[B, K, 4] -> boxes float32[B, K, 4] xyxy,
        with the model's own box coder (BoxCoder: weights, dw/dh clamp at log(1000/16);
        FCOS: BoxLinearCoder, normalised by anchor size; SSD: BoxCoder (10, 10, 5, 5))."""
        k = rel.shape[1]
        if self.kind == "fcos":
            return self.box_coder.decode(rel, anchors)
        boxes = self.box_coder.decode_single(rel.reshape(-1, 4), anchors.reshape(-1, 4))
        return boxes.reshape(-1, k, 4)

    def content_extent(self, images: Any) -> tuple[Any, Any]:
        """images float32[B, 3, H, W] -> (content height, content width), float32[B] each (content_extent)."""
        return content_extent(images, self.input_hw)

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, Any, Any, Any, Any]:
        feats = list(self.backbone(images).values())
        out = self.head(feats)
        scores = self.scores(out)  # [B, A, C]
        reg = out["bbox_regression"]  # [B, A, 4]
        if self.kind == "ssd":
            all_scores, all_anchor, all_label = self.ssd_candidates(scores)
        else:
            all_scores, all_anchor, all_label = self.level_candidates(scores)
        # torchvision's candidates above conf, before the graph takes the nms_k best of them
        above = (all_scores > conf).to(torch.float32).sum(1)  # [B]
        top, order = all_scores.topk(self.nms_k, dim=1)  # [B, K] sorted descending
        anchor_idx = all_anchor.gather(1, order)
        labels = all_label.gather(1, order)
        rel = reg.gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, 4))  # [B, K, 4]
        boxes = self.decode(rel, self.anchors[anchor_idx])
        # torchvision clips to the resized image (not the padded batch) before NMS.
        x, y = boxes[..., 0::2].clamp(min=0), boxes[..., 1::2].clamp(min=0)
        if self.clip_content:
            content_h, content_w = self.content_extent(images)  # [B] each
            x, y = torch.minimum(x, content_w[:, None, None]), torch.minimum(y, content_h[:, None, None])
        else:
            x, y = x.clamp(max=float(self.input_hw[1])), y.clamp(max=float(self.input_hw[0]))
        boxes = torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), -1)
        out_boxes, out_scores, out_cls, num, _, limits = class_aware_nms(
            boxes, top, labels, conf, iou, self.upper, self.iters, self.max_det, k=self.nms_k, above=above)
        return out_boxes, out_scores, out_cls, num, limits

    def ssd_candidates(self, scores: Any) -> tuple[Any, Any, Any]:
        """scores float32[B, A, C] -> the class_k best anchors of every foreground class:
        scores float32[B, (C-1) * class_k], anchor indices int64[B, ...], labels int64[B, ...]."""
        s, idx = scores[..., 1:].transpose(1, 2).topk(self.class_k, dim=2)  # [B, C-1, k]
        n = (self.nc - 1) * self.class_k
        return s.reshape(-1, n), idx.reshape(-1, n), self.ssd_labels.unsqueeze(0).expand(s.shape[0], -1)

    def level_candidates(self, scores: Any) -> tuple[Any, Any, Any]:
        """scores float32[B, A, C] -> the level_k best (anchor, class) pairs of every level:
        scores float32[B, sum level_k], anchor indices int64[B, ...], labels int64[B, ...]."""
        cand_scores, cand_anchor, cand_label = [], [], []
        a0 = 0
        for n, k in zip(self.level_sizes, self.level_k):
            # torchvision: scores > score_thresh, then the topk_candidates best of those. The
            # k best first and the threshold afterwards (in the NMS) select the same set.
            s, idx = scores[:, a0 : a0 + n].reshape(-1, n * self.nc).topk(k, dim=1)  # [B, k]
            # indices are >= 0: truncating division is floor division, and exports as one
            # integer Div (floor on integers would add Mod/Xor/Where to the graph)
            anchor = torch.div(idx, self.nc, rounding_mode="trunc")
            cand_scores.append(s)
            cand_anchor.append(anchor + a0)
            cand_label.append(idx - anchor * self.nc)  # idx % nc, without an integer Mod
            a0 += n
        return torch.cat(cand_scores, 1), torch.cat(cand_anchor, 1), torch.cat(cand_label, 1)


def detect_reference(model: Any, names: tuple[str, ...], conf: float, max_det: int) -> Any:
    """The torchvision detector as its users run it: RGB float tensor /255, a list of one image,
    its own transform and postprocess (score threshold = conf, detections_per_img = max_det; on
    the model for one-stage detectors, on its roi_heads for R-CNN). Returns frames -> one
    Detections per frame (labels as torchvision gives them; Mask R-CNN's masks thresholded at 0.5
    in the frame, as its users threshold them)."""
    def run(frames: Sequence[np.ndarray]) -> list[Result]:
        heads = getattr(model, "roi_heads", model)
        heads.score_thresh, heads.detections_per_img = conf, max_det
        out: list[Result] = []
        with torch.no_grad():
            for frame in frames:
                d = model([to_tensor_rgb(frame).float() / 255.0])[0]
                masks = (d["masks"][:, 0] > 0.5).numpy() if "masks" in d else None
                out.append(Detections(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy(), masks, names))
        return out
    return run


class TorchvisionDetectFamily:
    """torchvision one-stage detectors (RetinaNet, FCOS, SSD) by builder name (state_dict + --arch)."""

    name = "torchvision"
    summary = ("torchvision one-stage detectors (" + ", ".join(ONE_STAGE) + ") as a state_dict with "
               "--arch torchvision:NAME")

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return req.arch_name("torchvision") in ONE_STAGE

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        name = req.arch_name("torchvision") or ""
        kind = ONE_STAGE[name]
        opts = req.options
        model, nc = build_detector(name, ckpt, req.num_classes, getattr(opts, "min_size", None),
                                   getattr(opts, "max_size", None))
        names = class_names_for(req, default_weights(name), nc)
        t = model.transform
        common: dict[str, Any] = dict(resize_dtype="float32", antialias=False, interpolation="linear", color="RGB",
                                      scale=1 / 255.0, mean=tuple(t.image_mean), std=tuple(t.image_std))
        notes: list[str] = []
        if kind == "ssd":
            # SSD's transform resizes every frame to one fixed size (interpolate(size=[fs[1], fs[0]]))
            fs = t.fixed_size
            hw = (int(fs[1]), int(fs[0]))
            if req.imgsz is not None and tuple(req.imgsz) != hw:
                raise EdgeVisionError(f"torchvision:{name} runs at its fixed {hw[0]}x{hw[1]}; --imgsz does not apply")
            pre = Preprocess(resize="stretch", **common)
        else:
            pre, hw = fit_input(t, req, common, notes)
        conf = opts.conf if opts is not None and opts.conf is not None else float(model.score_thresh)
        iou = opts.iou if opts is not None and opts.iou is not None else float(model.nms_thresh)
        max_det = opts.max_det if opts is not None and opts.max_det is not None else int(model.detections_per_img)
        iters = DEFAULT_NMS_ITERS if getattr(opts, "nms_iters", None) is None else int(opts.nms_iters)
        if iters < 1:
            raise EdgeVisionError(f"--nms-iters {iters}: NMS needs at least 1 iteration")
        module = OneStageDetect(model, kind, hw, int(model.topk_candidates),
                                getattr(opts, "pre_nms_topk", None), max_det, iters).eval()
        manifest = Manifest(
            task="detect", class_names=names, input_hw=hw, max_det=module.max_det, preprocess=pre,
            conf_threshold=conf, iou_threshold=iou, family="torchvision",
            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": f"torchvision:{name}"},
            extra={"arch": name, "anchors_per_level": module.level_sizes,
                   **({"candidates_per_class": module.class_k} if kind == "ssd" else
                      {"candidates_per_level": module.level_k}),
                   "nms_candidates": module.nms_k, "nms_iters": module.iters, "max_det": module.max_det,
                   "torchvision_score_thresh": float(model.score_thresh),
                   "clip": "content extent (non-zero input)" if module.clip_content else "input"},
        )
        example = (torch.rand(2, 3, *hw), torch.tensor([conf]), torch.tensor([iou]))
        return Exportable(module, example, [IN_IMAGES, IN_CONF, IN_IOU],
                          [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM, OUT_LIMITS],
                          manifest, detect_reference(model, names, conf, module.max_det), notes)
