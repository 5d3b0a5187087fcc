"""Run a converted model over a video file and print what it saw, frame by frame.

    python demos/detect_video.py runs/demo/yolo11n-seg.onnx video.mp4
"""
import sys

import edgevision
from edgevision.sources import open_source

model = edgevision.load(sys.argv[1], conf=0.4)
with open_source(sys.argv[2]) as video:
    for frame in video:
        dets = model(frame.image)
        names = ", ".join(f"{n} {c:.2f}" for n, c in zip(dets.class_name, dets.confidence))
        print(f"frame {frame.index}: {names or 'nothing'}")
