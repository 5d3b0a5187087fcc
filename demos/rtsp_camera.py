"""An RTSP camera that may drop: the run goes on through reconnects and says what happened.

    python demos/rtsp_camera.py yolo11n-seg.onnx rtsp://camera/stream
"""
import sys

import edgevision
from edgevision.pipeline import Pipeline
from edgevision.reconnect import ReconnectPolicy
from edgevision.sources import open_source

model = edgevision.load(sys.argv[1])
camera = open_source(sys.argv[2], reconnect=ReconnectPolicy(stall_s=3, max_delay_s=10, freeze_s=10, black_s=5))


def on_event(event):  # lost, restored, frozen, black, failed: e.g. raise an alarm here
    print(f"\n{event.uri}: {event.kind.value} {event.detail}")


pipeline = Pipeline(model, camera, ["out.jsonl"], on_event=on_event)
try:
    for result in pipeline:
        print(f"\rframe {result.frame.index} ({camera.state.value}): {len(result.detections)} objects", end="")
except KeyboardInterrupt:
    pass
print("\n" + pipeline.stats.summary())
