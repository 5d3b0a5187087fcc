"""Which layers to keep in higher precision: measured, not guessed.

One ONNX Runtime session runs the "gated" twin of the Q/DQ graph (qdq.insert_qdq with
gated=True), where a bool input per layer group switches that group's quantization on or
off. On tuning frames (a subset of the calibration frames, never the gate's validation
frames):
1. quantize everything; if the budget (plus a margin) holds, nothing is protected;
2. otherwise quantize one group at a time and score its effect on the detections with
   the task's loss (judge.loss; detectors: box IoU and score drift of every FP32 detection, new
   detections; classifiers: top-k probability drift; class maps: pixels that change class);
3. protect (keep float) the worst group, re-evaluate with everything else quantized, and
   repeat until the budget holds or nothing is left worth quantizing.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgevision.backends.onnxruntime import make_session
from edgevision.manifest import Manifest

from .budget import Budget
from .calibration import Ranges, graph_feeds
from .evaluate import AP_CONF, Prepared
from .judge import AnyEvaluation, evaluate, loss, results
from .qdq import gate_name, insert_qdq
from .regions import Layer, Regions

_log = logging.getLogger(__name__)


@dataclass
class Protection:
    """The outcome: groups kept float (worst first), each group's solo loss, the tuning trail."""

    protected: list[str]
    group_loss: dict[str, float]
    loss_all: float
    tune: AnyEvaluation
    steps: list[dict[str, Any]] = field(default_factory=list)
    tune_frames: int = 0
    seconds: float = 0.0

    def worst(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.group_loss.items(), key=lambda kv: -kv[1])[:n]


class GatedRunner:
    """The gated Q/DQ twin in one session: run(frames, on=groups) -> per-frame detections."""

    def __init__(self, model: Any, layers: Sequence[Layer], ranges: Ranges, manifest: Manifest, threads: int | None = None):
        gated, _ = insert_qdq(model, layers, ranges, gated=True)
        self.session = make_session(gated.SerializeToString(), threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.groups = sorted({layer.group for layer in layers})
        self.manifest = manifest

    def run(self, prepared: Prepared, on: set[str], masks: bool = True) -> list[Any]:
        """Results (judge.results: detections, top-k, class maps) with the groups in `on` quantized. masks=False skips mask assembly where
        only the loss (which reads boxes and scores) looks at the result."""
        gates = {gate_name(g): np.array(g in on) for g in self.groups}

        def infer(x: np.ndarray) -> dict[str, np.ndarray]:
            feeds = {**graph_feeds(self.manifest, x, self.inputs, conf=AP_CONF), **gates}
            return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))

        return results(infer, prepared, self.manifest, masks)


def protect(
    model: Any, regions: Regions, ranges: Ranges, manifest: Manifest, tune: Prepared, budget: Budget,
    margin: float = 0.01, max_fraction: float = 0.5, log: Any = _log.info,
) -> Protection:
    """Steps 1-3 of the module docstring. max_fraction: give up protecting once that share of the
    layers is float (an INT8 model that needs more is not worth having; the gate then fails)."""
    t0 = time.perf_counter()
    runner = GatedRunner(model, regions.layers, ranges, manifest)
    groups = runner.groups
    ref = runner.run(tune, set())  # all gates off: the FP32 numerics
    everything = runner.run(tune, set(groups))
    ev = evaluate(everything, ref, manifest)
    loss_all = loss(everything, ref, manifest)
    log(f"all {len(regions.layers)} layers in INT8 on {tune.frames} tuning frames: {ev.summary()}")
    steps: list[dict[str, Any]] = [{"protected": [], **ev.as_dict()}]
    result = Protection([], {}, loss_all, ev, steps, tune.frames)
    if budget.passes(ev, margin):
        result.seconds = time.perf_counter() - t0
        return result

    log(f"measuring {len(groups)} layer groups one at a time")
    result.group_loss = {g: loss(runner.run(tune, {g}, masks=False), ref, manifest) for g in groups}
    order = [g for g, _ in result.worst(len(groups))]
    sizes = {g: len(regions.groups[g]) for g in groups}
    kept_float = 0
    for g in order:
        if (kept_float + sizes[g]) / len(regions.layers) > max_fraction:
            log(f"stopping: keeping {g} float too would leave more than {max_fraction:.0%} of the layers float")
            break
        result.protected.append(g)
        kept_float += sizes[g]
        on = set(groups) - set(result.protected)
        ev = evaluate(runner.run(tune, on), ref, manifest)
        steps.append({"protected": list(result.protected), **ev.as_dict()})
        log(f"  keep {g} float (solo loss {result.group_loss[g]:.4f}): {ev.summary()}")
        if budget.passes(ev, margin):
            break
    result.tune = ev
    result.seconds = time.perf_counter() - t0
    return result
