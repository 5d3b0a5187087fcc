"""Which layers fall back from DLA to the GPU, reported before the build. Pure Python.

DLA (Jetson AGX/NX Orin and Xavier) runs a subset of layers in FP16/INT8; with
GPU_FALLBACK the rest run on the GPU, and every switch between the two splits the
network into another DLA loadable (at most 16 per core) plus a copy. Seeing the
fallbacks before a long build tells whether DLA is worth it for this model.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MAX_LOADABLES_PER_CORE = 16


@dataclass(frozen=True)
class LayerPlacement:
    index: int
    name: str
    type: str
    on_dla: bool


@dataclass(frozen=True)
class DlaReport:
    """segments: maximal runs of consecutive DLA layers (each becomes a DLA loadable)."""

    core: int
    layers: int
    on_dla: int
    fallback: tuple[LayerPlacement, ...]
    segments: int

    @property
    def fallback_by_type(self) -> dict[str, int]:
        return dict(Counter(p.type for p in self.fallback).most_common())

    def lines(self, limit: int = 8) -> list[str]:
        out = [f"DLA core {self.core}: {self.on_dla}/{self.layers} layers can run on DLA, "
               f"{len(self.fallback)} fall back to the GPU, {self.segments} DLA segment(s)"]
        if self.fallback:
            kinds = ", ".join(f"{t} x{n}" for t, n in self.fallback_by_type.items())
            out.append(f"  GPU fallback by layer type: {kinds}")
            out += [f"  fallback: #{p.index} {p.name} ({p.type})" for p in self.fallback[:limit]]
            if len(self.fallback) > limit:
                out.append(f"  ... and {len(self.fallback) - limit} more")
        if self.segments > MAX_LOADABLES_PER_CORE:
            out.append(f"  warning: {self.segments} DLA segments exceed the {MAX_LOADABLES_PER_CORE} loadables a "
                       "DLA core holds; TensorRT will run the excess on the GPU")
        if self.on_dla == 0:
            out.append("  nothing runs on DLA: build without --dla-core")
        return out


def summarize(core: int, placements: Sequence[LayerPlacement]) -> DlaReport:
    segments, previous = 0, False
    for p in placements:
        if p.on_dla and not previous:
            segments += 1
        previous = p.on_dla
    fallback = tuple(p for p in placements if not p.on_dla)
    return DlaReport(core, len(placements), len(placements) - len(fallback), fallback, segments)
