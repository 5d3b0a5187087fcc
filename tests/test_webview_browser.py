"""The web view in a real headless Chromium, driven over the DevTools protocol (tests/chromium.py).

1. A pipeline runs the demo model over vtest.avi delivered live; the browser loads the page with a
   token (as it must off loopback): the stream's frames arrive and change, the numbers move, and a
   screenshot is written to tests/output/webview.png (gitignored; also in pytest's tmp_path).
2. Six sources fed straight into the view: a card each, the first four streamed, the rest refreshed
   as snapshots, per-source health as the run reports it (tests/output/webview-6-sources.png)."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edgevision
from edgevision.draw import annotate
from edgevision.pipeline import Pipeline
from edgevision.sources import Frame
from edgevision.webpreview import WebPreviewSink
from tests.chromium import CHROMIUM
from tests.test_pipeline import PacedCamera
from tests.test_webview import SchemaStats, detections

pytest.importorskip("websocket", reason="websocket-client (the dev extra) drives Chromium over the DevTools protocol")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` installs Debian's chromium)")

OUTPUT = Path(__file__).resolve().parent / "output"
TOKEN = "browser-test-token"

# the numbers the page shows, read from its DOM
NUMBERS = """(() => {
  const n = (sel) => parseFloat(document.querySelector(sel).textContent);
  return {frames: n('#frames'), fps: n('#fps'), source_frames: n('#source-0 .frames'), source_fps: n('#source-0 .fps'),
          state: document.querySelector('#source-0 .state').textContent,
          stages: [...document.querySelectorAll('#stages tbody tr')].map(r => [...r.cells].map(c => c.textContent))};
})()"""
# a checksum of the pixels the stream's <img> shows now (same origin, so the canvas may read them)
PIXELS = """(() => {
  const img = document.getElementById('stream-0'), c = document.createElement('canvas');
  c.width = 96; c.height = 72;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 96, 72);
  return Array.from(g.getImageData(0, 0, 96, 72).data).reduce((a, v, i) => (a + v * (i % 251 + 1)) % 1000000007, 0);
})()"""


@pytest.mark.slow
def test_page_shows_live_frames_and_moving_numbers(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    from tests.chromium import Chromium

    model = edgevision.load(seg_onnx)
    sink = WebPreviewSink("127.0.0.1:0", token=TOKEN)
    pipe = Pipeline(model, PacedCamera(vtest, fps=12), [sink])
    runner = threading.Thread(target=pipe.run, daemon=True)
    runner.start()
    try:
        with Chromium() as browser:
            browser.navigate(f"{sink.url}?token={TOKEN}")
            width = browser.wait_for("document.getElementById('stream-0')?.naturalWidth", timeout=60)
            assert width == 768  # a real decoded frame of vtest.avi, through the token-protected stream
            browser.wait_for("parseFloat(document.querySelector('#source-0 .frames')?.textContent) > 0", timeout=30)
            first, pixels = browser.evaluate(NUMBERS), browser.evaluate(PIXELS)
            # the numbers move and the picture changes (people walk in vtest.avi); waited for, not slept
            # on: a loaded 2-core machine may infer one frame a second
            browser.wait_for(f"parseFloat(document.querySelector('#source-0 .frames').textContent) > "
                             f"{first['source_frames']}", timeout=60)
            browser.wait_for(f"({PIXELS}) !== {pixels}", timeout=60)
            time.sleep(1.5)  # one more poll of /api/stats, so every number on the page is the newer one
            second = browser.evaluate(NUMBERS)
            shot = browser.screenshot(tmp_path / "webview.png")
        assert second["frames"] > first["frames"] > 0
        assert second["source_frames"] > first["source_frames"] > 0
        assert second["fps"] > 0 and second["source_fps"] > 0
        stages = {row[0]: row for row in second["stages"]}
        assert {"decode", "preprocess", "infer", "postprocess", "annotate", "write"} <= set(stages)
        assert float(stages["infer"][1]) > 0 and float(stages["infer"][2]) >= float(stages["infer"][1])
        assert shot.stat().st_size > 20_000  # a page with a picture in it, not a blank PNG
        OUTPUT.mkdir(exist_ok=True)
        shutil.copy(shot, OUTPUT / "webview.png")
    finally:
        pipe.stop()
        runner.join(timeout=30)
        model.close()
    assert not runner.is_alive()


@pytest.mark.slow  # ~10 s: Chromium's start and a few seconds of frames
def test_six_sources_each_get_a_card_streams_or_snapshots(vtest_frames: list[np.ndarray], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.chromium import Chromium

    monkeypatch.delenv("EDGEVISION_SERVE_TOKEN", raising=False)
    sink, stats = WebPreviewSink("127.0.0.1:0"), SchemaStats()  # loopback: no token needed
    sink.bind(stats)
    drawn = [annotate(image, detections(i % 3)) for i, image in enumerate(vtest_frames)]
    stop = threading.Event()

    def cameras() -> None:  # six cameras at ~8 FPS each
        tick = 0
        while not stop.is_set():
            for src in range(6):
                k = (tick + src) % len(drawn)
                stats.add({"infer": 5.0 + src}, [])
                sink.write(Frame(vtest_frames[k], tick, source=src), detections(k % 3), drawn[k])
            tick += 1
            time.sleep(0.125)

    feeder = threading.Thread(target=cameras, daemon=True)
    feeder.start()
    try:
        with Chromium(height=1400) as browser:
            browser.navigate(sink.url)
            browser.wait_for("document.querySelectorAll('#sources .card').length === 6", timeout=30)
            browser.wait_for("[...Array(6).keys()].every(i => document.getElementById('stream-' + i).naturalWidth === 768)",
                             timeout=30)
            srcs = browser.evaluate("[...Array(6).keys()].map(i => new URL(document.getElementById('stream-' + i).src)"
                                    ".pathname)")
            first = browser.evaluate("parseFloat(document.querySelector('#source-5 .frames').textContent)")
            browser.wait_for(f"parseFloat(document.querySelector('#source-5 .frames').textContent) > {first}")
            health = browser.evaluate("['state', 'reconnects', 'events', 'uri'].map(c => "
                                      "document.querySelector('#source-1 .' + c).textContent)")
            browser.screenshot(tmp_path / "webview-6-sources.png")
    finally:
        stop.set()
        feeder.join()
        sink.close()
    # a browser holds ~6 connections per host: four MJPEG streams, the rest refreshed snapshots
    assert srcs[:4] == [f"/stream/{i}" for i in range(4)]
    assert all(s.startswith(f"/frame/{i}.jpg") for i, s in zip(range(4, 6), srcs[4:]))
    assert health == ["reconnecting", "2", "lost 2, restored 1", "rtsp://admin:***@10.1.2.3/live"]
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "webview-6-sources.png", OUTPUT / "webview-6-sources.png")
