"""Calibration and validation frames, and the activation ranges measured on them.

Frames go through exactly the runtime's pre-processing (edgevision Model.preprocess on
the FP32 artifact's own manifest), so the ranges are those the deployed graph will see.

Ranges are measured inside ONNX Runtime: the FP32 graph is augmented with, per tensor,
ReduceMin, ReduceMax and a sorted TopK over |x| from which the per-batch percentiles of
|x| are gathered (several clipping points from one pass). Only scalars leave the session, so a few hundred 640x640 frames
calibrate in about the time they take to infer (ORT's own histogram calibrator copies
every intermediate tensor out, 10x slower here).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.backends.onnxruntime import make_session
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_CONF, IN_IMAGES, IN_IOU, Manifest


@dataclass
class FrameSplit:
    """Frames picked from sources. calib: for ranges and sensitivity; val: for the gate only.

    Each list holds uint8[H, W, 3] BGR frames; *_index the frame numbers in their source.
    """

    calib: list[np.ndarray]
    calib_index: list[int]
    calib_source: str
    val: list[np.ndarray]
    val_index: list[int]
    val_source: str

    def describe(self) -> dict[str, Any]:
        return {
            "calib": {"source": self.calib_source, "frames": len(self.calib), "indices": describe_indices(self.calib_index)},
            "val": {"source": self.val_source, "frames": len(self.val), "indices": describe_indices(self.val_index),
                    "held_out_of_calib": self.val_source == self.calib_source,
                    "disjoint": not set(self.val_index) & set(self.calib_index) or self.val_source != self.calib_source},
        }


def describe_indices(idx: Sequence[int]) -> str:
    """[0, 3, 6, 9] -> '0..9 step 3 (4)', short enough for a report."""
    if not idx:
        return "none"
    steps = {b - a for a, b in zip(idx, idx[1:])}
    step = f" step {steps.pop()}" if len(steps) == 1 else ""
    return f"{idx[0]}..{idx[-1]}{step} ({len(idx)})"


HOLD_OUT = 0.2  # the share of a source kept for validation when no --val is given


def split_frames(calib: str, calib_frames: int, val: str | None, val_frames: int) -> FrameSplit:
    """Calibration frames sampled across `calib`, validation frames from `val`.

    Without `val`, the last part of `calib` (20%, at least min(val_frames, half)) is held out:
    validation then sees a stretch of the video calibration never saw (other people, other
    places), not the neighbours of calibration frames, which would be near-duplicates."""
    from edgevision.sources import open_source, sample_frames

    if val:
        cal, cal_idx = sample_frames(calib, calib_frames)
        v, v_idx = sample_frames(val, val_frames)
    else:
        with open_source(str(calib)) as src:
            if src.live:
                raise EdgeVisionError(f"--calib {calib} is a live source; calibrate on a video file, folder or glob")
            total = src.frame_count or sum(1 for _ in src)  # some containers do not say their length
        if total < 2:
            raise EdgeVisionError(
                f"--calib {calib} has {total} frame(s); with no --val, validation needs frames calibration does not use"
            )
        held = min(max(int(np.ceil(total * HOLD_OUT)), min(val_frames, total // 2)), total - 1)
        first_val = total - held
        cal, cal_idx = sample_frames(calib, calib_frames, skip=set(range(first_val, total)))
        v, v_idx = sample_frames(calib, val_frames, skip=set(range(first_val)))
    if not cal:
        raise EdgeVisionError(f"--calib {calib}: no frames could be read")
    if not v:
        raise EdgeVisionError(f"no validation frames could be read from {val or calib}; pass --val SOURCE")
    return FrameSplit(cal, cal_idx, str(calib), v, v_idx, str(val or calib))


def graph_feeds(
    manifest: Manifest, images: np.ndarray, input_names: Sequence[str], conf: float | None = None
) -> dict[str, np.ndarray]:
    """The feeds a converted graph takes: images float32[B, 3, H, W] plus the threshold inputs it has."""
    feeds = {
        IN_IMAGES: images,
        IN_CONF: np.array([manifest.conf_threshold if conf is None else conf], np.float32),
        IN_IOU: np.array([manifest.iou_threshold], np.float32),
    }
    return {k: v for k, v in feeds.items() if k in input_names}


def preprocess_batches(fp32_path: str | Path, frames: Sequence[np.ndarray], batch: int = 8) -> Iterator[np.ndarray]:
    """float32[B, 3, H, W] batches through the runtime's own pre-processing (evaluate.preprocessed)."""
    from converters.onnx_io import read_manifest

    from .evaluate import preprocessed

    for x, _ in preprocessed(read_manifest(fp32_path), frames, batch):
        yield x


@dataclass
class TensorRange:
    """What calibration saw of one tensor. lo/hi: extremes; amax: the percentile of |x|
    averaged over batches (one outlier pixel in one frame does not set the scale)."""

    lo: float
    hi: float
    amax: float

    def clipped(self) -> tuple[float, float]:
        """(lo, hi) clipped to +-amax: the range asymmetric (CPU) quantization uses."""
        return max(self.lo, -self.amax), min(self.hi, self.amax)


@dataclass
class Ranges:
    """tensor name -> TensorRange, with how they were measured."""

    tensors: dict[str, TensorRange]
    percentile: float
    frames: int
    info: dict[str, Any] = field(default_factory=dict)

    def amax(self, name: str) -> float:
        return self.tensors[name].amax


def float_tensors(model: Any, nodes: set[str]) -> list[str]:
    """Float32 tensors produced by `nodes` (plus float graph inputs they read), in graph order."""
    onnx = lazy_import("onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    elem = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    inits = {i.name for i in model.graph.initializer}
    out: list[str] = []
    seen: set[str] = set()
    for n in model.graph.node:
        if n.name not in nodes:
            continue
        for t in [*n.input, *n.output]:
            if t and t not in seen and t not in inits and elem.get(t) == onnx.TensorProto.FLOAT:
                seen.add(t)
                out.append(t)
    return out


def _augment(model: Any, tensors: Sequence[str], percentiles: Sequence[float]) -> tuple[Any, list[str]]:
    """A copy of the graph that also outputs, per tensor, float32[2 + P]: min, max, and the
    percentiles of |x| (one TopK for the widest tail, sorted, then a Gather per percentile)."""
    onnx = lazy_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    g = aug.graph
    g.initializer.extend([
        numpy_helper.from_array(np.array([-1], np.int64), "_cal_flat"),
        numpy_helper.from_array(np.array([1], np.int64), "_cal_one"),
        *(numpy_helper.from_array(np.array(1.0 - p / 100.0, np.float32), f"_cal_tail{j}") for j, p in enumerate(percentiles)),
    ])
    outputs = []
    for k, t in enumerate(tensors):
        p = f"_cal{k}"
        flat, absx, size = f"{p}_flat", f"{p}_abs", f"{p}_size"
        nodes = [
            helper.make_node("Reshape", [t, "_cal_flat"], [flat]),
            helper.make_node("ReduceMin", [flat], [f"{p}_min"], keepdims=1),
            helper.make_node("ReduceMax", [flat], [f"{p}_max"], keepdims=1),
            helper.make_node("Abs", [flat], [absx]),
            helper.make_node("Size", [flat], [size]),
            helper.make_node("Cast", [size], [f"{size}_f"], to=TensorProto.FLOAT),
        ]
        ks = []
        for j in range(len(percentiles)):
            # k = max(1, ceil(numel * tail)): the k-th largest |x| is the percentile
            kj = f"{p}_k{j}"
            nodes += [
                helper.make_node("Mul", [f"{size}_f", f"_cal_tail{j}"], [f"{kj}_f"]),
                helper.make_node("Ceil", [f"{kj}_f"], [f"{kj}_c"]),
                helper.make_node("Cast", [f"{kj}_c"], [f"{kj}_s"], to=TensorProto.INT64),
                helper.make_node("Reshape", [f"{kj}_s", "_cal_one"], [f"{kj}_r"]),
                helper.make_node("Max", [f"{kj}_r", "_cal_one"], [kj]),
            ]
            ks.append(kj)
        nodes += [
            helper.make_node("Max", ks, [f"{p}_kmax"]) if len(ks) > 1 else helper.make_node("Identity", ks, [f"{p}_kmax"]),
            helper.make_node("TopK", [absx, f"{p}_kmax"], [f"{p}_top", f"{p}_topi"], largest=1, sorted=1),
        ]
        pcts = []
        for j, kj in enumerate(ks):
            nodes += [
                helper.make_node("Sub", [kj, "_cal_one"], [f"{kj}_i"]),
                helper.make_node("Gather", [f"{p}_top", f"{kj}_i"], [f"{p}_pct{j}"], axis=0),
            ]
            pcts.append(f"{p}_pct{j}")
        nodes.append(helper.make_node("Concat", [f"{p}_min", f"{p}_max", *pcts], [f"{p}_stats"], axis=0))
        g.node.extend(nodes)
        g.output.append(helper.make_tensor_value_info(f"{p}_stats", TensorProto.FLOAT, [2 + len(percentiles)]))
        outputs.append(f"{p}_stats")
    return aug, outputs


def collect_ranges_multi(
    fp32_path: str | Path, manifest: Manifest, tensors: Sequence[str], frames: Sequence[np.ndarray],
    percentiles: Sequence[float], batch: int = 8, threads: int | None = None,
) -> dict[float, Ranges]:
    """Run the frames through the FP32 graph once and measure each tensor's range, clipped at
    each of `percentiles` (see the module docstring). Returns percentile -> Ranges."""
    onnx = lazy_import("onnx")
    percentiles = list(dict.fromkeys(float(p) for p in percentiles))
    model = onnx.load(str(fp32_path))
    aug, outs = _augment(model, tensors, percentiles)
    sess = make_session(aug.SerializeToString(), threads)
    names = [i.name for i in sess.get_inputs()]
    lo = np.full(len(tensors), np.inf, np.float64)
    hi = np.full(len(tensors), -np.inf, np.float64)
    pct_sum = np.zeros((len(tensors), len(percentiles)), np.float64)
    seen = 0
    for x in preprocess_batches(fp32_path, frames, batch):
        stats = np.stack(sess.run(outs, graph_feeds(manifest, x, names)))  # [T, 2 + P]
        lo = np.minimum(lo, stats[:, 0])
        hi = np.maximum(hi, stats[:, 1])
        pct_sum += stats[:, 2:] * len(x)  # weight by frames: the last batch may be short
        seen += len(x)
    amax = pct_sum / max(seen, 1)
    return {
        p: Ranges(
            {t: TensorRange(float(lo[i]), float(hi[i]), float(max(amax[i, j], 1e-8))) for i, t in enumerate(tensors)},
            p, len(frames), {"method": f"percentile {p} of |x| per batch of {batch} frames, mean over batches"},
        )
        for j, p in enumerate(percentiles)
    }



def save_ort_cache(ranges: Ranges, path: str | Path, clip: bool = True) -> Path:
    """Write the ranges as ONNX Runtime's calibration cache, so quantize_static uses them as is."""
    quant = lazy_import("onnxruntime.quantization")
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    data = {}
    for name, r in ranges.tensors.items():
        lo, hi = r.clipped() if clip else (r.lo, r.hi)
        data[name] = (np.array(min(lo, 0.0), np.float32), np.array(max(hi, 0.0), np.float32))
    quant.save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), Path(path))
    return Path(path)


def _augment_mse(model: Any, tensors: Sequence[str], candidates: np.ndarray, qmax: float) -> tuple[Any, list[str]]:
    """A copy of the graph that also outputs, per tensor, float32[K]: the summed squared error of
    fake-quantizing it (symmetric int8, zero point 0) at each of its K candidate ranges."""
    onnx = lazy_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    g = aug.graph
    g.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "_mse_zp"))
    outputs = []
    for k, t in enumerate(tensors):
        errs = []
        for j, amax in enumerate(candidates[k]):
            p = f"_mse{k}_{j}"
            g.initializer.append(numpy_helper.from_array(np.array(max(amax, 1e-8) / qmax, np.float32), f"{p}_s"))
            g.node.extend([
                helper.make_node("QuantizeLinear", [t, f"{p}_s", "_mse_zp"], [f"{p}_q"]),
                helper.make_node("DequantizeLinear", [f"{p}_q", f"{p}_s", "_mse_zp"], [f"{p}_dq"]),
                helper.make_node("Sub", [f"{p}_dq", t], [f"{p}_d"]),
                helper.make_node("ReduceSumSquare", [f"{p}_d"], [f"{p}_e"], keepdims=0),
                helper.make_node("Reshape", [f"{p}_e", "_cal_one"], [f"{p}_e1"]),
            ])
            errs.append(f"{p}_e1")
        g.node.append(helper.make_node("Concat", errs, [f"_mse{k}"], axis=0))
        g.output.append(helper.make_tensor_value_info(f"_mse{k}", TensorProto.FLOAT, [len(errs)]))
        outputs.append(f"_mse{k}")
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "_cal_one"))
    return aug, outputs


MSE_LOW_PERCENTILE = 99.9  # the narrowest clipping point the MSE search considers
MSE_STEPS = 8  # candidate ranges per tensor, geometric between that percentile and the maximum


def collect_ranges_mse(
    fp32_path: str | Path, manifest: Manifest, tensors: Sequence[str], frames: Sequence[np.ndarray],
    qmax: float = 127.0, batch: int = 8, threads: int | None = None, first: dict[float, Ranges] | None = None,
) -> Ranges:
    """Per tensor, the range whose symmetric int8 fake-quantization has the least squared error over
    the frames (TensorRT's and NNCF's "MSE" calibration): candidates spaced geometrically between
    the 99.9th percentile of |x| and its maximum, measured in a second pass inside ONNX Runtime."""
    onnx = lazy_import("onnx")
    if first is None or not {MSE_LOW_PERCENTILE, 100.0} <= set(first):  # first: that pass, if already made
        first = collect_ranges_multi(fp32_path, manifest, tensors, frames, (MSE_LOW_PERCENTILE, 100.0), batch, threads)
    lo_r, hi_r = first[MSE_LOW_PERCENTILE], first[100.0]
    steps = np.linspace(0.0, 1.0, MSE_STEPS)
    cands = np.array([[lo_r.amax(t) * (max(hi_r.amax(t), lo_r.amax(t)) / lo_r.amax(t)) ** s for s in steps]
                      for t in tensors], np.float64)
    aug, outs = _augment_mse(onnx.load(str(fp32_path)), tensors, cands, qmax)
    # Graph optimizations off: ONNX Runtime's constant folding of the Q/DQ pairs on constant-derived
    # tensors fails to load this graph ("AddInitializedOrtValue"), and the extra ops dominate anyway.
    ort = lazy_import("onnxruntime")
    from edgevision.backends.onnxruntime import session_options

    opts = session_options(threads)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(aug.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    err = np.zeros_like(cands)
    for x in preprocess_batches(fp32_path, frames, batch):
        err += np.stack(sess.run(outs, graph_feeds(manifest, x, names)))
    best = cands[np.arange(len(tensors)), err.argmin(1)]
    return Ranges(
        {t: TensorRange(hi_r.tensors[t].lo, hi_r.tensors[t].hi, float(max(best[i], 1e-8))) for i, t in enumerate(tensors)},
        100.0, len(frames),
        {"method": f"least squared int8 error per tensor over {MSE_STEPS} ranges from the "
                   f"{MSE_LOW_PERCENTILE}th percentile of |x| to its maximum"},
    )
