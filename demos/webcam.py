"""Webcam demo (Jetson or desktop): detections drawn live, with a browser preview.

    python demos/webcam.py yolo11n-seg.onnx            # /dev/video0
    python demos/webcam.py yolo11n-seg.engine csi://0   # Jetson CSI camera
"""
import os
import sys

import edgevision
from edgevision.pipeline import Pipeline

model = edgevision.load(sys.argv[1])                       # .onnx or TensorRT .engine
source = sys.argv[2] if len(sys.argv) > 2 else "/dev/video0"
# the web view: open to the network only when a token protects it (then http://<device>:8080/?token=...)
sinks = ["http://0.0.0.0:8080" if os.environ.get("EDGEVISION_SERVE_TOKEN") else "http://127.0.0.1:8080"]
if "--show" in sys.argv:
    sinks.append("display://0")

pipeline = Pipeline(model, source, sinks)
try:
    for result in pipeline:
        people = (result.detections.class_id == 0).sum()
        print(f"\rframe {result.frame.index}: {people} people, {result.timings['infer']:.1f} ms", end="")
except KeyboardInterrupt:
    pass
print("\n" + pipeline.stats.summary())
