"""CUDA kernels without a GPU: each numpy twin against the CPU pipeline on real frames, each
kernel compiled by CUDA 12.6's NVRTC for sm_87 (Orin, JetPack 6: the device the runtime
targets) and sm_72 / sm_53 (Xavier, Nano: the source stays valid there) within a resource
budget, and the driver-API stubs against cuda-python. The kernel itself runs against its
twin, bit for bit, in the `gpu` tests wherever a GPU exists."""
from __future__ import annotations

import ast
import inspect
import re
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
    from edgevision.kernels.nvrtc import compile_kernel, nvrtc

    assert nvrtc().nvrtcVersion()[1:] >= (12, 0)
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


@pytest.mark.gpu
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_gpu_letterbox_equals_its_twin(preset: str, vtest_frames: list[np.ndarray]) -> None:
    from edgevision.cuda import DeviceBuffer, PinnedBuffer, Stream
    from edgevision.cuda.device import use_device
    from edgevision.kernels.gpu_letterbox import GpuLetterbox

    device = use_device(0)  # makes the primary context current for the driver API
    lb, stream, pre = GpuLetterbox(device.compute_capability), Stream(), PRESETS[preset]
    for hw in [(640, 640), (480, 640)]:
        nbytes = 2 * 3 * hw[0] * hw[1] * 4
        dev, host = DeviceBuffer(nbytes), PinnedBuffer(nbytes)
        for i, frame in enumerate(vtest_frames[:2]):
            lb.enqueue(frame, i, dev.ptr + i * nbytes // 2, hw, pre, stream)
        stream.copy_to_host(host, dev, nbytes)
        stream.synchronize()
        got = host.view(np.float32, (2, 3, *hw))
        for i, frame in enumerate(vtest_frames[:2]):
            np.testing.assert_array_equal(got[i], letterbox_nchw(frame, hw, pre)[0])
    lb.close()


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
