"""`edgevision build ARTIFACT.onnx`: a TensorRT engine (+ JSON sidecar) for this device."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeVisionError

if TYPE_CHECKING:
    from .engine import BuildOptions

# Registered in setup.py (entry-point group `edgevision.commands`): the runtime's command
# line lists this command without importing the builder.
HELP = "ONNX artifact -> TensorRT engine + JSON sidecar, on the device that runs it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="ONNX artifact made by `edgevision convert`")
    p.add_argument("-o", "--output", default=None,
                   help="engine file (default: beside the ONNX, MODEL.<precision>[.dla<N>].engine)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="engine precision (default: the artifact's own; int8 needs a Q/DQ artifact)")
    p.add_argument("--min-batch", type=int, default=1, help="smallest batch the engine accepts (default 1)")
    p.add_argument("--opt-batch", type=int, default=1, help="batch the kernels are tuned for (default 1)")
    p.add_argument("--max-batch", type=int, default=4, help="largest batch the engine accepts (default 4)")
    p.add_argument("--workspace", type=int, default=None, metavar="MIB",
                   help="cap on TensorRT's build scratch memory in MiB (default: TensorRT's, all free memory)")
    p.add_argument("--dla-core", type=int, default=None, metavar="N",
                   help="run on DLA core N (Jetson AGX/NX); needs fp16 or int8; prints which layers fall back")
    p.add_argument("--no-gpu-fallback", action="store_true",
                   help="with --dla-core: fail instead of running DLA-incapable layers on the GPU")
    p.add_argument("--timing-cache", default="auto", metavar="PATH",
                   help="timing cache file to reuse and update ('auto': one per TensorRT and GPU in "
                        "~/.cache/edgevision; 'none': off)")
    p.add_argument("--target", choices=("tensorrt", "tensorrt_rtx"), default=None,
                   help="which TensorRT builds (default: tensorrt, else tensorrt_rtx). tensorrt_rtx builds "
                        "ahead of time, without a GPU, for RTX PCs")
    p.add_argument("--force", action="store_true", help="rebuild even if the engine is up to date")
    p.add_argument("--check", action="store_true",
                   help="only prove the graph parses and builds (no GPU needed with TensorRT-RTX); write nothing")
    p.add_argument("--for-tensorrt", default=None, metavar="VERSION",
                   help="check the graph's known TensorRT needs against VERSION (e.g. 10.3 for JetPack 6) instead "
                        "of the TensorRT building here, e.g. with --check before copying it to a device")
    p.add_argument("--strict", action="store_true",
                   help="refuse to build where the TensorRT version has a known issue with this graph (default: warn)")
    p.add_argument("--verbose", action="store_true", help="print TensorRT's warnings and info messages")


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    from .engine import BuildOptions
    from .profiles import BatchRange

    cache = None if str(args.timing_cache).lower() == "none" else args.timing_cache
    return BuildOptions(
        precision=args.precision,
        batch=BatchRange(args.min_batch, args.opt_batch, args.max_batch),
        workspace_mb=args.workspace, dla_core=args.dla_core, gpu_fallback=not args.no_gpu_fallback,
        timing_cache=cache, target=args.target, force=args.force, check_only=args.check, verbose=args.verbose,
        for_tensorrt=getattr(args, "for_tensorrt", None), strict=getattr(args, "strict", False),
    )


def device_command(artifact: str | Path, precision: str | None = None, extra: list[str] | None = None) -> str:
    """The `edgevision build` line to run on the device for `artifact`."""
    parts = ["edgevision", "build", str(artifact)]
    if precision:
        parts += ["--precision", precision]
    return shlex.join(parts + (extra or []))


def main(args: argparse.Namespace) -> int:
    from .engine import BuildUnavailable, build_engine

    try:
        result = build_engine(args.artifact, args.output, options_from_args(args))
    except BuildUnavailable as exc:
        hint = " To check here that the graph parses and builds, add --check." if exc.no_gpu and not exc.no_tensorrt else ""
        raise EdgeVisionError(f"{exc}{hint}") from exc
    if args.check:
        print(f"check     {args.artifact}: parses and builds ({result.layers} layers, "
              f"{result.plan_bytes / 1e6:.1f} MB plan, {result.seconds:.1f} s); nothing written")
        return 0
    if not result.built or result.engine_path is None:
        print(f"engine    {result.reason}; --force rebuilds")
        return 0
    print(f"engine    {result.engine_path}  ({result.plan_bytes / 1e6:.1f} MB, {result.layers} layers, "
          f"{result.seconds:.1f} s; {result.reason})")
    print(f"sidecar   {result.engine_path}.json")
    for note in result.notes:
        print(f"note      {note}")
    return 0
