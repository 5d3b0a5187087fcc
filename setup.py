"""edgevision: an edge deployment SDK for PyTorch detectors and segmenters."""
from setuptools import find_packages, setup

EXTRAS = {
    # runtime on a device: pick what the device has
    "ort": ["onnxruntime>=1.17"],
    # Intel CPUs (and iGPUs / NPUs). Tested with 2026.4: the manifest in rt_info, the INT8 workaround.
    "openvino": ["openvino>=2026.4"],
    "video": ["opencv-python-headless>=4.8"],
    # --track: ByteTrack-style association solved with scipy's linear_sum_assignment (BSD)
    "track": ["scipy>=1.10"],
    # TensorRT itself comes from JetPack / NVIDIA's index. cuda-python 13 needs a CUDA 13
    # driver; JetPack 6 ships CUDA 12.6. onnx: `edgevision build` reads the graph.
    "trt": ["cuda-python>=12.6.1,<13", "onnx>=1.16"],
    # build side
    "convert": ["torch>=2.4", "torchvision>=0.19", "onnx>=1.16", "onnxsim>=0.4", "onnxruntime>=1.17", "pyyaml>=6"],
    "yolo": ["ultralytics>=8.3"],  # AGPL-3.0: only to unpickle Ultralytics checkpoints
    # --int8-engine nncf (Apache-2.0; 8 MB, pulls scikit-learn, rich, pydot, ninja, safetensors: ~70 MB in all).
    # Ultralytics' OpenVINO INT8 export uses it too (benchmarks/int8_peers.py, bench_cpu.py).
    "nncf": ["nncf>=3.4"],
    "timm": ["timm>=1.0"],  # Apache-2.0: timm classifiers (--arch timm:NAME)
    # websocket-client drives headless Chromium (DevTools protocol) in the web view test;
    # prometheus_client's parser reads /metrics back
    "dev": ["pytest>=8", "pytest-xdist>=3.5", "mypy>=1.10", "ruff>=0.5", "websocket-client>=1.6", "prometheus_client>=0.17"],
}
EXTRAS["all"] = sorted({r for reqs in EXTRAS.values() for r in reqs})

setup(
    name="edgevision",
    version="0.1.0",
    description="Take a trained PyTorch detector or segmenter to a camera on the edge: ONNX, TensorRT, real-time video.",
    python_requires=">=3.10",
    packages=find_packages(include=["edgevision", "edgevision.*", "converters", "converters.*"]),
    install_requires=["numpy>=1.23"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": ["edgevision=edgevision.cli:main"],
        # Sub-commands the build side adds to `edgevision` (edgevision/cli/commands.py reads
        # this group): the runtime lists them without importing, or naming, the build side.
        "edgevision.commands": [
            "convert=converters.cli.convert",
            "build=edgevision.build.cli",
            "verify=converters.cli.verify",
        ],
    },
)
