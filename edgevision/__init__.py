"""edgevision: take a trained detector or segmenter to a camera on the edge.

Importing this package needs numpy alone; ONNX Runtime, OpenCV, TensorRT and CUDA
load on first use.
"""
from .detections import Detections
from .errors import EdgeVisionError
from .manifest import Manifest
from .model import Model, load

__version__ = "0.1.0"
__all__ = ["Detections", "EdgeVisionError", "Manifest", "Model", "load", "__version__"]
