"""Cache keys, staleness, the sidecar, and whether an engine may run on a device. No GPU."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from edgevision.backends.tensorrt.compat import check_compatible
from edgevision.backends.tensorrt.sidecar import BuildInfo, EngineSidecar, read_sidecar, sidecar_path, write_sidecar
from edgevision.backends.tensorrt.spec import BuildSpec, ShapeProfile, changed_fields
from edgevision.backends.tensorrt.target import DeviceTarget, Flavor
from edgevision.build.engine import why_stale
from edgevision.build.timing_cache import cache_dir, timing_cache_path
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest, sha256_file

PROFILE = ShapeProfile("images", (1, 3, 640, 640), (1, 3, 640, 640), (4, 3, 640, 640))
ORIN = DeviceTarget(Flavor("tensorrt", "10.3.0.30"), "Orin", (8, 7), dla_cores=2)
SPEC = BuildSpec.for_target(
    ORIN, onnx_sha256="ab" * 32, precision="fp16", profiles=(PROFILE,), flags=("FP16",), dla_core=None, workspace_mb=None
)
MANIFEST = Manifest(task="detect", class_names=("person", "car"), input_hw=(640, 640), max_det=300)

# One change per field the key covers.
CHANGES = {
    "onnx_sha256": "cd" * 32,
    "trt_module": "tensorrt_rtx",
    "trt_version": "10.3.0.26",
    "gpu_name": "Orin NX",
    "compute_capability": (7, 2),
    "precision": "int8",
    "profiles": (dataclasses.replace(PROFILE, max=(8, 3, 640, 640)),),
    "flags": ("INT8",),
    "dla_core": 0,
    "workspace_mb": 512,
}


def test_key_is_deterministic_and_covers_every_field() -> None:
    assert SPEC.key() == BuildSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))).key()
    assert set(CHANGES) == {f.name for f in dataclasses.fields(BuildSpec)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_any_change_invalidates(field: str) -> None:
    changed = dataclasses.replace(SPEC, **{field: CHANGES[field]})
    assert changed.key() != SPEC.key()
    reasons = changed_fields(SPEC, changed)
    assert len(reasons) == 1 and reasons[0].startswith(f"{field}: "), reasons


def test_change_reasons_are_readable() -> None:
    changed = dataclasses.replace(SPEC, precision="int8", onnx_sha256="cd" * 32, profiles=CHANGES["profiles"])
    assert changed_fields(SPEC, changed) == [
        "onnx_sha256: abababababab -> cdcdcdcdcdcd",
        "precision: fp16 -> int8",
        "profiles: images batch 1..4 (opt 1) -> images batch 1..8 (opt 1)",
    ]


def _info(spec: BuildSpec, plan: Path) -> BuildInfo:
    return BuildInfo(spec, "model.onnx", sha256_file(plan), plan.stat().st_size, 437, 12.5,
                     "2025-01-01T00:00:00+00:00", "0.1.0", ("a note",))


@pytest.fixture()
def engine(tmp_path: Path) -> Path:
    """A plan file with a matching sidecar (any bytes do: nothing here deserializes it)."""
    plan = tmp_path / "model.fp16.engine"
    plan.write_bytes(b"plan bytes " * 100)
    write_sidecar(plan, EngineSidecar(MANIFEST, _info(SPEC, plan)))
    return plan


def test_sidecar_round_trip(engine: Path) -> None:
    assert sidecar_path(engine) == engine.with_name("model.fp16.engine.json")
    side = read_sidecar(engine)
    assert side.manifest == MANIFEST and side.build.spec == SPEC and side.build.key == SPEC.key()
    doc = json.loads(sidecar_path(engine).read_text())
    # What a person (or DeepStream config script) looks for, at the top of "build".
    for k in ("trt_version", "gpu_name", "compute_capability", "dla_core", "precision", "profiles", "onnx_sha256", "flags", "key"):
        assert k in doc["build"], k


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("build"), "is damaged (KeyError"),
        (lambda d: d["build"].update(precision="int8"), "edited by hand"),
        (lambda d: d.update(format_version=99), "newer edgevision (sidecar v99"),
        (lambda d: d["build"].update(compute_capability=[8]), "is damaged (IndexError"),
        # no version: read as v0 (an old sidecar), then judged on its fields like any other
        (lambda d: (d.pop("format_version"), d.pop("build")), "is damaged (KeyError"),
    ],
)
def test_damaged_sidecars_are_named(engine: Path, edit: object, message: str) -> None:
    path = sidecar_path(engine)
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        read_sidecar(engine)


def test_missing_sidecar_explains(tmp_path: Path) -> None:
    plan = tmp_path / "from_trtexec.engine"
    plan.write_bytes(b"x")
    with pytest.raises(EdgeVisionError, match="Engines from trtexec have none; build it with: edgevision build"):
        read_sidecar(plan)


def test_staleness(engine: Path) -> None:
    assert why_stale(engine, SPEC) is None
    assert why_stale(engine, dataclasses.replace(SPEC, precision="int8")) == "changed: precision: fp16 -> int8"
    assert why_stale(engine.with_name("other.engine"), SPEC) == "no engine yet"
    engine.write_bytes(b"replaced by another build " * 10)
    assert why_stale(engine, SPEC) == "the engine file does not match its sidecar"
    sidecar_path(engine).unlink()
    assert why_stale(engine, SPEC) == f"{engine.name} has no sidecar"


def test_timing_cache_per_version_and_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    a = timing_cache_path(ORIN)
    assert a == tmp_path / "timing" / "tensorrt-10.3.0.30-Orin-sm_87.timing"
    assert a != timing_cache_path(dataclasses.replace(ORIN, flavor=Flavor("tensorrt", "10.3.0.26")))
    assert a != timing_cache_path(dataclasses.replace(ORIN, gpu_name="Orin NX"))


RTX = Flavor("tensorrt_rtx", "1.7.1.116")
RTX_AOT = BuildSpec.for_target(
    DeviceTarget(RTX, "", (0, 0)),
    onnx_sha256="ab" * 32, precision="fp32", profiles=(PROFILE,), flags=("STRONGLY_TYPED",),
)


@pytest.mark.parametrize(
    "spec, here, ok, text",
    [
        (SPEC, ORIN, True, ""),
        (SPEC, dataclasses.replace(ORIN, flavor=Flavor("tensorrt", "10.3.0.26")), False,
         "built with TensorRT 10.3.0.30, but this machine has TensorRT 10.3.0.26: a TensorRT plan loads only in the version that built it"),
        (SPEC, dataclasses.replace(ORIN, flavor=Flavor("tensorrt", "8.5.2.2")), False, "loads only in the version"),
        (SPEC, dataclasses.replace(ORIN, flavor=Flavor("tensorrt_rtx", "1.7.1.116")), False,
         "built with TensorRT 10.3.0.30, but this machine runs TensorRT-RTX 1.7.1.116"),
        (SPEC, DeviceTarget(ORIN.flavor, "Xavier", (7, 2), 2), False, "built for a sm_87 GPU (Orin); this one is sm_72 (Xavier)"),
        (SPEC, DeviceTarget(ORIN.flavor, "RTX 3090", (8, 6)), False, "this one is sm_86"),
        # Same architecture, another model: it runs, with a warning.
        (SPEC, dataclasses.replace(ORIN, gpu_name="Orin NX"), True, "tuned on Orin; this GPU is Orin NX (same sm_87)"),
        (dataclasses.replace(SPEC, dla_core=1), dataclasses.replace(ORIN, dla_cores=1), False,
         "runs on DLA core 1, and this device has 1 DLA core(s)"),
        (dataclasses.replace(SPEC, dla_core=1), ORIN, True, ""),
        # TensorRT-RTX builds ahead of time for Ampere and newer.
        (RTX_AOT, DeviceTarget(RTX, "RTX 4090", (8, 9)), True, ""),
        (RTX_AOT, DeviceTarget(RTX, "RTX 2080 Ti", (7, 5)), False, "targets compute capability 8.0 and newer"),
    ],
)
def test_compatibility(spec: BuildSpec, here: DeviceTarget, ok: bool, text: str) -> None:
    verdict = check_compatible(spec, here)
    assert verdict.ok == ok
    said = " ".join(verdict.problems + verdict.warnings)
    assert text in said, said
    if ok and not text:
        assert not said
