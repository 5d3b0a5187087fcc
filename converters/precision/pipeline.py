"""`edgevision convert --precision fp16|int8`: build, gate, measure, report, accept or reject.

Works on the converted FP32 ONNX artifact and its manifest only, so it serves every family
the converter exports. Files written beside the FP32 artifact <stem>.onnx:
    <stem>.int8.onnx       explicit Q/DQ for TensorRT 8.6 / 10 / 11 (also runs on ORT)
    <stem>.int8-cpu.onnx   the same calibration laid out for ONNX Runtime's CPU kernels
    <stem>.fp16.onnx       FP16 graph for strongly typed TensorRT
    <stem>.int8-ov.xml/.bin  OpenVINO IR quantized by NNCF (--int8-engine nncf, OpenVINO installed):
                           gated and timed on OpenVINO only (openvino_int8.py says why an IR)
    <stem>.precision.json / .md   the report
A variant that misses the budget is kept as <stem>.<variant>.rejected.onnx (.xml) with
accepted=false in its manifest and the report.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import available
from edgevision.artifacts import CONFIGS
from edgevision.backends import run_options
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest, sha256_file

from . import report
from .artifact_kind import ArtifactKind, kind_of
from .budget import Budget, parse_budget
from .calibration import describe_indices, split_frames
from .evaluate import prepare
from .gate import GateResult, gate
from .judge import judge_for
from .speed import machine, measure_runs

# What each variant is built for (OpenVINO runs every one; its verdicts are in "runtimes").
TARGETS = {
    "fp32": ["onnxruntime", "tensorrt"],
    "int8": ["tensorrt", "onnxruntime"],
    "int8-cpu": ["onnxruntime"],
    "fp16": ["tensorrt", "onnxruntime"],
    "int8-ov": ["openvino"],
}
# Runtime configurations gated and timed beside ONNX Runtime, where their runtime is installed:
# each is an accuracy decision of its own (OpenVINO's INT8 kernels, bf16 on AMX CPUs).
EXTRA_CONFIGS = ("openvino", "openvino-bf16")


def extra_configs() -> list[str]:
    """The extra configurations this machine can judge: OpenVINO where it imports, and bf16
    only where the CPU computes bf16 (elsewhere OpenVINO silently runs f32: a verdict of nothing)."""
    if not available("openvino"):
        return []
    import openvino

    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return [c for c in EXTRA_CONFIGS if c != "openvino-bf16" or "BF16" in caps]


def _options(config: str) -> dict[str, Any]:
    """Backend options of a configuration for the gate and the timing: one single-threaded
    inference (how `edgevision run` runs files), no compiled-model cache for temporary files."""
    backend, opts = CONFIGS[config]
    return {**opts, **run_options(backend, 1, 1), **({"cache_dir": ""} if backend == "openvino" else {})}


def log(msg: str) -> None:
    """A progress line of the precision step ('[precision] ...' on stderr where the CLI shows logs)."""
    logging.getLogger(__name__).info("[precision] %s", msg)


@dataclass
class Variant:
    """A candidate artifact on its way through the gate. tmp: where it is written first (a
    hidden *.partial.onnx: runtimes that pick their reader by suffix, OpenVINO's, can read it)."""

    name: str
    precision: str
    tmp: Path
    kept_float: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    result: GateResult | None = None
    final: Path | None = None
    config: str = "onnxruntime"  # the configuration that gates it first: "openvino" for an OpenVINO IR

    @property
    def kind(self) -> ArtifactKind:
        return kind_of(self.tmp)


# What the in-graph post-processing is, per task, in the report's words.
POST_NAMES = {"detect": "decode/NMS", "segment": "decode/NMS/mask coefficients", "classify": "softmax/top-k",
              "semantic": "upsampling/arg-max", "pose": "decode/NMS/keypoints", "obb": "decode/rotated NMS"}


def post_name(task: str) -> str:
    return POST_NAMES.get(task, "post-processing")


def _final_paths(folder: Path, stem: str, name: str, suffix: str) -> tuple[Path, Path]:
    return folder / f"{stem}.{name}{suffix}", folder / f"{stem}.{name}.rejected{suffix}"


def _stamp(v: Variant, manifest: Manifest, fp32: Path, fp32_sha: str, budget: Budget, accepted: bool | None) -> None:
    """Write the variant's manifest: precision, what it is for, whether it passed the gate, and the
    TensorRT version its head is known to need in this precision (read by `edgevision build`)."""
    from edgevision.build.requirements import head_needs

    meta = {
        "variant": v.name, "targets": TARGETS[v.name], "accepted": accepted, "reference": fp32.name,
        "reference_sha256": fp32_sha, "budget": budget.as_dict(), "kept_float": v.kept_float, **v.info,
    }
    if v.result is not None:
        meta["evaluation"] = v.result.evaluation.as_dict()
        meta["failures"] = v.result.failures
    extra = {**manifest.extra, "precision": meta}
    needs = head_needs(manifest.extra.get("head"), v.precision) if "tensorrt" in TARGETS[v.name] else []
    if needs:
        extra["min_tensorrt"] = needs
    v.kind.stamp(v.tmp, manifest.replace(precision=v.precision, extra=extra))


def finish(
    fp32: Path, manifest: Manifest, variants: list[Variant], frames: dict[str, Any], val: list[np.ndarray],
    budget: Budget, run_details: dict[str, Any], rounds: int = 10,
) -> dict[str, Any]:
    """Gate every variant on `val`, measure speed, rename to accepted / rejected, write the report.
    frames: where the frames came from (FrameSplit.describe() or its "val" part)."""
    fp32_sha = sha256_file(fp32)
    for v in variants:
        v.kind.check(v.tmp)
        _stamp(v, manifest, fp32, fp32_sha, budget, None)  # edgevision.load needs a manifest
    log(f"accuracy gate on {len(val)} validation frames")
    prepared = prepare(fp32, val)
    for config in dict.fromkeys(v.config for v in variants):  # each on the runtime it is for
        mine = [v for v in variants if v.config == config]
        options = None if config == "onnxruntime" else _options(config)
        results = gate(fp32, {v.name: v.tmp for v in mine}, prepared, budget, backend=CONFIGS[config][0], options=options)
        for v in mine:
            v.result = results[v.name]
            log(f"{v.name}: {'accepted' if v.result.accepted else 'REJECTED'}: {v.result.evaluation.summary()}")
    # ONNX files also run on the other configurations here; an IR runs on its own one only.
    files = {"fp32": fp32, **{v.name: v.tmp for v in variants if v.kind.portable}}
    own = {v.name: v for v in variants if not v.kind.portable}
    configs = extra_configs()
    verdicts: dict[str, dict[str, GateResult]] = {}
    for config in list(configs):
        try:
            verdicts[config] = gate(fp32, files, prepared, budget, backend=CONFIGS[config][0], options=_options(config))
        except EdgeVisionError as exc:  # the artifacts stand on ONNX Runtime's verdict; this runtime is left out
            log(f"{config}: could not be judged ({exc}); left out of the report")
            configs.remove(config)
            continue
        for name, r in verdicts[config].items():
            log(f"{name} on {config}: {'accepted' if r.accepted else 'REJECTED'}: {r.evaluation.summary()}")
    # One thread per inference: how `edgevision run` runs files (one inference per core), and
    # steadier than all-core timings on a shared machine.
    log(f"speed on this CPU ({', '.join(['onnxruntime', *configs])}; batch 1, 1 thread, {rounds} interleaved rounds)")
    runs = {(name, c): (path, CONFIGS[c][0], _options(c)) for name, path in files.items()
            for c in ["onnxruntime", *configs]}
    runs.update({(name, v.config): (v.tmp, CONFIGS[v.config][0], _options(v.config)) for name, v in own.items()})
    timed = measure_runs({f"{n}@{c}": r for (n, c), r in runs.items()}, prepared.batches[0][:1], rounds=rounds)
    lat = {key: timed[f"{key[0]}@{key[1]}"] for key in runs}
    base = lat[("fp32", "onnxruntime")].median_ms

    def speeds(name: str) -> dict[str, dict[str, Any]]:
        return {c: {**lat[(name, c)].as_dict(), "speedup_vs_fp32": round(base / lat[(name, c)].median_ms, 3)}
                for c in ([own[name].config] if name in own else ["onnxruntime", *configs])}

    def verdict(r: GateResult) -> dict[str, Any]:
        return {"accepted": r.accepted, "evaluation": r.evaluation.as_dict(), "failures": r.failures}

    def runtimes(name: str) -> dict[str, dict[str, Any]]:
        if name in own:  # its own configuration's verdict is the one edgevision.artifacts.accepted_on reads
            result = own[name].result
            assert result is not None
            return {own[name].config: verdict(result)}
        return {c: verdict(verdicts[c][name]) for c in configs}

    folder, stem = fp32.parent, fp32.stem
    json_path, md_path = report.report_paths(folder, stem)
    data = report.load(json_path, fp32_sha)
    data.update(model=stem, reference=fp32.name, task=manifest.task,
                machine={**machine(), "threads_per_inference": 1})
    entries = {"fp32": report.Entry(fp32.name, "fp32", TARGETS["fp32"], True, speed=speeds("fp32"),
                                    runtimes=runtimes("fp32"))}
    for v in variants:
        assert v.result is not None
        good, bad = _final_paths(folder, stem, v.name, v.kind.suffix)
        v.final = good if v.result.accepted else bad
        _stamp(v, manifest, fp32, fp32_sha, budget, v.result.accepted)
        v.kind.move(v.tmp, v.final)
        v.kind.remove(bad if v.result.accepted else good)  # no stale file of the other verdict
        speed = speeds(v.name)
        entries[v.name] = report.Entry(
            v.final.name, v.precision, TARGETS[v.name], v.result.accepted, v.result.evaluation.as_dict(),
            v.result.failures, speed, v.kept_float, list(v.info.get("notes", [])),
            str(v.info.get("kept_summary", "")), runtimes(v.name),
        )
        for c, sp in speed.items():
            log(f"{v.name} on {c}: {sp['median_ms']} ms vs FP32 on ONNX Runtime {base:.1f} ms ({sp['speedup_vs_fp32']}x)")
    run = {"precision": variants[0].precision, "budget": budget.as_dict(), "details": run_details, "frames": frames}
    data = report.update(data, entries, run)
    report.save(data, json_path, md_path)
    log(f"report: {md_path}")
    return data


def _rounds(args: argparse.Namespace) -> int:
    """--speed-rounds (10 by default): interleaved timing rounds per artifact and runtime."""
    return max(1, int(getattr(args, "speed_rounds", None) or 10))


def _print(variants: list[Variant], data: dict[str, Any]) -> None:
    for v in variants:
        assert v.result is not None and v.final is not None
        speed = data["artifacts"][v.name]["speed"][v.config]
        verdict = "accepted" if v.result.accepted else "REJECTED (" + "; ".join(v.result.failures) + ")"
        where = "ORT CPU" if v.config == "onnxruntime" else f"{v.config} CPU"
        print(f"{v.name.upper():<9} {v.final}  {verdict}")
        print(f"          vs FP32: {v.result.evaluation.summary()}")
        print(f"          {where} {speed['median_ms']} ms ({speed['speedup_vs_fp32']}x FP32 on ORT)")
    fast = data.get("fastest", {}).get("onnxruntime")
    if fast:
        print(f"ORT pick  {fast} (fastest accepted on ONNX Runtime here)")
    best = data.get("fastest_run")
    if best:
        print(f"CPU pick  {best['variant']} on {best['config']} (fastest accepted configuration here; "
              "edgevision run on this folder runs it)")


def run_int8(fp32: Path, manifest: Manifest, args: argparse.Namespace, budget: Budget) -> Path:
    from .int8 import Int8Options, evenly, build_int8, explain

    source = args.calib or getattr(args, "verify", None)
    if not source:
        raise EdgeVisionError("--precision int8 needs calibration frames: --calib VIDEO|FOLDER|GLOB")
    split = split_frames(source, args.calib_frames, args.val, args.val_frames)
    log(f"{len(split.calib)} calibration frames, {len(split.val)} validation frames "
        f"({'held out of' if not args.val else 'from'} {split.val_source})")
    warning = report.same_clip_warning(split.describe())
    if warning:
        log(f"warning: {warning}")
    opts = Int8Options(
        keep_float=str(getattr(args, "keep_float", "auto") or "auto"),
        tune_frames=int(getattr(args, "tune_frames", 12) or 12),
    )
    if getattr(args, "calib_method", None):
        opts.calibration = str(args.calib_method)
    if getattr(args, "quantize_final", False):
        opts.float_final = False
    opts.engine = str(getattr(args, "int8_engine", None) or opts.engine)
    if getattr(args, "qat", False) and opts.engine != "edgevision":
        # QAT trains against edgevision's placement and ranges; NNCF places and scales its own
        raise EdgeVisionError(f"--qat trains for edgevision's INT8 placement; drop --int8-engine {opts.engine}")
    if getattr(args, "calib_percentile", None):  # given: one clipping point for both graphs
        opts.percentile = opts.cpu_percentile = float(args.calib_percentile)
    folder, stem = fp32.parent, fp32.stem
    trt = Variant("int8", "int8", folder / f".{stem}.int8.partial.onnx")
    cpu = Variant("int8-cpu", "int8", folder / f".{stem}.int8-cpu.partial.onnx")
    build = build_int8(fp32, manifest, split.calib, trt.tmp, cpu.tmp, budget, opts, log)
    qat = _qat(fp32, manifest, args, build, split.calib, opts) if getattr(args, "qat", False) else None
    layers = build.layer_summary()
    cpu_ranges = build.cpu_ranges or build.ranges
    calib_info = {"percentile": build.ranges.percentile, "frames": build.ranges.frames, "method": build.ranges.info["method"]}
    cpu_calib = {**calib_info, "percentile": cpu_ranges.percentile, "method": cpu_ranges.info["method"]}
    for v, how, cal in ((trt, "int8 symmetric per-tensor activations, int8 symmetric per-channel weights, float bias; "
                         "Q/DQ on Conv/ConvTranspose/MatMul inputs only (TensorRT placement)", calib_info),
                        (cpu, "uint8 asymmetric activations, int8 symmetric per-channel weights "
                              f"({build.cpu_weight_bits}-bit), int32 bias; "
                              + ("Q/DQ on " + "/".join(opts.cpu_ops) + " only (fused into QLinearConv)" if opts.cpu_ops else
                                 "Q/DQ around every op ONNX Runtime has an integer kernel for"), cpu_calib)):
        if opts.engine == "nncf":
            how = (f"NNCF {'PERFORMANCE' if v is trt else 'MIXED'} preset (ONNX backend, fast bias correction): "
                   f"{'int8 symmetric' if v is trt else 'uint8 asymmetric'} per-tensor activations, int8 symmetric "
                   f"per-channel weights{'' if v is trt else f' ({build.cpu_weight_bits}-bit)'}, float bias; "
                   "Q/DQ where NNCF's pattern table puts them")
            cal = {"method": "nncf", "frames": len(split.calib)}
        v.kept_float = build.kept_float if v is trt else build.cpu_kept_float
        v.info = {"calibration": cal, "quantization": how, "layers": layers,
                  "kept_summary": f"{post_name(manifest.task)} ({layers['float_region_nodes']} nodes) float"}
    # 8-bit weights are exact on ONNX Runtime's u8s8 kernels only with VNNI/AMX; on x86 without
    # them edgevision's sessions run u8u8 (edgevision.device.u8s8_saturates), a plain ONNX Runtime
    # session saturates: say so to whoever loads the file without edgevision. 7-bit: exact anywhere.
    cpu.info["weight_bits"] = build.cpu_weight_bits
    cpu.info["x86_without_vnni"] = (
        "7-bit weights: exact on ONNX Runtime's u8s8 kernels" if build.cpu_weight_bits == 7 else
        "8-bit weights: run with session.x64quantprecision=1 (u8u8 kernels); ONNX Runtime's default u8s8 kernels "
        "saturate and lose accuracy")
    details: dict[str, Any] = {
        "keep_float mode": opts.keep_float,
        "engine": opts.engine,
        "calibration": f"NNCF's own statistics on {len(split.calib)} frames" if not build.ranges.tensors else
                       f"{len(build.ranges.tensors)} tensors on {build.ranges.frames} frames; TensorRT graph: "
                       f"{calib_info['method']}; CPU twin: {cpu_calib['method']}",
        "layers": f"{layers['quantized_layers']} of {layers['layers']} Conv/ConvTranspose/MatMul layers in INT8; "
                  f"{layers['float_region_nodes']} {post_name(manifest.task)} nodes float",
        "seconds": {k: round(s, 1) for k, s in build.seconds.items()},
    }
    if qat is not None:
        details["qat"] = qat.summary()
        for v in (trt, cpu):
            v.info["qat"] = qat.as_dict()
            v.info.setdefault("notes", []).append(f"fine-tuned with --qat: {qat.summary()}")
    if build.protection is not None:
        p = build.protection
        details["protection"] = (
            f"{len(p.protected)} group(s) kept float after scoring on {p.tune_frames} calibration frames: "
            + (", ".join(p.protected) or "none needed")
        )
        if p.group_loss:
            details["most sensitive groups (solo loss)"] = ", ".join(f"{g} {loss:.4f}" for g, loss in p.worst(6))
    variants = [trt, cpu]
    if opts.engine == "nncf" and available("openvino"):
        variants.append(_openvino_variant(fp32, manifest, build, split.calib))
    data = finish(fp32, manifest, variants, split.describe(), split.val, budget, details, _rounds(args))
    _print(variants, data)
    assert trt.result is not None and trt.final is not None
    if not trt.result.accepted:
        # the NNCF engine without the layer search measured no ranges of ours to explain with
        worst = explain(fp32, manifest, build, evenly(split.calib, opts.tune_frames)) if build.ranges.tensors else []
        hurt = ", ".join(f"{g} ({loss:.3f})" for g, loss in worst) or "not measured (NNCF engine; --keep-float auto measures them)"
        raise EdgeVisionError(
            f"INT8 misses the accuracy budget vs FP32 ({'; '.join(trt.result.failures)}); "
            f"layer groups that hurt most when quantized alone: {hurt}. "
            f"Kept for inspection (not accepted) at {trt.final}; report {report.report_paths(fp32.parent, fp32.stem)[1]}. "
            "Try --keep-float auto (the default), more --calib-frames, or a looser --max-drop."
        )
    return trt.final


def _openvino_variant(fp32: Path, manifest: Manifest, build: Any, calib: list[np.ndarray]) -> Variant:
    """The NNCF engine's third file where OpenVINO is installed: an OpenVINO IR quantized by NNCF's
    OpenVINO backend (openvino_int8.py), the CPU twin's layers float, 8-bit weights (measured there)."""
    from .openvino_int8 import quantize_openvino

    ov = Variant("int8-ov", "int8", fp32.parent / f".{fp32.stem}.int8-ov.partial.xml", config="openvino")
    quantize_openvino(fp32, manifest, calib, ov.tmp, build.regions.float_nodes | set(build.cpu_kept_float), log)
    ov.kept_float = list(build.cpu_kept_float)
    layers = {**build.layer_summary(), "quantized_layers": len(build.regions.layers) - len(build.cpu_kept_float)}
    ov.info = {"calibration": {"method": "nncf", "frames": len(calib)},
               "quantization": "NNCF MIXED preset (OpenVINO backend, after OpenVINO's MOC fusions, fast bias "
                               "correction): uint8 asymmetric per-tensor activations, int8 symmetric per-channel "
                               "weights (8-bit, the first layer on half the range); FakeQuantize where NNCF's pattern "
                               "table puts them",
               "layers": layers, "weight_bits": 8,
               "kept_summary": f"{post_name(manifest.task)} ({layers['float_region_nodes']} nodes) float",
               "notes": ["an OpenVINO IR: OpenVINO's INT8 transformations miscompute Q/DQ ONNX graphs of this model"]}
    return ov


def _qat(fp32: Path, manifest: Manifest, args: argparse.Namespace, build: Any, calib: list[np.ndarray],
         opts: Any) -> Any:
    """--qat: distil the checkpoint with the INT8 placement just decided and rewrite both INT8 graphs
    from the fine-tuned weights (qat_int8.qat_int8); returns its QatResult."""
    from converters.export_args import export_options

    from .qat import QatOptions, check_qat_source
    from .qat_int8 import qat_int8

    model = getattr(args, "model", None)
    if not model:
        raise EdgeVisionError("--qat needs the PyTorch model the FP32 artifact was converted from")
    check_qat_source(model)
    qopts = QatOptions()
    if getattr(args, "qat_minutes", None):
        qopts.minutes = float(args.qat_minutes)
    if getattr(args, "qat_steps", None):
        qopts.steps = int(args.qat_steps)
    log(f"--qat: distilling {model} (fake-quantized with this placement) against itself in FP32, "
        f"up to {qopts.minutes:g} min" + (f" / {qopts.steps} steps" if qopts.steps else "") + "; Ctrl-C keeps the best so far")
    result = qat_int8(Path(model), export_options(args), fp32, manifest, build, calib, opts, qopts, log,
                      lambda p: log(p.line()))
    log(f"--qat: {result.summary()}")
    return result


def run_fp16(fp32: Path, manifest: Manifest, args: argparse.Namespace, budget: Budget) -> Path:
    import onnx

    from .fp16 import build_fp16
    from .regions import find_regions

    source = args.val or args.calib or getattr(args, "verify", None)
    if not source:
        raise EdgeVisionError("--precision fp16 needs frames for the accuracy gate: --val VIDEO|FOLDER|GLOB")
    if args.val:
        from edgevision.sources import sample_frames

        val, idx = sample_frames(args.val, args.val_frames)
        frames = {"val": {"source": str(args.val), "frames": len(val), "indices": describe_indices(idx),
                          "held_out_of_calib": False, "disjoint": True}}
    else:  # the same held-out stretch INT8 is gated on
        split = split_frames(source, 1, None, args.val_frames)
        val, frames = split.val, {"val": split.describe()["val"]}
    if not val:
        raise EdgeVisionError(f"{source}: no frames could be read")
    folder, stem = fp32.parent, fp32.stem
    v = Variant("fp16", "fp16", folder / f".{stem}.fp16.partial.onnx")
    model = onnx.load(str(fp32))
    regions = find_regions(model, manifest.family, manifest.extra)
    _, keep = build_fp16(model, regions, v.tmp)
    v.kept_float = [n for n in keep if n in {layer.name for layer in regions.layers}]
    others = len(keep) - len(regions.float_nodes)
    v.info = {"kept_fp32_nodes": len(keep),
              "kept_summary": f"{post_name(manifest.task)} ({len(regions.float_nodes)} nodes) and {others} "
                              "Softmax/Exp/reduction nodes FP32",
              "notes": [f"{len(keep)} nodes kept in FP32: {post_name(manifest.task)} and Softmax/Exp/reductions; "
                        "inputs and outputs stay float32"]}
    details = {"kept in FP32": f"{len(keep)} nodes ({post_name(manifest.task)}, sensitive ops)"}
    data = finish(fp32, manifest, [v], frames, val, budget, details, _rounds(args))
    _print([v], data)
    assert v.result is not None and v.final is not None
    if not v.result.accepted:
        raise EdgeVisionError(
            f"FP16 misses the accuracy budget vs FP32 ({'; '.join(v.result.failures)}); kept for inspection "
            f"(not accepted) at {v.final}"
        )
    return v.final


def apply_precision(result: Any, args: argparse.Namespace) -> Path:
    """Entry point from `edgevision convert`: result is converters.export.ConvertResult."""
    precision = args.precision
    fp32, manifest = Path(result.onnx_path), result.manifest
    judge_for(manifest)  # a task the gate cannot measure stops here, before any work
    budget = parse_budget(getattr(args, "max_drop", None), precision, manifest.task)
    if precision == "int8":
        return run_int8(fp32, manifest, args, budget)
    if precision == "fp16":
        return run_fp16(fp32, manifest, args, budget)
    raise EdgeVisionError(f"unknown precision {precision!r}; choose fp32, fp16 or int8")
