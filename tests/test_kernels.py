"""CUDA kernels without a GPU: each numpy twin against the CPU pipeline on real frames, each
kernel compiled by CUDA 12.6's NVRTC for sm_87 (Orin, JetPack 6: the device the runtime
targets) and sm_72 / sm_53 (Xavier, Nano: the source stays valid there) within a resource
budget, and the driver-API stubs against cuda-python. The kernel itself runs against its
twin, bit for bit, in the `gpu` tests wherever a GPU exists."""
from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.kernels import kernel_source
from edgevision.kernels.letterbox_ref import letterbox_nchw
from edgevision.manifest import Preprocess
from edgevision.preprocess import preprocess

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "yolo": Preprocess(),
    "imagenet_bgr": Preprocess(color="BGR", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), pad_value=0),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("input_hw", [(640, 640), (480, 640), (320, 320)])
@pytest.mark.parametrize("frame_hw", [(576, 768), (101, 333), (720, 1280), (640, 640)])
def test_letterbox_twin_matches_the_cpu_pipeline(preset: str, input_hw: tuple[int, int], frame_hw: tuple[int, int],
                                                 vtest_frames: list[np.ndarray]) -> None:
    """Same geometry and padding exactly; pixel levels within 1 (OpenCV resizes in 11-bit
    fixed point, the kernel in float), and rarely even that."""
    pre = PRESETS[preset]
    frame = vtest_frames[2] if frame_hw == (576, 768) else cv2.resize(vtest_frames[2], frame_hw[::-1])
    twin, geo = letterbox_nchw(frame, input_hw, pre)
    cpu, cpu_geo = preprocess(frame, input_hw, pre)
    assert geo == cpu_geo and twin.shape == cpu.shape[1:] and twin.dtype == np.float32
    level = np.abs(twin - cpu[0]) * np.asarray(pre.std, np.float32)[:, None, None] / np.float32(pre.scale)
    assert level.max() <= 1.0 + 1e-3
    assert (level > 0.5).mean() < 0.15
    if frame_hw == input_hw:  # no resize at all: identical
        assert level.max() < 1e-3


SM = ["sm_87", "sm_72", "sm_53"]


@pytest.mark.parametrize("arch", SM)
@pytest.mark.parametrize("kernel", ["letterbox"])
def test_kernel_compiles_for_every_jetson(kernel: str, arch: str) -> None:
    from edgevision.kernels.nvrtc import JETSON_MAJOR, compile_kernel, nvrtc_version

    assert nvrtc_version()[0] == JETSON_MAJOR, "make test compiles with CUDA 12's NVRTC, the Jetsons' own"
    k = compile_kernel(kernel_source(kernel), kernel, arch)
    assert k.cubin[:4] == b"\x7fELF" and b"letterbox_bgr_to_nchw" in k.cubin
    print(f"{kernel} {arch}: {k.log.splitlines()[-1]}")
    regs = int(re.search(r"Used (\d+) registers", k.log).group(1))  # type: ignore[union-attr]
    assert regs <= 64, f"{regs} registers: occupancy on sm_53 suffers"
    assert "0 bytes spill stores" in k.log and "0 bytes stack frame" in k.log


def test_compile_errors_name_the_line() -> None:
    from edgevision.errors import EdgeVisionError
    from edgevision.kernels.nvrtc import compile_kernel

    with pytest.raises(EdgeVisionError, match=r"compilation of broken for sm_87.*broken.cu\(2\)"):
        compile_kernel('extern "C" __global__ void k() {\n  undefined_thing();\n}\n', "broken", "sm_87")


DRIVER_STUB = ROOT / "typings" / "cuda" / "bindings" / "driver.pyi"


def test_driver_stubs_match_cuda_python() -> None:
    driver = pytest.importorskip("cuda.bindings.driver")
    funcs = [n for n in ast.parse(DRIVER_STUB.read_text()).body if isinstance(n, ast.FunctionDef)]
    assert {f.name for f in funcs} == {"cuModuleLoadData", "cuModuleGetFunction", "cuModuleUnload", "cuLaunchKernel"}
    for f in funcs:
        assert [a.arg for a in f.args.args] == list(inspect.signature(getattr(driver, f.name)).parameters), f.name


# Frames built to sit on the kernel's edges: a single pixel, one-pixel strips (all taps
# clamped), odd sizes, an exact fit (no resampling), a large downscale, a non-contiguous
# crop, and the extreme pixel levels.
EDGE_FRAMES = {
    "vtest": lambda f: f,
    "1x1": lambda f: cv2.resize(f, (1, 1)),
    "2x3": lambda f: cv2.resize(f, (3, 2)),
    "strip-1x997": lambda f: cv2.resize(f, (997, 1)),
    "column-1001x1": lambda f: cv2.resize(f, (1, 1001)),
    "odd-101x333": lambda f: cv2.resize(f, (333, 101)),
    "exact-640x640": lambda f: cv2.resize(f, (640, 640)),
    "4k-2160x3840": lambda f: cv2.resize(f, (3840, 2160)),
    "crop-view": lambda f: f[13:301, 7:522],
    "white": lambda f: np.full((480, 600, 3), 255, np.uint8),
    "black": lambda f: np.zeros((600, 480, 3), np.uint8),
}


@pytest.mark.gpu
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("input_hw", [(640, 640), (480, 640)])
def test_gpu_letterbox_equals_its_twin(preset: str, input_hw: tuple[int, int], vtest_frames: list[np.ndarray]) -> None:
    """Bit for bit, every edge frame, all queued into slots of one batch before one sync
    (staging buffers must not alias), then again with each slot holding another frame."""
    from edgevision.cuda import DeviceBuffer, PinnedBuffer, Stream
    from edgevision.cuda.device import use_device
    from edgevision.kernels.gpu_letterbox import GpuLetterbox

    device = use_device(0)  # makes the primary context current for the driver API
    lb, stream, pre = GpuLetterbox(device.compute_capability), Stream(), PRESETS[preset]
    frames = [make(vtest_frames[i % len(vtest_frames)]) for i, make in enumerate(EDGE_FRAMES.values())]
    plane = 3 * input_hw[0] * input_hw[1] * 4
    dev, host = DeviceBuffer(plane * len(frames)), PinnedBuffer(plane * len(frames))
    for order in (frames, frames[1:] + frames[:1]):  # second round: every slot gets a frame of another size
        geos = [lb.enqueue(f, i, dev.ptr + i * plane, input_hw, pre, stream) for i, f in enumerate(order)]
        stream.copy_to_host(host, dev, plane * len(order))
        stream.synchronize()
        got = host.view(np.float32, (len(order), 3, *input_hw))
        for i, frame in enumerate(order):
            want, geo = letterbox_nchw(frame, input_hw, pre)
            assert geos[i] == geo
            np.testing.assert_array_equal(got[i], want, err_msg=f"slot {i}, frame {frame.shape}")
    lb.close()
    for b in (dev, host):
        b.free()
    stream.close()


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["letterbox"])
def test_kernel_compiles_and_loads_for_this_gpu(kernel: str) -> None:
    """The device's own architecture (a cubin where this NVRTC knows it), within the same budget."""
    from edgevision.device import gpu_status
    from edgevision.kernels.nvrtc import compile_kernel, nvrtc_version, target_for

    cc = gpu_status().compute_capability
    arch = target_for(cc)
    compiled = compile_kernel(kernel_source(kernel), kernel, arch)
    print(f"\n{kernel} for sm_{cc[0]}{cc[1]} as {arch} with NVRTC {nvrtc_version()}: {compiled.log.splitlines()[-1:]}")
    if arch.startswith("sm_"):
        regs = int(re.search(r"Used (\d+) registers", compiled.log).group(1))  # type: ignore[union-attr]
        assert regs <= 64 and "0 bytes spill stores" in compiled.log
    from cuda.bindings import driver as cu

    from edgevision.cuda.device import use_device

    use_device(0)  # the primary context, current for the driver API
    err, module = cu.cuModuleLoadData(compiled.cubin)
    assert int(err) == 0, f"the driver refused the {arch} binary: {err}"
    err, _ = cu.cuModuleGetFunction(module, b"letterbox_bgr_to_nchw")
    assert int(err) == 0, err
    assert int(cu.cuModuleUnload(module)[0]) == 0


@pytest.mark.gpu
def test_cuda_stack_in_use(record_property: Callable[[str, object], None]) -> None:
    """Which cuda-bindings and NVRTC this process really runs (make gpu-check checks each
    stack ran the generation it is named for)."""
    import cuda.bindings

    from edgevision.kernels.nvrtc import nvrtc_version

    record_property("cuda_bindings", cuda.bindings.__version__)
    record_property("nvrtc", "%d.%d" % nvrtc_version())
    print(f"\ncuda-bindings {cuda.bindings.__version__}, NVRTC {'%d.%d' % nvrtc_version()}")


@pytest.mark.parametrize("cc, target", [((8, 7), "sm_87"), ((7, 2), "sm_72"), ((9, 0), "sm_90"),
                                        ((12, 0), "compute_90"), ((11, 0), "compute_90")])
def test_newer_gpus_get_ptx_for_their_driver_to_compile(cc: tuple[int, int], target: str) -> None:
    from edgevision.kernels.nvrtc import compile_kernel, target_for

    assert target_for(cc) == target
    if target.startswith("compute_"):
        ptx = compile_kernel(kernel_source("letterbox"), "letterbox", target).cubin
        assert b".entry letterbox_bgr_to_nchw" in ptx and b".version 8." in ptx  # PTX ISA 8.x: CUDA 12 drivers JIT it


@pytest.mark.parametrize("change, why", [
    ({"interpolation": "area"}, "bilinear letterbox only"),
    ({"resize": "stretch"}, "bilinear letterbox only"),
])
def test_the_gpu_path_declines_what_it_cannot_compute_exactly(change: dict, why: str) -> None:
    import dataclasses

    from edgevision.kernels.gpu_letterbox import supports

    assert supports(Preprocess(), np.dtype(np.float32)) == ""
    assert why in supports(dataclasses.replace(Preprocess(), **change), np.dtype(np.float32))
    assert "float16" in supports(Preprocess(), np.dtype(np.float16))


@pytest.mark.parametrize("arch", ["sm_90", "sm_89", "sm_87", "compute_90"])
def test_kernel_compiles_for_desktop_gpus(arch: str) -> None:
    """Hopper, Ada and Orin with whichever NVRTC is loaded (12 in make test; 13 in the
    cuda-13 run below): a cubin, or PTX whose ISA the loaded NVRTC's drivers read."""
    from edgevision.kernels.nvrtc import compile_kernel, nvrtc_version

    major, minor = nvrtc_version()
    import cuda.bindings

    print(f"NVRTC {major}.{minor}, cuda-bindings {cuda.bindings.__version__}")
    k = compile_kernel(kernel_source("letterbox"), "letterbox", arch)
    if arch.startswith("sm_"):
        assert k.cubin[:4] == b"\x7fELF" and "0 bytes spill stores" in k.log
    else:
        assert f".version {8 if major == 12 else 9}.".encode() in k.cubin


def _stack(found: dict[int, list[str]]) -> dict[int, list[str]]:
    return {12: [], 13: [], **found}


@pytest.mark.parametrize("bindings, driver, found, want", [
    (12, 0, {12: ["a12"], 13: ["a13"]}, (12, "a12")),   # CI: no driver, compile for Jetsons
    (12, 12, {12: ["a12"]}, (12, "a12")),               # JetPack 6
    (13, 13, {12: ["a12"], 13: ["a13"]}, (12, "a12")),  # CUDA 12 preferred: it serves every driver
    (13, 13, {13: ["a13"]}, (13, "a13")),               # the lent H200's own stack
    (13, 0, {13: ["a13"]}, (13, "a13")),
    (12, 13, {12: ["a12"]}, (12, "a12")),               # cuda-bindings 12 on a CUDA 13 driver
])
def test_nvrtc_generation_choice(bindings: int, driver: int, found: dict, want: tuple[int, str]) -> None:
    from edgevision.kernels.nvrtc import choose_libnvrtc

    assert choose_libnvrtc(bindings, driver, _stack(found)) == want


@pytest.mark.parametrize("bindings, driver, found, message", [
    (12, 13, {13: ["a13"]}, "cuda-bindings 12 with a CUDA 13 driver needs libnvrtc.so.12, found libnvrtc.so.13"),
    (13, 12, {13: ["a13"]}, "cuda-bindings 13 with a CUDA 12 driver needs libnvrtc.so.12, found libnvrtc.so.13"),
    (13, 13, {}, "needs libnvrtc.so.12 or libnvrtc.so.13, found none"),
])
def test_nvrtc_generation_refusals_say_what_is_missing(bindings: int, driver: int, found: dict, message: str) -> None:
    from edgevision.errors import EdgeVisionError
    from edgevision.kernels.nvrtc import choose_libnvrtc

    with pytest.raises(EdgeVisionError, match=re.escape(message)):
        choose_libnvrtc(bindings, driver, _stack(found))


def test_both_nvrtc_wheel_layouts_are_found(tmp_path: Path) -> None:
    from edgevision.kernels.nvrtc import find_libnvrtc

    for rel in ("nvidia/cuda_nvrtc/lib/libnvrtc.so.12", "nvidia/cu13/lib/libnvrtc.so.13"):
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).touch()
    assert str(tmp_path / "nvidia/cuda_nvrtc/lib/libnvrtc.so.12") in find_libnvrtc(12, [str(tmp_path)])
    assert str(tmp_path / "nvidia/cu13/lib/libnvrtc.so.13") in find_libnvrtc(13, [str(tmp_path)])


def test_cuda_13_generation_without_a_gpu() -> None:
    """Without a GPU the CUDA 13 path is proven in a child process: cuda-bindings 13 (from
    .venv/cu13, installed by make test) and NVRTC 13 compile for desktop GPUs, refuse
    sm_72/sm_53 with a sentence, and the CUDA stubs match cuda-bindings 13 as they do 12."""
    import os
    import subprocess
    import sys

    from edgevision.kernels.nvrtc import find_libnvrtc

    cu13 = ROOT / ".venv" / "cu13"
    if not (cu13 / "cuda" / "bindings").is_dir():
        pytest.skip("cuda-bindings 13 is not installed in .venv/cu13 (make test installs it)")
    libs = find_libnvrtc(13)
    assert libs, "NVRTC 13 is missing (make test installs nvidia-cuda-nvrtc 13)"
    env = {**os.environ, "PYTHONPATH": str(cu13), "EDGEVISION_NVRTC": libs[0]}
    tests = ["tests/test_tensorrt_cuda.py", "tests/test_kernels.py::test_kernel_compiles_for_desktop_gpus"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *tests],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "NVRTC 13." in run.stdout and "cuda-bindings 13." in run.stdout
    code = ("from edgevision.kernels import kernel_source; from edgevision.kernels.nvrtc import compile_kernel\n"
            "try:\n    compile_kernel(kernel_source('letterbox'), 'letterbox', 'sm_72')\n"
            "except Exception as e:\n    print(e)")
    refused = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "cannot compile for sm_72" in refused.stdout and "nvidia-cuda-nvrtc-cu12==12.6.*" in refused.stdout
