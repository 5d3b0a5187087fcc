"""CUDA kernels for the TensorRT path, each with a numpy twin of the same arithmetic.

The `.cu` sources are compiled at run time by NVRTC for the device at hand (a cubin; PTX
for GPUs newer than the NVRTC). CI compiles them with CUDA 12.6's NVRTC for sm_87 (Orin,
JetPack 6, what the runtime targets) and for sm_72 / sm_53 (Xavier, Nano: JetPack 5 and 4
have no CUDA 12, so there this proves only that the source builds), and tests each twin
against the CPU pipeline on real frames.
"""
from pathlib import Path

KERNEL_DIR = Path(__file__).parent


def kernel_source(name: str) -> str:
    """The CUDA C source of kernels/<name>.cu."""
    return (KERNEL_DIR / f"{name}.cu").read_text()
