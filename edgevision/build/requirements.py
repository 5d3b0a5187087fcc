"""Which TensorRT versions a graph is known to need (or to avoid), checked before a build starts.

A build can take many minutes on a Jetson; a graph that a given TensorRT is known to fail on
(or, worse, to miscompile silently) should say so before, naming the head or op, the running
version and the one it needs. The knowledge comes from published reports, cited per entry:

- heads: the converter writes the needs of what it made into the manifest (`extra["min_tensorrt"]`,
  head_needs()), since only it knows the head; build reads them (manifest_needs()).
- ops: read from the graph itself (op_needs()), so any ONNX file, foreign ones included, is checked.

Pure functions on version strings (no TensorRT import): testable anywhere.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Need:
    """what: the head or op. needs: the first TensorRT version known to work ("10.7"), or None.
    broken_from: the first version known to fail silently, with no fixed release known (or None).
    why / source: the report it comes from."""

    what: str
    why: str
    source: str
    needs: str | None = None
    broken_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# (manifest head, graph precision) -> needs. YOLO26 INT8 on JetPack 6: TensorRT 10.3.0 fails to build
# the INT8 engine ("checkSanity.cpp::checkLinks::218 ... region should have been removed", while its
# TopK tensors fall back to float), ultralytics/ultralytics#23841; Ultralytics fixed it by moving
# JetPack 6 to TensorRT 10.7 (ultralytics/ultralytics#24368, merged 2026-04), where TopK still runs in
# float and the engine builds. Those reports are Ultralytics' implicit-calibration export; edgevision's
# explicit Q/DQ graph keeps TopK float by itself, but has not been built on 10.3: warn, do not refuse.
HEAD_NEEDS: dict[tuple[str, str], Need] = {
    ("one2one", "int8"): Need(
        "end-to-end (NMS-free) head in INT8 (YOLO26 / YOLOv10)", needs="10.7",
        why="TensorRT 10.3 (JetPack 6) fails to build YOLO26 INT8 engines (checkLinks::218); Ultralytics requires "
            "10.7 on JetPack 6 for them",
        source="github.com/ultralytics/ultralytics issues/23841, pull/24368"),
}
# ONNX op -> needs. GridSample (deformable attention in D-FINE / RT-DETRv2 / DEIM) gives silently wrong
# results on TensorRT 10.13 and 10.14 (NVIDIA/TensorRT#4646 on 10.13.3, #4813 on 10.14.1; lightly-ai/
# lightly-train#917 replaced it by a gather-based sampler, as edgevision's RT-DETR export does).
OP_NEEDS: dict[str, Need] = {
    "GridSample": Need(
        "GridSample (deformable attention)", broken_from="10.13",
        why="TensorRT 10.13 and later are reported to miscompile it silently (wrong detections, no error); "
            "export a gather-based sampler instead",
        source="github.com/NVIDIA/TensorRT issues/4646, 4813"),
}


def version_tuple(version: str) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0, 30), as the backend reads an installed TensorRT's version."""
    from ..backends.tensorrt.target import Flavor

    return Flavor("tensorrt", str(version)).numbers


def head_needs(head: str | None, precision: str) -> list[dict[str, Any]]:
    """What the converter writes into an artifact's manifest (extra["min_tensorrt"])."""
    need = HEAD_NEEDS.get((str(head), precision))
    return [need.as_dict()] if need else []


def manifest_needs(extra: Mapping[str, Any]) -> list[Need]:
    fields = set(Need.__dataclass_fields__)
    return [Need(**{k: v for k, v in d.items() if k in fields}) for d in extra.get("min_tensorrt", [])
            if isinstance(d, Mapping) and {"what", "why", "source"} <= set(d)]


def op_needs(ops: Iterable[str]) -> list[Need]:
    return [OP_NEEDS[op] for op in sorted(set(ops)) if op in OP_NEEDS]


def version_warnings(running: str, needs: Iterable[Need], label: str = "TensorRT") -> list[str]:
    """The needs `running` (a TensorRT version string) does not meet, one sentence each."""
    have = version_tuple(running)
    out = []
    for n in needs:
        if n.needs and have[:len(version_tuple(n.needs))] < version_tuple(n.needs):
            out.append(f"{n.what} needs TensorRT >= {n.needs}; this build uses {label} {running}. {n.why} "
                       f"({n.source})")
        elif n.broken_from and have[:len(version_tuple(n.broken_from))] >= version_tuple(n.broken_from):
            out.append(f"{n.what} is known to be wrong on TensorRT >= {n.broken_from}; this build uses {label} "
                       f"{running}. {n.why} ({n.source})")
    return out
