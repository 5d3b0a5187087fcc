"""`edgevision` command line: a thin layer over the same API a user can call.

Each sub-command is one module here with add_parser(subparsers) and main(args) -> int;
modules are imported only when their command runs, so `edgevision --help` stays light.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import EdgeVisionError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "PyTorch checkpoint -> ONNX with decode + NMS in the graph (then an engine)"),
    "build": ("build", "ONNX artifact -> TensorRT engine + JSON sidecar, on the device that runs it"),
    "run": ("run", "run an artifact on a video, camera, stream or images"),
    "info": ("info", "print an artifact's manifest, inputs/outputs and the backends usable here"),
    "verify": ("verify", "re-run the accuracy gate: an FP16/INT8 artifact vs its FP32 reference on your frames"),
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="edgevision", description="Take a detector or segmenter to the edge.")
    parser.add_argument("--version", action="version", version=f"edgevision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Each command declares its own options; importing its module here keeps them in one place.
        importlib.import_module(f"{__name__}.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(f"{__name__}.{args._module}").main(args) or 0)
    except EdgeVisionError as exc:
        print(f"edgevision {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgevision {args.command}: interrupted", file=sys.stderr)
        return 130
