"""Where TensorRT's timing caches live: kernel timings reused by the next build on the
same TensorRT and GPU."""
from __future__ import annotations

import os
from pathlib import Path

from ..backends.tensorrt.target import DeviceTarget


def cache_dir() -> Path:
    """$EDGEVISION_CACHE, else $XDG_CACHE_HOME/edgevision, else ~/.cache/edgevision."""
    env = os.environ.get("EDGEVISION_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "edgevision"


def timing_cache_path(target: DeviceTarget) -> Path:
    """One timing cache per TensorRT version and GPU: TensorRT rejects (or worse, mis-tunes
    with) a cache from another device or version."""
    gpu = "".join(c if c.isalnum() else "-" for c in target.gpu_name) or "nogpu"
    name = f"{target.flavor.module}-{target.flavor.version}-{gpu}-{target.sm}.timing"
    return cache_dir() / "timing" / name
