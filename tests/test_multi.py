"""Many sources through one model (edgevision/multi.py) on real video: short clips of vtest.avi
written here, a real live source faster than the model, a source that breaks, stop() from
another thread, trackers per source, and the CLI with two --source."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgevision
from edgevision.detections import Detections
from edgevision.health import EventKind, SourceEvent, SourceState
from edgevision.multi import MultiPipeline, numbered_path
from edgevision.pipeline import Result
from edgevision.sinks import JsonlSink
from edgevision.sources import CaptureSource, Frame, Source
from edgevision.stats import RunStats, SourceStats

ROOT = Path(__file__).resolve().parents[1]


def write_clip(vtest: Path, path: Path, start: int, count: int) -> Path:
    """Frames start..start+count-1 of vtest.avi at half size, as an MJPG .avi."""
    cap = cv2.VideoCapture(str(vtest))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (384, 288))
    for _ in range(count):
        ok, image = cap.read()
        assert ok
        out.write(cv2.resize(image, (384, 288)))
    out.release()
    cap.release()
    return path


def read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames


@pytest.fixture(scope="module")
def clips(vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three short clips of different lengths (4, 6 and 3 frames) from different parts of vtest."""
    folder = tmp_path_factory.mktemp("clips")
    return [write_clip(vtest, folder / f"clip{i}.avi", start, n)
            for i, (start, n) in enumerate([(0, 4), (300, 6), (600, 3)])]


class FastCamera(Source):
    """A real live source faster than any model here: real vtest frames, one every 2 ms,
    for ever (until the run stops)."""

    live = True

    def __init__(self, frames: list[np.ndarray], uri: str = "fast://camera") -> None:
        self.frames, self.uri, self.fps, self._i = frames, uri, 500.0, 0
        self.state = SourceState.LIVE
        self.closed = False

    def read(self) -> Frame | None:
        time.sleep(0.002)
        self._i += 1
        return Frame(self.frames[self._i % len(self.frames)], self._i - 1, source=self.index)

    def close(self) -> None:
        self.closed = True


class BreaksAfter(CaptureSource):
    """A real file whose decoder dies after `n` frames (a bug, not an EdgeVisionError)."""

    def __init__(self, path: Path, n: int) -> None:
        super().__init__(str(path), str(path), live=False)
        self.n = n

    def read(self) -> Frame | None:
        if self._i >= self.n:
            raise RuntimeError("decoder crashed")
        return super().read()


class StampTracker:
    """A small real tracker stand-in: stamps every detection of a frame with how many frames
    this tracker has seen, so the ids show one tracker per source fed in frame order."""

    def __init__(self) -> None:
        self.seen = 0

    def update(self, dets: Detections) -> Detections:
        out = dets[np.ones(len(dets), bool)]
        out.tracker_id = np.full(len(dets), self.seen, np.int64)
        self.seen += 1
        return out


def test_files_batched_lose_nothing_keep_order_and_match_single_frame_runs(seg_onnx: Path, clips: list[Path]) -> None:
    model = edgevision.load(seg_onnx, masks=False)
    events: list[SourceEvent] = []
    pipe = MultiPipeline(model, [str(c) for c in clips], on_event=events.append)
    assert pipe.max_batch == 3  # one frame per source: the artifact's batch axis is dynamic
    results = list(pipe)
    lengths = [4, 6, 3]
    for i, clip in enumerate(clips):
        mine = [r for r in results if r.source == i]
        assert [r.frame.index for r in mine] == list(range(lengths[i])), f"source {i}: frames lost or out of order"
        for r, image in zip(mine, read_all(clip)):  # each file alone, one frame at a time
            alone = model(image)
            assert isinstance(r.detections, Detections) and isinstance(alone, Detections)
            np.testing.assert_array_equal(r.detections.class_id, alone.class_id)
            np.testing.assert_allclose(r.detections.xyxy, alone.xyxy, atol=0.05)
    assert max(pipe.batch_sizes) == 3 and sum(k * v for k, v in pipe.batch_sizes.items()) == 13
    s = pipe.stats.to_dict()
    assert s["frames"] == 13 and s["dropped"] == 0
    assert [(d["index"], d["uri"], d["frames"], d["dropped"], d["state"], d["events"]) for d in s["sources"]] == [
        (i, str(c), n, 0, "ended", {"ended": 1}) for i, (c, n) in enumerate(zip(clips, lengths))]
    assert sorted((e.source, e.kind) for e in events) == [(i, EventKind.ENDED) for i in range(3)]


def with_fixed_batch(onnx_path: Path, batch: int, out: Path) -> Path:
    """The same artifact with its image input's batch axis fixed (as a static-batch export or
    engine would have it); the manifest travels in the file's metadata."""
    import onnx

    model = onnx.load(str(onnx_path))
    dim = next(i for i in model.graph.input if i.name == "images").type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = batch
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("batch", [1, 4])
def test_fixed_batch_artifacts_run_padded_or_one_frame_at_a_time_and_fairly(
        batch: int, seg_onnx: Path, clips: list[Path], tmp_path: Path) -> None:
    """batch 1: one frame per inference, sources taking turns; batch 4 with two sources:
    batches of (at most) two frames padded to four. Either way the results are each frame's own."""
    fixed = edgevision.load(with_fixed_batch(seg_onnx, batch, tmp_path / f"b{batch}.onnx"), masks=False)
    reference = edgevision.load(seg_onnx, masks=False)
    pipe = MultiPipeline(fixed, [str(clips[0]), str(clips[1])])
    assert (pipe.min_batch, pipe.max_batch) == (batch, min(batch, 2))
    results = list(pipe)
    assert max(pipe.batch_sizes) == min(batch, 2) and sum(k * v for k, v in pipe.batch_sizes.items()) == 10
    # while both have frames the sources take turns (a source that is not ready at the very
    # start is not waited for, so the other may lead by a batch, never by more)
    sources = [r.source for r in results[:8]]
    assert max(abs(sources[:k].count(0) - sources[:k].count(1)) for k in range(9)) <= 2, sources
    for i, clip in ((0, clips[0]), (1, clips[1])):
        mine = [r for r in results if r.source == i]
        assert [r.frame.index for r in mine] == list(range(len(read_all(clip))))
        for r, image in zip(mine, read_all(clip)):
            np.testing.assert_allclose(r.detections.xyxy, reference(image).xyxy, atol=0.05)  # type: ignore[union-attr]


def test_live_source_faster_than_the_model_stays_recent(seg_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    """The camera makes ~500 frames/s, the model a few: stale frames are dropped (counted)
    and the results' age stays bounded instead of growing with a backlog."""
    model = edgevision.load(seg_onnx, masks=False)
    cam = FastCamera(vtest_frames)
    pipe = MultiPipeline(model, [cam])
    ages, dropped, waits, indices = [], [], [], []
    for r in pipe:
        ages.append(time.perf_counter() - r.frame.timestamp)
        indices.append(r.frame.index)
        dropped.append(pipe.stats.sources[0].dropped)
        waits.append(r.timings["wait"])
        if len(ages) == 8:
            break
    assert cam.closed and pipe.stats.sources[0].state == SourceState.LIVE
    assert dropped[-1] > dropped[2] > 0, "stale frames must be dropped and counted"
    # a backlog would make the 8th result ~8 inferences old; dropping keeps it about one
    assert max(ages[-3:]) < 2 * max(ages[:3]) + 0.25, ages
    assert max(waits) < 100, f"queued frames must be fresh, waited {waits} ms"
    # the frames processed jump ahead: the ones in between were dropped
    assert indices == sorted(indices) and min(np.diff(indices)) > 1


def test_a_source_that_breaks_does_not_stop_the_others(seg_onnx: Path, clips: list[Path]) -> None:
    model = edgevision.load(seg_onnx, masks=False)
    events: list[SourceEvent] = []
    pipe = MultiPipeline(model, [str(clips[2]), BreaksAfter(clips[1], 2)], on_event=events.append)
    got: dict[int, list[int]] = {0: [], 1: []}
    for r in pipe:
        got[r.source].append(r.frame.index)
    assert got == {0: [0, 1, 2], 1: [0, 1]}
    assert isinstance(pipe.errors[1], RuntimeError) and 0 not in pipe.errors
    s = pipe.stats.to_dict()["sources"]
    assert (s[0]["state"], s[0]["events"]) == ("ended", {"ended": 1})
    assert (s[1]["state"], s[1]["events"]) == ("failed", {"failed": 1})
    failed = [e for e in events if e.kind == EventKind.FAILED]
    assert [(e.source, e.detail) for e in failed] == [(1, "decoder crashed")]


def test_stop_from_another_thread_ends_the_run_and_closes_everything(
        seg_onnx: Path, clips: list[Path], vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    model = edgevision.load(seg_onnx, masks=False)
    cam = FastCamera(vtest_frames)
    pipe = MultiPipeline(model, [cam, str(clips[1])], sinks=[tmp_path / "out.jsonl"])
    stopper = threading.Timer(0.0, pipe.stop)
    n = 0
    for r in pipe:
        n += 1
        if n == 2:
            stopper.start()  # the camera never ends: only stop() from another thread ends this run
    stopper.join()
    assert 2 <= n <= 6, "after stop() the run hands out at most the batch in hand"
    assert cam.closed
    assert not [t for t in threading.enumerate() if t.name.startswith("edgevision-reader")]
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == n, "every result handed out was written, and the file was closed cleanly"
    assert {json.loads(x)["source"]["uri"] for x in lines} <= {"fast://camera", str(clips[1])}


def test_started_in_the_background_with_callbacks_and_a_tracker_per_source(
        seg_onnx: Path, clips: list[Path], vtest_frames: list[np.ndarray]) -> None:
    model = edgevision.load(seg_onnx, masks=False)
    got: list[Result] = []
    enough = threading.Event()

    def on_result(r: Result) -> None:
        got.append(r)
        if len(got) >= 8:
            enough.set()

    # the camera capped at 4 frames/s: the ~500 frames/s in between are skipped and counted
    with MultiPipeline(model, [FastCamera(vtest_frames), str(clips[0])], on_result=on_result, fps_cap=[4.0, None],
                       tracker_factory=StampTracker).start() as run:
        assert enough.wait(120)
    assert run.join(1).frames >= 8
    cam_times = [r.frame.timestamp for r in got if r.source == 0]
    assert len(cam_times) >= 2 and min(np.diff(cam_times)) > 0.2, "the FPS cap lets at most one frame in 0.25 s through"
    assert run.stats.sources[0].dropped > 50
    for source in (0, 1):
        mine = [r for r in got if r.source == source]
        stamps = [int(r.detections.tracker_id[0]) for r in mine if len(r.detections)]  # type: ignore[union-attr]
        assert stamps == [i for i, r in enumerate(mine) if len(r.detections)], "one tracker per source, in frame order"
        assert all("track" in r.timings for r in mine)
    assert [r.frame.index for r in got if r.source == 1] == list(range(len([r for r in got if r.source == 1])))


def test_cli_with_two_sources_writes_the_source_per_line_and_a_video_each(seg_onnx: Path, clips: list[Path],
                                                                          tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "edgevision", "run", str(seg_onnx), "--source", str(clips[0]),
                          "--source", str(clips[2]), "--save", str(tmp_path / "out.mp4"),
                          "--jsonl", str(tmp_path / "out.jsonl"), "--stats-json", str(tmp_path / "stats.json"),
                          "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    for i, (clip, n) in enumerate([(clips[0], 4), (clips[2], 3)]):
        mine = [x for x in lines if x["source"] == {"index": i, "uri": str(clip)}]
        assert [x["frame"] for x in mine] == list(range(n))
        assert all("detections" in x for x in mine)
        assert len(read_all(numbered_path(tmp_path / "out.mp4", i))) == n
    assert len(lines) == 7
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert [(s["index"], s["frames"], s["state"]) for s in stats["sources"]] == [(0, 4, "ended"), (1, 3, "ended")]
    assert "out_0.mp4" in res.stdout and "out_1.mp4" in res.stdout
    assert f"source 1 {clips[2]}: 3 frames, 0 dropped, ended, 0 reconnect(s) (ended 1)" in res.stdout  # the summary, per source


# -- fast: no model ----------------------------------------------------------------------------

def test_source_stats_measure_recent_fps_and_serialise_the_agreed_keys() -> None:
    st = SourceStats(0, "cam", SourceState.LIVE, started=100.0)
    for k in range(50):  # 10 frames/s for 5 s
        st.frame_done(100.0 + 0.1 * (k + 1))
    assert st.fps(105.0) == pytest.approx(10.0)
    assert st.fps(102.5) == pytest.approx(10.0)  # younger than the window: over its own age
    assert st.fps(111.0) == 0.0  # stalled for longer than the window
    st.event(EventKind.LOST)
    st.event("restored")
    d = st.to_dict(105.0)
    assert set(d) == {"index", "uri", "state", "frames", "fps", "dropped", "reconnects", "events", "queue"}
    assert (d["state"], d["frames"], d["events"]) == ("live", 50, {"lost": 1, "restored": 1})
    stats = RunStats(sources=[st])
    assert json.loads(json.dumps(stats.to_dict()))["sources"][0]["uri"] == "cam"


def test_jsonl_names_the_source_only_when_a_run_has_several(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    dets = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), class_names=("person",))
    for uris in (["a.mp4"], ["a.mp4", "rtsp://b"]):
        sink = JsonlSink(tmp_path / "x.jsonl")
        sink.bind(RunStats(sources=[SourceStats(i, u) for i, u in enumerate(uris)]))
        sink.write(Frame(image, 7, source=len(uris) - 1), dets, None)
        sink.close()
        line = json.loads((tmp_path / "x.jsonl").read_text())
        expect = {"index": 1, "uri": "rtsp://b"} if len(uris) > 1 else None
        assert line.get("source") == expect and line["frame"] == 7


def test_numbered_path() -> None:
    assert numbered_path("runs/out.mp4", 2) == Path("runs/out_2.mp4")


def test_three_sources_survive_an_rtsp_restart(det_onnx: Path, own_rtsp_server, vtest: Path,  # noqa: ANN001
                                               tmp_path: Path) -> None:
    """The issue's acceptance run: two video files and one RTSP stream from the loopback server
    through one model instance. The server is killed and started again mid-run: the stream's
    lost / restored events arrive, it delivers again, the files keep flowing while it is away,
    and each file's frames arrive exactly once, in order."""
    from edgevision.reconnect import ReconnectPolicy
    from edgevision.sources import open_source

    files = [write_clip(vtest, tmp_path / f"f{i}.avi", start, 40) for i, start in enumerate((100, 500))]
    events: list[SourceEvent] = []
    lost, restored = threading.Event(), threading.Event()

    def on_event(event: SourceEvent) -> None:
        events.append(event)
        if event.source == 2 and event.kind == EventKind.LOST:
            lost.set()
        if event.source == 2 and event.kind == EventKind.RESTORED:
            restored.set()

    def restart_when_lost() -> None:  # from outside the run, as an operator would
        if lost.wait(60):
            time.sleep(0.5)
            own_rtsp_server.start()

    restarter = threading.Thread(target=restart_when_lost, daemon=True)
    restarter.start()
    policy = ReconnectPolicy(initial_s=0.2, factor=2.0, max_delay_s=1.0, stall_s=1.0, open_timeout_s=3.0)
    model = edgevision.load(det_onnx, masks=False)
    rtsp = open_source(own_rtsp_server.url(), reconnect=policy)
    # the files are paced (4 fps) so that they are still running while the stream is away
    pipe = MultiPipeline(model, [*map(str, files), rtsp], fps_cap=[4.0, 4.0, None], on_event=on_event)
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    during_outage = {0: 0, 1: 0}
    rtsp_after = 0
    killed = False
    try:
        for result in pipe:
            seen[result.source].append(result.frame.index)
            if result.source == 2 and len(seen[2]) == 5 and not killed:
                own_rtsp_server.stop()
                killed = True
            if lost.is_set() and not restored.is_set() and result.source in during_outage:
                during_outage[result.source] += 1
            if restored.is_set() and result.source == 2:
                rtsp_after += 1
            files_done = all(len(seen[i]) == 40 for i in (0, 1))
            if files_done and rtsp_after >= 5:
                pipe.stop()
            if files_done and not lost.is_set() and len(seen[2]) > 400:
                pytest.fail("the stream was never lost after the server was killed")
    finally:
        pipe.close()
        model.close()
        restarter.join(5)
    assert seen[0] == list(range(40)) and seen[1] == list(range(40)), "files: every frame once, in order"
    rtsp_events = [e.kind for e in events if e.source == 2]
    assert rtsp_events[:2] == [EventKind.LOST, EventKind.RESTORED], rtsp_events
    assert rtsp_after >= 5, "the stream delivers again after the restart"
    assert seen[2] == sorted(set(seen[2])), "the stream's frame indices only grow across the reconnect"
    assert sum(during_outage.values()) > 0, "the files kept flowing while the stream was away"
    s = pipe.stats.to_dict()["sources"]
    assert [x["frames"] for x in s[:2]] == [40, 40] and s[2]["reconnects"] == 1
    assert s[2]["events"].get("lost") == 1 and s[2]["events"].get("restored") == 1


def test_stage_timings_stay_bounded_over_a_long_run() -> None:
    """A camera app runs for days: each stage keeps at most StageSamples.CAP timings (a uniform
    sample), its count and mean exact, and percentiles close to those of every value."""
    from edgevision.stats import StageSamples

    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 5.0, 50_000)  # skewed, as latencies are
    stats = RunStats()
    for ms in values:
        stats.add({"infer": float(ms)}, [])
    kept = stats.stage_ms["infer"]
    assert isinstance(kept, StageSamples) and len(kept) == StageSamples.CAP and kept.seen == 50_000
    p = stats.percentiles()["infer"]
    assert p["mean"] == pytest.approx(values.mean(), rel=1e-9)
    for q in (50, 99):
        assert p[f"p{q}"] == pytest.approx(np.percentile(values, q), rel=0.05)
    short = RunStats()
    for ms in values[:100]:
        short.add({"infer": float(ms)}, [])
    assert short.percentiles()["infer"]["p99"] == pytest.approx(np.percentile(values[:100], 99))  # exact
