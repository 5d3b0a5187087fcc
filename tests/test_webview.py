"""The web view over real HTTP: a real server on 127.0.0.1 (ephemeral port) fed real vtest frames
with real detections drawn on them; every endpoint, the Prometheus text read back by
prometheus_client's own parser, and the token rule (bind 0.0.0.0, connect through 127.0.0.1)."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgevision.detections import Detections
from edgevision.draw import annotate
from edgevision.errors import EdgeVisionError
from edgevision.prometheus import prometheus_text
from edgevision.sinks import JsonlSink
from edgevision.sources import Frame
from edgevision.stats import RunStats
from edgevision.webpreview import TOKEN_ENV, WebPreviewSink, parse_address, redact_uri

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (the dev extra) parses /metrics")

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("person", "bicycle", "car")


def detections(k: int) -> Detections:
    """k+1 real-looking boxes on a 768x576 frame."""
    xyxy = np.array([[40 + 60 * i, 100, 90 + 60 * i, 260] for i in range(k + 1)], np.float32)
    return Detections(xyxy, np.linspace(0.9, 0.5, k + 1, dtype=np.float32), np.arange(k + 1) % 3, class_names=NAMES)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def feed(sink: WebPreviewSink, stats: RunStats, frames: list[np.ndarray], jsonl: JsonlSink | None = None) -> None:
    """Frames 0..n-1 alternate between sources 0 and 1, as a two-camera run would deliver them."""
    for i, image in enumerate(frames):
        dets = detections(i % 3)
        frame = Frame(image, i // 2, source=i % 2)
        stats.add({"decode": 2.0 + i, "infer": 20.0 + 3 * i, "write": 1.0}, dets.count_names())
        drawn = annotate(image, dets)
        sink.write(frame, dets, drawn)
        if jsonl is not None:
            jsonl.write(frame, dets, drawn)


@pytest.fixture()
def served(vtest_frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WebPreviewSink, RunStats]]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    sink, stats = WebPreviewSink("127.0.0.1:0"), RunStats()
    sink.bind(stats)
    feed(sink, stats, vtest_frames[:5])
    yield sink, stats
    sink.close()


def test_page_and_json_endpoints(served: tuple[WebPreviewSink, RunStats], tmp_path: Path,
                                 vtest_frames: list[np.ndarray]) -> None:
    sink, stats = served
    code, headers, page = get(sink.url)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/api/stats" in page and b"/stream/" in page

    code, headers, body = get(sink.url + "api/stats")
    data = json.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert data["frames"] == 5 and data["stages_ms"]["infer"] == stats.to_dict()["stages_ms"]["infer"]
    # no per-source numbers from this RunStats: the view lists the sources it saw, with their frame counts
    assert [(s["index"], s["frames"]) for s in data["sources"]] == [(0, 3), (1, 2)]

    # /api/detections: the newest frame of each source, exactly as the JSON lines writer wrote it
    jsonl = JsonlSink(tmp_path / "same.jsonl")
    feed(sink, RunStats(), vtest_frames[:5], jsonl)
    jsonl.close()
    written = [json.loads(line) for line in (tmp_path / "same.jsonl").read_text().splitlines()]
    code, _, body = get(sink.url + "api/detections")
    assert code == 200
    assert json.loads(body) == [{**written[4], "source": {"index": 0, "uri": ""}},
                                {**written[3], "source": {"index": 1, "uri": ""}}]


class SchemaStats(RunStats):
    """RunStats as the multi-source pipeline and reconnecting streams report it (the agreed
    per-source schema, built on other branches): source 1 is a camera that reconnected."""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "sources": [
            {"index": 1, "uri": "rtsp://admin:pw@10.1.2.3/live", "state": "reconnecting", "frames": 7, "fps": 4.5,
             "dropped": 3, "reconnects": 2, "events": {"lost": 2, "restored": 1}, "queue": 1}]}


def test_the_runs_per_source_numbers_win_and_unreported_sources_are_filled_in(vtest_frames: list[np.ndarray]) -> None:
    sink, stats = WebPreviewSink("127.0.0.1:0"), SchemaStats()
    sink.bind(stats)
    feed(sink, stats, vtest_frames[:5])
    try:
        sources = json.loads(get(sink.url + "api/stats")[2])["sources"]
        metrics = get(sink.url + "metrics")[2].decode()
        dets = json.loads(get(sink.url + "api/detections")[2])
    finally:
        sink.close()
    assert [s["index"] for s in sources] == [0, 1]
    assert sources[0]["frames"] == 3 and sources[0]["state"] is None  # seen, not reported: what the view counted
    assert sources[1] == {"index": 1, "uri": "rtsp://admin:***@10.1.2.3/live", "state": "reconnecting", "frames": 7,
                          "fps": 4.5, "dropped": 3, "reconnects": 2, "events": {"lost": 2, "restored": 1}, "queue": 1}
    assert "pw" not in metrics and 'edgevision_reconnects_total{source="1",uri="rtsp://admin:***@10.1.2.3/live"} 2' \
        in metrics.splitlines()
    assert [d["source"] for d in dets] == [{"index": 0, "uri": ""}, {"index": 1, "uri": "rtsp://admin:***@10.1.2.3/live"}]


@pytest.mark.parametrize("path, source", [("frame.jpg", 0), ("frame/0.jpg", 0), ("frame/1.jpg", 1)])
def test_frames_are_the_annotated_pictures(served: tuple[WebPreviewSink, RunStats], vtest_frames: list[np.ndarray],
                                           path: str, source: int) -> None:
    sink, _ = served
    code, headers, body = get(sink.url + path)
    assert code == 200 and headers["Content-Type"] == "image/jpeg"
    got = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    last = 4 if source == 0 else 3  # the newest frame of that source
    drawn = annotate(vtest_frames[last], detections(last % 3))
    assert got.shape == drawn.shape
    assert np.abs(got.astype(int) - drawn).mean() < 3.0  # the same picture, up to JPEG
    assert np.abs(got.astype(int) - vtest_frames[last]).mean() > np.abs(got.astype(int) - drawn).mean()


@pytest.mark.parametrize("path, source", [("stream", 0), ("stream/1", 1)])
def test_streams_deliver_new_frames_as_they_come(served: tuple[WebPreviewSink, RunStats],
                                                 vtest_frames: list[np.ndarray], path: str, source: int) -> None:
    sink, stats = served
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    conn.request("GET", "/" + path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("multipart/x-mixed-replace")

    def part() -> np.ndarray:
        assert resp.readline() == b"--frame\r\n"
        head = {}
        while (line := resp.readline()) != b"\r\n":
            key, _, value = line.decode().partition(":")
            head[key.strip().lower()] = value.strip()
        assert head["content-type"] == "image/jpeg"
        body = resp.read(int(head["content-length"]))
        assert resp.readline() == b"\r\n"
        return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)

    first = part()  # the newest frame at once
    sink.write(Frame(vtest_frames[7], 99, source=source), detections(0), vtest_frames[7])
    second = part()  # then the next one, when it arrives
    conn.close()
    plain = cv2.cvtColor(vtest_frames[7], cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(second - plain).mean() < 3.0 < np.abs(first - plain).mean()


def test_metrics_parse_as_prometheus_text(served: tuple[WebPreviewSink, RunStats]) -> None:
    sink, stats = served
    code, headers, body = get(sink.url + "metrics")
    assert code == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in parser.text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert families["edgevision_frames"].type == "counter"
    assert samples[("edgevision_frames_total", (("source", "0"), ("uri", "")))] == 3
    assert samples[("edgevision_frames_total", (("source", "1"), ("uri", "")))] == 2
    stages = stats.to_dict()["stages_ms"]
    for stage in ("decode", "infer", "write"):
        assert samples[("edgevision_stage_ms", (("quantile", "0.5"), ("stage", stage)))] == stages[stage]["p50"]
        assert samples[("edgevision_stage_ms", (("quantile", "0.99"), ("stage", stage)))] == stages[stage]["p99"]
    # unknown numbers (this RunStats has no per-source reconnects or queues) are left out, not written as 0
    assert "edgevision_reconnects" not in families and "edgevision_queue_depth" not in families


def test_metrics_follow_the_per_source_schema_and_escape_labels() -> None:
    """The agreed per-source schema, with a URI that needs every escape the format has."""
    uri = 'rtsp://cam/"a"\\b\nc'
    stats = {"frames": 30, "fps": 12.5, "dropped": 4, "seconds": 2.4,
             "stages_ms": {"infer": {"p50": 8.25, "p99": 19.0, "mean": 9.1}},
             "sources": [{"index": 0, "uri": uri, "state": "reconnecting", "frames": 30, "fps": 12.5, "dropped": 4,
                          "reconnects": 2, "events": {"lost": 2, "restored": 1}, "queue": 3},
                         {"index": 1, "uri": "b.mp4", "state": "live", "frames": 0, "fps": 0.0, "dropped": 0,
                          "reconnects": 0, "events": {}, "queue": {"in": 1, "out": 0}}]}
    text = prometheus_text(stats)
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    a = (("source", "0"), ("uri", uri))
    assert got[("edgevision_reconnects_total", a)] == 2
    assert got[("edgevision_dropped_frames_total", a)] == 4
    assert got[("edgevision_source_events_total", (("kind", "lost"), *a))] == 2
    assert got[("edgevision_queue_depth", a)] == 3
    assert got[("edgevision_queue_depth", (("queue", "in"), ("source", "1"), ("uri", "b.mp4")))] == 1
    assert got[("edgevision_source_state", (("source", "0"), ("state", "reconnecting"), ("uri", uri)))] == 1
    assert got[("edgevision_source_state", (("source", "0"), ("state", "live"), ("uri", uri)))] == 0
    assert got[("edgevision_stage_ms", (("quantile", "0.99"), ("stage", "infer")))] == 19.0
    # every family announced once, before its samples
    assert all(text.count(f"# TYPE {name} ") == 1 for name in
               ("edgevision_frames_total", "edgevision_fps", "edgevision_stage_ms", "edgevision_source_state"))


@pytest.mark.parametrize("address, expect", [
    ("8080", ("127.0.0.1", 8080)),
    (":8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("[::1]:8080", ("::1", 8080)),
    ("http://127.0.0.1:0", ("127.0.0.1", 0)),
    ("camera.local:80", ("camera.local", 80)),
    ("eight", None),
    ("127.0.0.1:99999", None),
])
def test_serve_addresses(address: str, expect: tuple[str, int] | None) -> None:
    if expect is None:
        with pytest.raises(EdgeVisionError, match=r"\[HOST:\]PORT"):
            parse_address(address)
    else:
        assert parse_address(address) == expect


def test_camera_passwords_stay_off_the_view() -> None:
    assert redact_uri("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"
    assert redact_uri("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"
    assert redact_uri("/videos/a.mp4") == "/videos/a.mp4"


@pytest.mark.parametrize("address", ["0.0.0.0:0", "camera.local:0"])
def test_an_exposed_address_needs_a_token(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(EdgeVisionError, match="needs|token"):
        WebPreviewSink(address)


@pytest.mark.parametrize("from_env", [False, True])
def test_token_is_required_off_loopback(from_env: bool, vtest_frames: list[np.ndarray],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    token = "s3cret-token"
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    if from_env:
        monkeypatch.setenv(TOKEN_ENV, token)
    sink = WebPreviewSink("0.0.0.0:0", token=None if from_env else token)  # every interface: loopback among them
    stats = RunStats()
    sink.bind(stats)
    feed(sink, stats, vtest_frames[:2])
    base = f"http://127.0.0.1:{sink.port}/"
    try:
        for path in ("", "api/stats", "api/detections", "metrics", "frame.jpg", "stream/0"):
            code, headers, _ = get(base + path)
            assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
            assert get(base + path, {"Authorization": "Bearer wrong"})[0] == 401, path
            assert get(base + path + "?token=wrong")[0] == 401, path
        for path in ("", "api/stats", "api/detections", "metrics", "frame.jpg"):
            assert get(base + path, {"Authorization": f"Bearer {token}"})[0] == 200, path
            assert get(base + path + f"?token={token}")[0] == 200, path  # what the page and its <img> use
    finally:
        sink.close()


def test_loopback_view_refuses_foreign_host_names(served: tuple[WebPreviewSink, RunStats]) -> None:
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 must not read the cameras."""
    sink, _ = served
    for host, code in ((f"evil.example:{sink.port}", 403), ("evil.example", 403), (f"localhost:{sink.port}", 200),
                       (f"127.0.0.1:{sink.port}", 200), (f"[::1]:{sink.port}", 200)):
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
        conn.request("GET", "/api/stats", headers={"Host": host})
        assert conn.getresponse().status == code, host
        conn.close()


@pytest.mark.parametrize("args, message", [
    (["--serve", "0.0.0.0:0"], "give a token"),
    (["--serve-token", "abc"], "add --serve"),
    (["--serve", "eight"], "[HOST:]PORT"),
])
def test_cli_refuses_unprotected_or_bad_serve(args: list[str], message: str, tmp_path: Path) -> None:
    """Refused before anything is loaded: the artifact does not even exist."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    res = subprocess.run([sys.executable, "-m", "edgevision", "run", str(tmp_path / "none.onnx"), "--source", "x.mp4",
                          *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.slow
def test_cli_serves_the_run(seg_onnx: Path, vtest: Path) -> None:
    """`edgevision run --serve 0` (a free port on 127.0.0.1) with the token from the environment:
    the printed URL answers with the live numbers while the run goes on; Ctrl-C ends it cleanly."""
    env = {**os.environ, TOKEN_ENV: "cli-token"}
    proc = subprocess.Popen([sys.executable, "-m", "edgevision", "run", str(seg_onnx), "--source", str(vtest),
                             "--serve", "0", "--quiet", "--max-frames", "600"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        while not (m := re.match(r"web view: (http://127\.0\.0\.1:\d+/) \(every request needs the token",
                                 line := proc.stderr.readline())):
            assert line, "the run ended before serving"
        url = m.group(1)
        assert get(url + "api/stats")[0] == 401
        auth = {"Authorization": "Bearer cli-token"}
        deadline = time.monotonic() + 120
        while (stats := json.loads(get(url + "api/stats", auth)[2]))["frames"] < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stats["frames"] >= 3 and stats["sources"][0]["frames"] >= 3
        assert "infer" in stats["stages_ms"]
        assert json.loads(get(url + "api/detections", auth)[2])[0]["detections"]
        assert "edgevision_frames_total" in get(url + "metrics", auth)[2].decode()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "interrupted after" in err and "Traceback" not in err, err[-2000:]
    assert "FPS" in out  # the run's statistics, printed as always
