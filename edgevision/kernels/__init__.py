"""CUDA kernels for the TensorRT path, each with a numpy twin of the same arithmetic.

The `.cu` sources are compiled at run time by NVRTC for the device at hand; CI compiles
them for Jetson Orin (sm_87), Xavier (sm_72) and Nano (sm_53) with CUDA 12.6's NVRTC, and
tests each twin against the CPU pipeline on real frames.
"""
from pathlib import Path

KERNEL_DIR = Path(__file__).parent


def kernel_source(name: str) -> str:
    """The CUDA C source of kernels/<name>.cu."""
    return (KERNEL_DIR / f"{name}.cu").read_text()
