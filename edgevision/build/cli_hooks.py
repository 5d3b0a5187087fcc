"""`edgevision convert --engine`: build the engine right after the ONNX artifact, when
this machine can; otherwise stop at the ONNX and print the command for the device."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .engine import BuildOptions, BuildResult, BuildUnavailable, build_engine


def build_from_convert(artifact: str | Path, args: argparse.Namespace) -> BuildResult | None:
    """Build `artifact`'s engine with convert's --precision; None when it has to wait for the device.

    convert keeps the ONNX either way: an engine is tied to the GPU and TensorRT that
    build it, so "no TensorRT / no GPU here" is the normal case on a workstation.
    """
    from ..cli.build import device_command

    precision = getattr(args, "precision", None)
    try:
        result = build_engine(artifact, None, BuildOptions(precision=precision))
    except BuildUnavailable as exc:
        print(f"engine    convert stopped at the ONNX artifact: {exc}", file=sys.stderr)
        print("          copy it to the device and run there:", file=sys.stderr)
        print(f"          {device_command(artifact, precision)}", file=sys.stderr)
        return None
    if result.engine_path is not None:
        state = "built" if result.built else "up to date"
        print(f"engine    {result.engine_path}  ({state}; {result.layers} layers, {result.seconds:.1f} s)")
    return result
