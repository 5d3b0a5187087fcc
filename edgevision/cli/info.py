"""`edgevision info ARTIFACT`: manifest, inputs/outputs, and the backends usable here."""
from __future__ import annotations

import argparse
import json

from ..backends import open_backend, usable_backends

HELP = "print an artifact's manifest, inputs/outputs and the backends usable here"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="converted .onnx file (or engine)")
    p.add_argument("--backend", default=None, help="backend to open the artifact with")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    with open_backend(args.artifact, args.backend) as backend:
        info = {
            "artifact": args.artifact,
            "manifest": json.loads(backend.manifest.to_json()),
            **backend.describe(),
            "usable_backends": usable_backends(),
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    m = info["manifest"]
    names = m["class_names"]
    print(f"artifact      {args.artifact}")
    print(f"task          {m['task']} ({m['family'] or 'unknown family'}), precision {m['precision']}")
    print(f"input         {m['input_hw'][0]}x{m['input_hw'][1]}, {m['preprocess']['resize']} pad {m['preprocess']['pad_value']}, "
          f"{m['preprocess']['color']}, scale {m['preprocess']['scale']:.6g}, dynamic batch {m['dynamic_batch']}")
    print(f"classes       {len(names)}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    print(f"thresholds    conf {m['conf_threshold']}, iou {m['iou_threshold']}, max_det {m['max_det']}")
    if m.get("source"):
        print(f"source        {m['source'].get('file')} sha256 {str(m['source'].get('sha256'))[:16]}...")
    for kind in ("inputs", "outputs"):
        for name, spec in info[kind].items():
            print(f"{kind[:-1]:<13} {name}: {spec}")
    print(f"backend       {info['backend']} {info.get('providers', '')}")
    print(f"usable here   {', '.join(info['usable_backends']) or 'none (pip install edgevision[ort])'}")
    return 0
