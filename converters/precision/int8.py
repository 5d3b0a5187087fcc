"""INT8: calibrate once, decide which layers stay float, write the TensorRT and the CPU graphs."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .budget import Budget
from .calibration import Ranges, collect_ranges_mse, collect_ranges_multi, float_tensors, graph_feeds
from .cpu_int8 import CPU_OPS, build_cpu_int8, default_weight_bits
from .evaluate import AP_CONF, Prepared, prepare
from .judge import evaluate, loss, results
from .qdq import insert_qdq
from .regions import Regions, find_regions
from .sensitivity import GatedRunner, Protection, protect

_log = logging.getLogger(__name__)


@dataclass
class Int8Options:
    """keep_float: "auto" (measure, protect the worst groups), "none", or regexes of layer names.
    percentile / cpu_percentile: of |x| per tensor, the activation clipping point of the TensorRT
    graph / the CPU twin. Measured on vtest's held-out frames (64 calibration frames): TensorRT's
    placement (int8 only at conv inputs) lost score at 99.99 (mean matched score -0.039, recall
    0.950) and kept it at 99.999 (-0.006, F1 0.971); the CPU twin, which also quantizes conv
    outputs and SiLU, gained score at 99.999 (precision 0.955) and balanced at 99.99 (F1 0.972).
    cpu_ops=("Conv",) with cpu_percentile 99.999: the more accurate, slower twin (cpu_int8's docstring).
    tune_frames: calibration frames
    the protection search scores on. max_fraction: most layers protection may keep float.
    calibration: "percentile" (the above), "max" or "mse" (calibration.collect_ranges_mse): on scenes
    calibration never saw none won everywhere (benchmarks/results/int8_diagnosis.json).
    float_final / float_stem: layers kept float before any search, for scenes unlike the calibration
    clip (report.INT8_GENERALISATION has the measurements)."""

    keep_float: str = "auto"
    percentile: float = 99.999
    cpu_percentile: float = 99.99
    tune_frames: int = 12
    margin: float = 0.01
    max_fraction: float = 0.5
    cpu_variant: bool = True
    cpu_weight_bits: int | None = None  # the CPU twin's weights: 7 or 8; None: cpu_int8.default_weight_bits()
    cpu_ops: tuple[str, ...] | None = CPU_OPS  # ops the CPU twin quantizes (None: every op ORT has a kernel for)
    calibration: str = "percentile"  # how activation ranges are set: "percentile" (of |x|), "max", "mse"
    float_final: bool = True  # keep final_layers() float (box / class / mask-coefficient convolutions)
    float_stem: int = 3  # keep the first N layer groups float (stem_layers(); 0: none)
    engine: str = "edgevision"  # who writes the graphs: "edgevision" (qdq.py / cpu_int8.py) or "nncf" (nncf_engine.py)


@dataclass
class Int8Build:
    """What build_int8 wrote. kept_float: layer names left in FP32 (besides the float region)."""

    trt_path: Path
    cpu_path: Path | None
    regions: Regions
    ranges: Ranges
    kept_float: list[str]
    protection: Protection | None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_ranges: Ranges | None = None
    cpu_kept_float: list[str] = field(default_factory=list)
    cpu_weight_bits: int = 8

    def layer_summary(self) -> dict[str, Any]:
        return {
            "quantized_layers": len(self.regions.layers) - len(self.kept_float),
            "layers": len(self.regions.layers),
            "kept_float": self.kept_float,
            "float_region_nodes": len(self.regions.float_nodes),
        }


def write_trt_graph(model: Any, regions: Regions, kept: Sequence[str], ranges: Ranges, path: Path) -> list[str]:
    """Write the TensorRT Q/DQ graph of `model`: every layer of `regions` not in `kept` quantized at
    `ranges`. Returns the layers left float because no range was measured for their input (the
    caller decides what that means: build_int8 reports them kept float, --qat refuses)."""
    onnx = lazy_import("onnx")
    keep = set(kept)
    quantized = [layer for layer in regions.layers if layer.name not in keep]
    qdq, skipped = insert_qdq(model, quantized, ranges)
    onnx.save(qdq, str(path))
    return list(skipped)


def evenly(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    if n >= len(frames):
        return list(frames)
    return [frames[int(k * len(frames) / n)] for k in range(n)]


def build_int8(
    fp32_path: Path, manifest: Manifest, calib: Sequence[np.ndarray], trt_path: Path, cpu_path: Path | None,
    budget: Budget, opts: Int8Options, log: Callable[[str], None] = _log.info,
) -> Int8Build:
    """Calibrate on `calib` frames, protect sensitive layers, write trt_path (and cpu_path)."""
    onnx = lazy_import("onnx")
    model = onnx.load(str(fp32_path))
    regions = find_regions(model, manifest.family, manifest.extra)
    if not regions.layers:
        raise EdgeVisionError(f"{fp32_path}: found no Conv / MatMul layers to quantize")
    t0 = time.perf_counter()
    mode = opts.keep_float.strip()
    if opts.engine == "nncf" and mode != "auto":  # NNCF measures its own ranges; ours would go unused
        ranges = cpu_ranges = Ranges({}, 0.0, len(calib), {"method": "nncf"})
    else:  # (with --keep-float auto the layer search scores groups with our ranges, whichever engine writes)
        tensors = float_tensors(model, regions.network_nodes)
        ranges, cpu_ranges = calibrate(fp32_path, manifest, tensors, calib, opts, log)
    seconds = {"calibration": time.perf_counter() - t0}

    t0 = time.perf_counter()
    protection = None
    tune: Prepared | None = None
    final = final_layers(model, regions) if opts.float_final else []
    stem = stem_layers(regions, opts.float_stem)
    if final or stem:
        log(f"keeping {len(final)} final layers (their outputs go straight to the float decode) and the "
            f"{len(stem)} layers of the first {opts.float_stem} layer groups float")
    final = list(dict.fromkeys(stem + final))
    if mode == "auto":
        tune = prepare(fp32_path, evenly(calib, opts.tune_frames))
        searched = _without(regions, set(final))
        protection = protect(model, searched, ranges, manifest, tune, budget, opts.margin, opts.max_fraction, log)
        kept = final + [name for g in protection.protected for name in searched.groups[g]]
    elif mode in ("none", ""):
        kept = list(final)
    else:
        patterns = [re.compile(p) for p in mode.split(",") if p]
        kept = [layer.name for layer in regions.layers if any(p.search(layer.name) for p in patterns)]
        if not kept:
            names = ", ".join(sorted(regions.groups)[:6])
            raise EdgeVisionError(f"--keep-float {mode!r} matches no layer (layer groups: {names}, ...)")
        kept = list(dict.fromkeys(final + kept))
    seconds["protection"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if opts.engine == "nncf":  # NNCF places and calibrates its own Q/DQ; it keeps float what we keep float
        from .nncf_engine import quantize_nncf, trt_options

        quantize_nncf(fp32_path, manifest, calib, trt_path, regions.float_nodes | set(kept), trt_options(), log)
    else:
        kept += write_trt_graph(model, regions, kept, ranges, trt_path)  # no range measured: left float, not guessed
    seconds["graphs"] = time.perf_counter() - t0
    build = Int8Build(trt_path, cpu_path, regions, ranges, kept, protection, seconds, cpu_ranges, list(kept))
    build.cpu_weight_bits = opts.cpu_weight_bits or default_weight_bits()  # either engine
    if cpu_path is not None:
        t0 = time.perf_counter()
        build.cpu_kept_float = _build_cpu_twin(
            fp32_path, manifest, model, regions, cpu_ranges, cpu_path, kept, protection,
            tune if mode == "auto" else None, budget, opts, log, calib,
        )
        seconds["cpu twin"] = time.perf_counter() - t0
    return build


def _without(regions: Regions, names: set[str]) -> Regions:
    """regions with the layers in `names` taken out (they stay float; the search does not score them)."""
    if not names:
        return regions
    groups = {g: [n for n in members if n not in names] for g, members in regions.groups.items()}
    return replace(regions, layers=[layer for layer in regions.layers if layer.name not in names],
                   groups={g: members for g, members in groups.items() if members})


def stem_layers(regions: Regions, groups: int) -> list[str]:
    """The layers of the first `groups` layer groups in graph order (a YOLO's model.0-2: the
    full-resolution convolutions). Measured (benchmarks/results/int8_diagnosis.json, yolo11n-seg
    calibrated on vtest): the groups that hurt most when quantized alone on scenes calibration never
    saw, and cheap to keep float (few channels: ~6% of the multiply-adds)."""
    order = list(dict.fromkeys(layer.group for layer in regions.layers))[:max(groups, 0)]
    return [name for g in order for name in regions.groups[g]]


def final_layers(model: Any, regions: Regions) -> list[str]:
    """The layers whose outputs reach no other layer, only the float region: a detector's box,
    class and mask-coefficient convolutions, a classifier's last Linear. Found from the graph,
    walking forward through the network's own ops (Reshape, Concat, ...) until a layer or the
    float region."""
    readers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    names = {layer.name for layer in regions.layers}
    nodes = {n.name: n for n in model.graph.node}
    out = []
    for layer in regions.layers:
        stack = [r for o in nodes[layer.name].output for r in readers.get(o, [])]
        seen: set[str] = set()
        feeds_layer = False
        while stack and not feeds_layer:
            r = stack.pop()
            if r.name in seen:
                continue
            seen.add(r.name)
            feeds_layer = r.name in names
            if r.name in regions.network_nodes:
                stack += [x for o in r.output for x in readers.get(o, [])]
        if not feeds_layer:
            out.append(layer.name)
    return out


CALIBRATIONS = ("percentile", "max", "mse")


ENGINES = ("edgevision", "nncf")


def calibrate(
    fp32_path: Path, manifest: Manifest, tensors: list[str], calib: Sequence[np.ndarray], opts: Int8Options,
    log: Callable[[str], None],
) -> tuple[Ranges, Ranges]:
    """(ranges of the TensorRT graph, ranges of the CPU twin) by opts.calibration."""
    if opts.engine not in ENGINES:
        raise EdgeVisionError(f"INT8 engine {opts.engine!r}: choose one of {', '.join(ENGINES)}")
    if opts.calibration not in CALIBRATIONS:
        raise EdgeVisionError(f"calibration {opts.calibration!r}: choose one of {', '.join(CALIBRATIONS)}")
    if opts.calibration == "mse":
        log(f"calibrating {len(tensors)} tensors on {len(calib)} frames (least-squares range per tensor)")
        ranges = collect_ranges_mse(fp32_path, manifest, tensors, calib)
        return ranges, ranges
    pcts = (100.0,) if opts.calibration == "max" else tuple(dict.fromkeys((opts.percentile, opts.cpu_percentile)))
    log(f"calibrating {len(tensors)} tensors on {len(calib)} frames (percentiles {', '.join(map(str, pcts))} of |x|)")
    by_pct = collect_ranges_multi(fp32_path, manifest, tensors, calib, pcts)
    return by_pct[pcts[0]], by_pct[pcts[-1]]


def _scope_nodes(regions: Regions, groups: Sequence[str], model: Any) -> set[str]:
    """Every network node inside the groups' name scopes (a block's convs, SiLUs, concats...),
    or just the group's layers for groups that are not scopes."""
    out: set[str] = set()
    for g in groups:
        out |= set(regions.groups.get(g, []))
        if g.startswith("/"):
            out |= {n.name for n in model.graph.node if n.name.startswith(g + "/") and n.name in regions.network_nodes}
    return out


def _kept_groups(regions: Regions, kept: Sequence[str]) -> tuple[list[str], list[str]]:
    """(layer groups entirely kept float, the other kept layer names)."""
    groups = [g for g in regions.groups if set(regions.groups[g]) <= set(kept)]
    loose = [name for name in kept if not any(name in regions.groups[g] for g in groups)]
    return groups, loose


def cpu_float_nodes(regions: Regions, kept: Sequence[str], model: Any) -> set[str]:
    """The nodes the CPU twin keeps float for the kept layer names (whole blocks where a group is kept)."""
    groups, loose = _kept_groups(regions, kept)
    return regions.float_nodes | set(loose) | _scope_nodes(regions, groups, model)


def _build_cpu_twin(
    fp32_path: Path, manifest: Manifest, model: Any, regions: Regions, ranges: Ranges, out: Path, kept: list[str],
    protection: Protection | None, tune: Prepared | None, budget: Budget, opts: Int8Options,
    log: Callable[[str], None], calib: Sequence[np.ndarray] = (),
) -> list[str]:
    """Write the CPU twin, keeping float the blocks the TensorRT graph keeps. Its numerics differ
    (uint8, conv outputs and SiLU quantized too), so with --keep-float auto it is checked on the
    tuning frames itself and, if short, more blocks stay float in the same worst-first order.
    Returns the layer names it keeps float."""
    groups, loose = _kept_groups(regions, kept)

    bits = opts.cpu_weight_bits or default_weight_bits()

    def write(groups: list[str]) -> None:
        keep = regions.float_nodes | set(loose) | _scope_nodes(regions, groups, model)
        if opts.engine == "nncf":
            from .nncf_engine import cpu_options, quantize_nncf

            quantize_nncf(fp32_path, manifest, calib, out, keep, cpu_options(bits), log)
        else:
            build_cpu_int8(fp32_path, out, ranges, keep, bits, opts.cpu_ops)

    write(groups)
    if tune is None:
        return kept
    ref = _session_results(fp32_path, tune, manifest)
    ev = evaluate(_session_results(out, tune, manifest), ref, manifest)
    log(f"CPU twin on {tune.frames} tuning frames: {ev.summary()}")
    if budget.passes(ev, opts.margin):
        return kept
    if protection is None or not protection.group_loss:
        log("measuring layer groups one at a time (for the CPU twin)")
        kept_set = set(kept)
        quantized = [layer for layer in regions.layers if layer.name not in kept_set]
        runner = GatedRunner(model, quantized, ranges, manifest)
        order = sorted(runner.groups, key=lambda g: -loss(runner.run(tune, {g}, masks=False), ref, manifest))
    else:
        order = [g for g, _ in protection.worst(len(protection.group_loss))]
    for g in order:
        if g in groups:
            continue
        if sum(len(regions.groups[x]) for x in [*groups, g]) / len(regions.layers) > opts.max_fraction:
            break
        groups.append(g)
        write(groups)
        ev = evaluate(_session_results(out, tune, manifest), ref, manifest)
        log(f"  CPU twin: keep {g} float: {ev.summary()}")
        if budget.passes(ev, opts.margin):
            break
    return sorted(set(loose) | {name for g in groups for name in regions.groups[g]})


def _session_results(path: Path, tune: Prepared, manifest: Manifest) -> list[Any]:
    from .speed import cpu_session

    sess = cpu_session(path)
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]

    def infer(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(outputs, sess.run(outputs, graph_feeds(manifest, x, inputs, conf=AP_CONF))))

    return results(infer, tune, manifest)


def explain(
    fp32_path: Path, manifest: Manifest, build: Int8Build, frames: Sequence[np.ndarray], top: int = 5,
) -> list[tuple[str, float]]:
    """The layer groups that hurt most, measured one at a time (reuses the protection search's
    measurement when it ran; otherwise measures now on `frames`)."""

    p = build.protection
    if p is not None and p.group_loss:
        return p.worst(top)
    onnx = lazy_import("onnx")
    model = onnx.load(str(fp32_path))
    quantized = [layer for layer in build.regions.layers if layer.name not in set(build.kept_float)]
    if not quantized:
        return []
    runner = GatedRunner(model, quantized, build.ranges, manifest)
    tune = prepare(fp32_path, frames)
    ref = runner.run(tune, set(), masks=False)  # only the loss reads these: no masks needed
    losses = {g: loss(runner.run(tune, {g}, masks=False), ref, manifest) for g in runner.groups}
    return sorted(losses.items(), key=lambda kv: -kv[1])[:top]
