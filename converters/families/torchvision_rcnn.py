"""Family: torchvision's two-stage detectors (Faster R-CNN, Mask R-CNN) by name, `--arch torchvision:NAME`.

A state_dict is loaded into torchvision's own builder (weights=None, weights_backbone=None,
num_classes, and the transform's min_size/max_size), so no code from the file runs. The graph
is one fixed-shape network from standard ONNX ops (no NonZero, no NonMaxSuppression, no Loop,
no If; every TopK has a constant K):

  backbone + FPN -> RPN head -> per level the `rpn_pre_nms_top_n_test` best objectness logits
  (constant K) -> RPN box coder on the constant anchors -> clip to the content -> boxes under
  min_size 1e-3 and scores under rpn_score_thresh masked (not removed) -> NMS per level
  (converters.nms.class_aware_nms with the level as the class, as torchvision's batched_nms
  over level ids) -> the `rpn_post_nms_top_n_test` best: R proposals, padded with masked rows
  -> MultiScaleRoIAlign 7x7 (converters.roi_align) -> box head + predictor -> per-class box
  decode (10, 10, 5, 5) -> clip -> softmax, background dropped, boxes under 1e-2 and padded
  proposals masked -> the `nms_candidates` best (proposal, class) pairs -> class-aware NMS ->
  the D best. Mask R-CNN: MultiScaleRoIAlign 14x14 on the D kept boxes -> mask head ->
  predictor -> the kept class's 28x28 logits -> sigmoid: masks float32[B, D, 28, 28], which
  the runtime pastes into the frame as torchvision's paste_masks_in_image does.

Pre-processing is torchvision's GeneralizedRCNNTransform (min/max side, float bilinear, no
antialias, top-left, zero padding after normalisation), reproduced by the runtime ("fit"); the
input size is fixed at convert time as for the one-stage detectors (torchvision_detect).

Fixed sizes (manifest.extra): RPN candidates per level = --pre-nms-topk (default the model's
rpn_pre_nms_top_n_test: 1000, MobileNet-320 150), proposals R = --proposals (default
rpn_post_nms_top_n_test: 1000, MobileNet-320 150), detections D = --max-det (default
detections_per_img, 100); the final NMS takes the best nms_candidates = 1000 (proposal, class)
pairs (not settable: --pre-nms-topk sizes the RPN here). With --pre-nms-topk / --proposals the
verification reference runs torchvision with the same rpn_*_nms_top_n_test, so a smaller, faster
graph is compared with the model it stands for.

RoIAlign: "gather" (default: TensorRT-RTX builds it; 2.3-2.9x faster than the op on ONNX Runtime) or
"onnx" (the RoiAlign op, which TensorRT imports only as a plugin layer; it does not parse on
this GPU-less machine), --roi-align; the
measurements are in converters/roi_align.py.

Where it can differ from torchvision (each measured by the tests to stay within the bars):
- Clipping to the content extent read from the input (torchvision_detect's caveat: a content
  edge whose every pixel equals the mean exactly would be taken for padding).
- The final NMS runs over the best `nms_candidates` (proposal, class) pairs above conf, not
  over all R x (C - 1); exact whenever fewer pass conf or the first ones already hold D
  survivors (nms_limits bit 1 says where neither holds).
- Greedy NMS (RPN and final) is a fixed point of nms_iters iterations per block (nms_limits
  bit 2 where it had not converged, in either stage).
- torchvision's batched_nms offsets boxes per class for small inputs (the coordinate trick):
  an IoU computed on offset coordinates can round to the other side of the threshold where
  the graph's, on the boxes themselves, does not (a box pair within a few ulps of it).
- The FPN level of a box uses log2 as Log / log(2) in ONNX: a box whose sqrt(area) is within
  rounding of a level boundary (224 * 2^k) can be pooled from the neighbouring level.
- Scores that tie exactly (random weights make some) may come out in another order: torchvision's
  sorts are not stable, the graph's TopK keeps the lower index first.
- RoIAlign "gather" sums the same bilinear terms in another order (max abs diff ~5e-7 on
  unit-variance features).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import (IN_CONF, IN_IMAGES, IN_IOU, OUT_BOXES, OUT_CLASSES, OUT_LIMITS, OUT_MASKS, OUT_NUM,
                                 OUT_SCORES, Manifest, sha256_file)

from ..nms import DEFAULT_BLOCK, NMS_UNCONVERGED, class_aware_nms
from ..roi_align import ROI_ALIGN_MODES, MultiScaleRoiAlign, level_scales
from .base import Checkpoint, Exportable, Request
from .torchvision import class_names_for, default_weights, load_weights
from .torchvision_detect import DEFAULT_NMS_CANDIDATES, DEFAULT_NMS_ITERS, content_extent, detect_reference, fit_input

torch = lazy_import("torch")

TWO_STAGE = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
)
RPN_MIN_SIZE = 1e-3  # torchvision's RegionProposalNetwork.min_size
BOX_MIN_SIZE = 1e-2  # RoIHeads.postprocess_detections' remove_small_boxes
DEFAULT_ROI_ALIGN = "gather"


def build_rcnn(name: str, ckpt: Checkpoint, num_classes: int | None, min_size: int | None,
               max_size: int | None) -> tuple[Any, int]:
    """torchvision builder + the checkpoint's weights -> (eval model, classes incl. background 0).
    num_classes None: the checkpoint's box predictor size."""
    models = lazy_import("torchvision.models")
    if ckpt.kind == "module":
        model = ckpt.obj
        return model.eval(), num_classes or int(model.roi_heads.box_predictor.cls_score.out_features)
    state = ckpt.tensors(f"torchvision:{name}")
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
    if min_size is not None:
        kwargs["min_size"] = min_size
    if max_size is not None:
        kwargs["max_size"] = max_size
    if num_classes is None:
        key = "roi_heads.box_predictor.cls_score.bias"
        if key not in state:
            raise EdgeVisionError(f"{ckpt.path} has no {key}: not a torchvision {name} state_dict "
                                  "(or pass --num-classes)")
        num_classes = int(state[key].shape[0])
    model = load_weights(models.get_model(name, num_classes=num_classes, **kwargs), state, ckpt.path,
                         f"torchvision:{name}", num_classes)
    return model.eval(), int(num_classes)


def _flatten(x: Any, per: int) -> Any:
    """A head output float32[B, A * per, H, W] -> float32[B, H * W * A, per] (torchvision's
    permute_and_flatten: location-major, then anchor)."""
    b, _, h, w = x.shape
    return x.reshape(b, -1, per, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, per)


class TwoStageDetect(torch.nn.Module):  # type: ignore[misc,name-defined]
    """images float32[B, 3, H, W] (normalised, zero-padded), conf float32[1], iou float32[1]
    -> boxes float32[B, D, 4] xyxy in input pixels, scores float32[B, D] descending,
    class_ids int32[B, D] (torchvision's labels: 0 is the background), num_dets int32[B],
    Mask R-CNN only: masks float32[B, D, 28, 28] probabilities, last nms_limits int32[B]
    (converters.nms bits: 1 where more (proposal, class) pairs passed conf than nms_candidates
    and fewer than D survived; 2 where the RPN's or the final NMS fixed point had not converged).

    model: a torchvision FasterRCNN / MaskRCNN in eval mode; input_hw: the fixed (H, W) the
    anchors are made for; pre_nms_top_n: RPN candidates per level; proposals: R, the RPN's
    post_nms_top_n; nms_candidates: (proposal, class) pairs entering the final NMS; max_det: D.
    """

    def __init__(self, model: Any, input_hw: tuple[int, int], pre_nms_top_n: int, proposals: int,
                 nms_candidates: int, max_det: int, nms_iters: int, roi_align: str = DEFAULT_ROI_ALIGN) -> None:
        super().__init__()
        ImageList = lazy_import("torchvision.models.detection.image_list").ImageList
        rpn, heads = model.rpn, model.roi_heads
        self.backbone, self.rpn_head = model.backbone, rpn.head
        self.rpn_coder, self.box_coder = rpn.box_coder, heads.box_coder
        self.box_head, self.box_predictor = heads.box_head, heads.box_predictor
        self.has_mask = heads.has_mask()
        if self.has_mask:
            self.mask_head, self.mask_predictor = heads.mask_head, heads.mask_predictor
        h, w = input_hw
        self.input_hw = input_hw
        with torch.no_grad():
            # anchors depend only on the input and feature sizes: computed once, by torchvision's
            # own generator, and stored as a constant
            probe = torch.zeros(1, 3, h, w)
            feats = self.backbone(probe)
            anchors = rpn.anchor_generator(ImageList(probe, [(h, w)]), list(feats.values()))[0]  # [A_total, 4]
        self.register_buffer("anchors", anchors.float(), persistent=False)
        per_loc = rpn.anchor_generator.num_anchors_per_location()
        self.level_sizes = [int(f.shape[2] * f.shape[3]) * a for f, a in zip(feats.values(), per_loc)]
        self.level_k = [min(pre_nms_top_n, n) for n in self.level_sizes]
        self.rpn_k = sum(self.level_k)
        self.proposals = min(proposals, self.rpn_k)
        labels = torch.cat([torch.full((k,), float(i)) for i, k in enumerate(self.level_k)])
        self.register_buffer("rpn_levels", labels, persistent=False)
        # RPN: torchvision keeps objectness >= score_thresh; the NMS keeps score > conf
        # (a threshold of 0 keeps every probability: -0.5 then, not a denormal a runtime may flush)
        thresh = float(rpn.score_thresh)
        self.rpn_conf = float(np.nextafter(np.float32(thresh), np.float32(-1.0))) if thresh > 0 else -0.5
        self.rpn_iou = float(rpn.nms_thresh)
        self.nc = int(self.box_predictor.cls_score.out_features)
        self.nms_k = min(nms_candidates, self.proposals * (self.nc - 1))
        self.max_det = min(max_det, self.nms_k)
        self.iters = nms_iters
        # pooled feature maps: MultiScaleRoIAlign takes the backbone outputs it names, in their order
        box_pool = heads.box_roi_pool
        self.pool_keys = [k for k in feats if k in box_pool.featmap_names]
        scales = level_scales([feats[k] for k in self.pool_keys], input_hw)
        self.box_pool = MultiScaleRoiAlign(scales, int(box_pool.output_size[0]), int(box_pool.sampling_ratio),
                                           roi_align)
        if self.has_mask:
            mp = heads.mask_roi_pool
            if [k for k in feats if k in mp.featmap_names] != self.pool_keys:
                raise EdgeVisionError("the mask pooler reads other feature maps than the box pooler: not supported")
            self.mask_pool = MultiScaleRoiAlign(scales, int(mp.output_size[0]), int(mp.sampling_ratio), roi_align)
        # upper[i, j] = 1 where i < j (converters/nms.py's blocks)
        for name, k in (("rpn_upper", self.rpn_k), ("upper", self.nms_k)):
            b = min(k, DEFAULT_BLOCK)
            self.register_buffer(name, torch.triu(torch.ones(b, b), diagonal=1), persistent=False)

    def forward(self, images: Any, conf: Any, iou: Any) -> tuple[Any, ...]:
        feats = self.backbone(images)
        content_h, content_w = content_extent(images, self.input_hw)  # [B] each
        proposals, valid, rpn_limits = self.propose(list(feats.values()), content_h, content_w)
        return self.detect(feats, proposals, valid, content_h, content_w, conf, iou, rpn_limits)

    def detect(self, feats: dict[str, Any], proposals: Any, valid: Any, content_h: Any, content_w: Any, conf: Any,
               iou: Any, rpn_limits: Any) -> tuple[Any, ...]:
        """The RoI heads: backbone features, proposals float32[B, R, 4] with valid bool[B, R], the
        content extent float32[B] each, and the RPN's nms_limits int32[B] -> the forward's outputs."""
        pooled = [feats[k] for k in self.pool_keys]
        b, r = proposals.shape[0], proposals.shape[1]
        x = self.box_head(self.box_pool(pooled, proposals))
        logits, reg = self.box_predictor(x)  # [B * R, C], [B * R, C * 4]
        boxes = self.box_coder.decode_single(reg, proposals.reshape(-1, 4)).reshape(b, r, self.nc, 4)
        boxes = self.clip(boxes, content_h, content_w)[:, :, 1:]  # [B, R, C - 1, 4], background dropped
        scores = torch.softmax(logits, -1).reshape(b, r, self.nc)[:, :, 1:]
        wide = (boxes[..., 2] - boxes[..., 0] >= BOX_MIN_SIZE) & (boxes[..., 3] - boxes[..., 1] >= BOX_MIN_SIZE)
        # padded proposals and empty boxes score 0: never above conf (conf >= 0)
        scores = (scores * (wide & valid[..., None]).to(scores.dtype)).reshape(b, -1)  # [B, R * (C - 1)]
        above = (scores > conf).to(torch.float32).sum(1)  # [B]
        top, idx = scores.topk(self.nms_k, dim=1)  # [B, K]
        cand = boxes.reshape(b, -1, 4).gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
        proposal = torch.div(idx, self.nc - 1, rounding_mode="trunc")  # indices >= 0: trunc is floor
        labels = idx - proposal * (self.nc - 1) + 1  # torchvision's label: 0 is the background
        out_boxes, out_scores, out_cls, num, _, limits = class_aware_nms(
            cand, top, labels, conf, iou, self.upper, self.iters, self.max_det, k=self.nms_k, above=above)
        # the RPN's unconverged bit joins the final NMS's bits
        rpn_bit = ((rpn_limits >= NMS_UNCONVERGED) & (limits < NMS_UNCONVERGED)).to(torch.int32)
        limits = limits + rpn_bit * NMS_UNCONVERGED
        outs = [out_boxes, out_scores, out_cls, num]
        if self.has_mask:
            outs.append(self.masks(pooled, out_boxes, out_cls))
        outs.append(limits)
        return tuple(outs)

    def clip(self, boxes: Any, content_h: Any, content_w: Any) -> Any:
        """boxes float32[B, ..., 4] -> clipped to [0, content] (torchvision's clip_boxes_to_image on
        the resized image's size)."""
        shape = (-1,) + (1,) * (boxes.dim() - 2)
        x = torch.minimum(boxes[..., 0::2].clamp(min=0), content_w.reshape(shape + (1,)))
        y = torch.minimum(boxes[..., 1::2].clamp(min=0), content_h.reshape(shape + (1,)))
        return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), -1)

    def propose(self, feats: list[Any], content_h: Any, content_w: Any) -> tuple[Any, Any, Any]:
        """RPN: feature maps -> proposals float32[B, R, 4] sorted by objectness, valid bool[B, R]
        (False on padding rows), and the RPN NMS's nms_limits int32[B]."""
        logits, deltas = self.rpn_head(feats)
        obj = torch.cat([_flatten(o, 1) for o in logits], 1).squeeze(-1)  # [B, A]
        reg = torch.cat([_flatten(d, 4) for d in deltas], 1)  # [B, A, 4]
        cand_obj, cand_idx = [], []
        a0 = 0
        for n, k in zip(self.level_sizes, self.level_k):
            s, i = obj[:, a0 : a0 + n].topk(k, dim=1)
            cand_obj.append(s)
            cand_idx.append(i + a0)
            a0 += n
        obj_k, idx = torch.cat(cand_obj, 1), torch.cat(cand_idx, 1)  # [B, K_rpn]
        rel = reg.gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
        b, k = idx.shape[0], self.rpn_k
        boxes = self.rpn_coder.decode_single(rel.reshape(-1, 4), self.anchors[idx].reshape(-1, 4)).reshape(b, k, 4)
        boxes = self.clip(boxes, content_h, content_w)
        wide = (boxes[..., 2] - boxes[..., 0] >= RPN_MIN_SIZE) & (boxes[..., 3] - boxes[..., 1] >= RPN_MIN_SIZE)
        # removed boxes score -1: below the RPN's threshold, so never kept and never suppressing
        prob = torch.where(wide, torch.sigmoid(obj_k), torch.full_like(obj_k, -1.0))
        score, order = prob.topk(self.rpn_k, dim=1)  # one ranking over all levels, as batched_nms sorts
        boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))
        levels = self.rpn_levels[order]
        conf = torch.full((1,), self.rpn_conf)
        iou = torch.full((1,), self.rpn_iou)
        props, _, _, num, _, limits = class_aware_nms(boxes, score, levels, conf, iou, self.rpn_upper, self.iters,
                                                      self.proposals, k=k)
        valid = torch.arange(self.proposals)[None, :] < num[:, None]
        return props, valid, limits

    def masks(self, pooled: list[Any], boxes: Any, classes: Any) -> Any:
        """The kept boxes float32[B, D, 4] and labels int32[B, D] -> their class's mask
        probabilities float32[B, D, M, M] (torchvision's maskrcnn_inference)."""
        b, d = boxes.shape[0], boxes.shape[1]
        logits = self.mask_predictor(self.mask_head(self.mask_pool(pooled, boxes)))  # [B * D, C, M, M]
        m = logits.shape[-1]
        logits = logits.reshape(b, d, self.nc, m * m)
        pick = classes.to(torch.int64).reshape(b, d, 1, 1).expand(-1, -1, 1, m * m)
        return torch.sigmoid(logits.gather(2, pick)).reshape(b, d, m, m)


class TorchvisionRcnnFamily:
    """torchvision two-stage detectors (Faster R-CNN, Mask R-CNN) by builder name (state_dict + --arch)."""

    name = "torchvision"
    summary = ("torchvision two-stage detectors (" + ", ".join(TWO_STAGE) + ") as a state_dict with "
               "--arch torchvision:NAME")

    def claims(self, ckpt: Checkpoint, req: Request) -> bool:
        return req.arch_name("torchvision") in TWO_STAGE

    def prepare(self, ckpt: Checkpoint, req: Request) -> Exportable:
        name = req.arch_name("torchvision") or ""
        opts = req.options
        model, nc = build_rcnn(name, ckpt, req.num_classes, getattr(opts, "min_size", None),
                               getattr(opts, "max_size", None))
        names = class_names_for(req, default_weights(name), nc)
        t, rpn, heads = model.transform, model.rpn, model.roi_heads
        common: dict[str, Any] = dict(resize_dtype="float32", antialias=False, interpolation="linear", color="RGB",
                                      scale=1 / 255.0, mean=tuple(t.image_mean), std=tuple(t.image_std))
        notes: list[str] = []
        pre, hw = fit_input(t, req, common, notes)

        def opt(key: str, default: Any) -> Any:
            value = getattr(opts, key, None)
            return default if value is None else value

        conf = float(opt("conf", heads.score_thresh))
        iou = float(opt("iou", heads.nms_thresh))
        max_det = int(opt("max_det", heads.detections_per_img))
        pre_nms = int(opt("pre_nms_topk", rpn._pre_nms_top_n["testing"]))
        proposals = int(opt("proposals", rpn._post_nms_top_n["testing"]))
        iters = int(opt("nms_iters", DEFAULT_NMS_ITERS))
        roi_align = str(opt("roi_align", DEFAULT_ROI_ALIGN))
        for what, v in (("--nms-iters", iters), ("--pre-nms-topk", pre_nms), ("--proposals", proposals),
                        ("--max-det", max_det)):
            if v < 1:
                raise EdgeVisionError(f"{what} {v}: must be at least 1")
        # the reference runs torchvision with the same test-time sizes the graph is made for
        rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"] = pre_nms, proposals
        if roi_align not in ROI_ALIGN_MODES:
            raise EdgeVisionError(f"--roi-align {roi_align}: one of {', '.join(ROI_ALIGN_MODES)}")
        module = TwoStageDetect(model, hw, pre_nms, proposals, DEFAULT_NMS_CANDIDATES, max_det, iters,
                                roi_align).eval()
        outputs = [OUT_BOXES, OUT_SCORES, OUT_CLASSES, OUT_NUM] + ([OUT_MASKS] if module.has_mask else []) + [OUT_LIMITS]
        mask_hw = None
        if module.has_mask:
            m = int(heads.mask_roi_pool.output_size[0]) * 2  # the predictor's 2x transposed conv
            mask_hw = (m, m)
        manifest = Manifest(
            task="segment" if module.has_mask else "detect", class_names=names, input_hw=hw,
            max_det=module.max_det, preprocess=pre, conf_threshold=conf, iou_threshold=iou, family="torchvision",
            **({"mask_kind": "per_detection", "mask_hw": mask_hw} if module.has_mask else {}),
            source={"file": ckpt.path.name, "sha256": sha256_file(ckpt.path), "kind": f"torchvision:{name}"},
            extra={"arch": name, "anchors_per_level": module.level_sizes, "rpn_candidates_per_level": module.level_k,
                   "proposals": module.proposals, "rpn_nms_thresh": module.rpn_iou,
                   "rpn_score_thresh": float(rpn.score_thresh), "nms_candidates": module.nms_k,
                   "nms_iters": module.iters, "max_det": module.max_det, "roi_align": roi_align,
                   "torchvision_score_thresh": float(heads.score_thresh), "clip": "content extent (non-zero input)"},
        )
        example = (torch.rand(2, 3, *hw), torch.tensor([conf]), torch.tensor([iou]))
        return Exportable(module, example, [IN_IMAGES, IN_CONF, IN_IOU], outputs, manifest,
                          detect_reference(model, names, conf, module.max_det), notes)
