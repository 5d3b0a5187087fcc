"""Tracking on a real video: edgevision's ByteTracker against Ultralytics' BYTETracker.

Both trackers get the SAME detections: the demo YOLO11n detector, converted by edgevision
and run on ONNX Runtime (conf 0.1, as Ultralytics' `model.track` uses), on all 795 frames of
vtest.avi. The reference is Ultralytics' own `ultralytics/trackers/byte_tracker.py` with its
default `bytetrack.yaml` (what `model.track(tracker="bytetrack.yaml")` users get). vtest has no
ground-truth identities, so this measures *agreement with that reference*, not accuracy:

- CLEAR-MOT / identity metrics (py-motmetrics) with the reference tracks as ground truth, and
  the reverse. Objects are matched by detection: a reference track and one of ours are the
  same object in a frame when both took the same detection box (both trackers report the
  detection each track took), so a switch means the two trackers disagree about who it is.
- per tracker: track count, mean track length (frames with a box), fragmentation (times a
  track disappears and comes back), ID switches per 100 frames.
- per-frame tracker time, ours and theirs interleaved frame by frame in one process.

Ours runs twice: frame_rate=30 (lost buffer 30 frames, the reference's setting: Ultralytics'
buffer is 30 frames whatever the video's rate) and frame_rate=10, vtest's real rate, which is
what `Pipeline(track=True)` / `--track` use (buffer 1 s = 10 frames). A control, ours with the
low-score stage switched off, shows that the comparison does register trackers that decide differently.

    .venv/bin/python benchmarks/track_vtest.py [--work DIR] [--frames N]

Needs, besides the build side (torch, ultralytics): `pip install motmetrics lap` (py-motmetrics,
MIT; lap, BSD, is what Ultralytics' tracker imports for its assignment).

Results: benchmarks/results/track_vtest.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

import edgevision  # noqa: E402
from demos.assets import VTEST, demo_checkpoint  # noqa: E402
from edgevision.detections import Detections  # noqa: E402
from edgevision.tracking import ByteTracker  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONF = 0.1  # Ultralytics' model.track default: ByteTrack's second stage needs low-score boxes

# frame -> {detection index: track id}
Tracks = list[dict[int, int]]


def detector(work: Path) -> Path:
    """The demo YOLO11n detector (the tests' det_onnx), converted by edgevision into work/."""
    from converters.export import ExportOptions, convert
    from edgevision.sources import sample_frames
    from tests.assets import make_detect_checkpoint

    onnx = work / "det" / "yolo11n-det.onnx"
    if onnx.is_file():
        return onnx
    ckpt = make_detect_checkpoint(demo_checkpoint(), work / "yolo11n-det.pt")
    frames, _ = sample_frames(VTEST, 4)
    return Path(convert(ckpt, work / "det", ExportOptions(), frames).onnx_path)


def detect_all(onnx: Path, frames: int | None) -> list[Detections]:
    """Every frame's detections (in frame order), untracked; kept beside the model for re-runs."""
    cache = onnx.with_name(f"dets_conf{CONF}_{frames or 'all'}.npz")
    if cache.is_file():
        z = np.load(cache)
        cut = np.cumsum(z["counts"])[:-1]
        return [Detections(b, c, k) for b, c, k in zip(np.split(z["xyxy"], cut), np.split(z["conf"], cut),
                                                        np.split(z["cls"], cut))]
    dets = _detect(onnx, frames)
    np.savez(cache, counts=[len(d) for d in dets], xyxy=np.concatenate([d.xyxy for d in dets]),
             conf=np.concatenate([d.confidence for d in dets]), cls=np.concatenate([d.class_id for d in dets]))
    return dets


def _detect(onnx: Path, frames: int | None) -> list[Detections]:
    from edgevision.pipeline import Pipeline, plan_workers

    workers, options = plan_workers(False, onnx, "onnxruntime")
    model = edgevision.load(onnx, conf=CONF, masks=False, **options)
    try:
        return [r.detections for r in Pipeline(model, str(VTEST), max_frames=frames, workers=workers)]
    finally:
        model.close()


class _Boxes:
    """The slice of Ultralytics' `Boxes` its BYTETracker reads (conf, cls, xywh, bool indexing)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy, self.conf, self.cls = xyxy, conf, cls
        self.xywh = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                                     xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]])

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def reference_tracker() -> Any:
    """Ultralytics' BYTETracker with its shipped bytetrack.yaml defaults."""
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import ROOT, YAML

    cfg = YAML.load(ROOT / "cfg" / "trackers" / "bytetrack.yaml")
    return BYTETracker(SimpleNamespace(**cfg)), cfg


def run_trackers(dets: list[Detections], ours: dict[str, ByteTracker], theirs: Any) -> tuple[dict[str, Tracks],
                                                                                             dict[str, list[float]]]:
    """Each frame to every tracker, in rotating order (interleaved timing). Returns per tracker
    the detection -> id map of every frame, and per-frame update times in ms."""
    names = [*ours, "ultralytics"]
    tracks: dict[str, Tracks] = {n: [] for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    for f, d in enumerate(dets):
        # Ultralytics gets the numpy arrays its own Boxes(...).cpu().numpy() would hold
        boxes = _Boxes(d.xyxy.astype(np.float32), d.confidence.astype(np.float32), d.class_id.astype(np.float32))
        order = names[f % len(names):] + names[: f % len(names)]
        for name in order:
            if name == "ultralytics":
                t0 = time.perf_counter()
                out = theirs.update(boxes)
                times[name].append((time.perf_counter() - t0) * 1e3)
                # rows: x1 y1 x2 y2 track_id score cls idx
                tracks[name].append({int(r[7]): int(r[4]) for r in out} if len(out) else {})
            else:
                # ours returns the detections themselves: find each one's index in the frame
                t0 = time.perf_counter()
                res = ours[name].update(d)
                times[name].append((time.perf_counter() - t0) * 1e3)
                tracks[name].append(_index_ids(d, res))
    return tracks, times


def _index_ids(dets: Detections, tracked: Detections) -> dict[int, int]:
    """detection index -> id, for our output (a filtered subset of the frame's detections in order)."""
    out: dict[int, int] = {}
    j = 0
    assert tracked.tracker_id is not None
    for box, conf, cls, tid in zip(tracked.xyxy, tracked.confidence, tracked.class_id, tracked.tracker_id.tolist()):
        # box, score and class: NMS per class can leave two classes on one identical box
        while not (np.array_equal(dets.xyxy[j], box) and dets.confidence[j] == conf and dets.class_id[j] == cls):
            j += 1
        out[j] = tid
        j += 1
    return out


def track_stats(tracks: Tracks) -> dict[str, float]:
    """Track count, mean length (frames with a box) and fragmentation (returns after a gap)."""
    frames_of: dict[int, list[int]] = {}
    for f, m in enumerate(tracks):
        for tid in m.values():
            frames_of.setdefault(tid, []).append(f)
    lengths = [len(v) for v in frames_of.values()]
    frags = sum(int((np.diff(v) > 1).sum()) for v in frames_of.values())
    return {
        "tracks": len(frames_of),
        "mean_track_length_frames": round(float(np.mean(lengths)), 1) if lengths else 0.0,
        "fragmentations": frags,
        "tracked_boxes": int(sum(lengths)),
    }


def agreement(gt: Tracks, hyp: Tracks) -> dict[str, float]:
    """py-motmetrics with `gt` as ground truth; objects are the same when they took the same detection."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for g, h in zip(gt, hyp):
        gi, hi = list(g), list(h)
        dist = np.array([[0.0 if a == b else np.nan for b in hi] for a in gi]).reshape(len(gi), len(hi))
        acc.update([g[i] for i in gi], [h[i] for i in hi], dist)
    metrics = ["num_frames", "idf1", "idp", "idr", "mota", "num_switches", "num_fragmentations",
               "num_false_positives", "num_misses", "num_unique_objects", "mostly_tracked"]
    summary = mm.metrics.create().compute(acc, metrics=metrics, name="x")
    row = {k: float(summary.loc["x", k]) for k in metrics}
    row["id_switches_per_100_frames"] = 100 * row["num_switches"] / row["num_frames"]
    return {k: round(v, 4) for k, v in row.items()}


def ms(v: list[float]) -> dict[str, float]:
    a = np.asarray(v)
    return {"mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgevision-track-bench"))
    ap.add_argument("--frames", type=int, default=None, help="first N frames only (default: all 795)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    onnx = detector(args.work)
    t0 = time.perf_counter()
    dets = detect_all(onnx, args.frames)
    detect_s = time.perf_counter() - t0
    theirs, cfg = reference_tracker()
    ours = {"ours_buffer30": ByteTracker(frame_rate=30), "ours_fps10": ByteTracker(frame_rate=10),
            # a control that must disagree: ByteTrack's low-score stage off (only boxes >= 0.25 are
            # associated, as in SORT), to show what the comparison registers when decisions differ
            "control_no_low_stage": ByteTracker(frame_rate=30, low_thresh=0.25)}
    tracks, times = run_trackers(dets, ours, theirs)

    report: dict[str, Any] = {
        "video": str(VTEST), "frames": len(dets), "video_fps": 10.0,
        "detector": f"{onnx.name} (demo yolo11n detector, edgevision conversion, ONNX Runtime CPU), conf {CONF}",
        "detections": int(sum(len(d) for d in dets)), "detect_seconds": round(detect_s, 1),
        "reference": "ultralytics.trackers.byte_tracker.BYTETracker "
                     f"{__import__('ultralytics').__version__}, bytetrack.yaml: {cfg}",
        "ours": {k: {"frame_rate": v.frame_rate, "lost_buffer_frames": v.max_lost} for k, v in ours.items()},
        "matching": "same object in a frame = same detection box taken by both trackers",
        "machine": {"cpu": platform.processor() or platform.machine(), "load_1min": round(os.getloadavg()[0], 2)},
        "track_stats": {k: track_stats(v) for k, v in tracks.items()},
        "time_ms_per_frame": {k: ms(v) for k, v in times.items()},
        "agreement": {},
    }
    for name in ours:
        report["agreement"][f"{name} vs reference (reference = ground truth)"] = agreement(tracks["ultralytics"],
                                                                                         tracks[name])
        report["agreement"][f"reference vs {name} ({name} = ground truth)"] = agreement(tracks[name],
                                                                                      tracks["ultralytics"])
    ref_mean = report["time_ms_per_frame"]["ultralytics"]["mean"]
    for name in ours:
        report["time_ms_per_frame"][name]["ratio_to_reference"] = round(
            report["time_ms_per_frame"][name]["mean"] / ref_mean, 3)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "track_vtest.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "track_vtest.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Tracking on vtest.avi ({r['frames']} frames, {r['detections']} detections at conf {CONF})", "",
             f"Reference: {r['reference']}", "", f"Matching: {r['matching']}", "",
             "| tracker | tracks | mean length (frames) | fragmentations | tracked boxes | ms/frame mean | p50 | p99 |",
             "|---|---|---|---|---|---|---|---|"]
    for k, s in r["track_stats"].items():
        t = r["time_ms_per_frame"][k]
        lines.append(f"| {k} | {s['tracks']} | {s['mean_track_length_frames']} | {s['fragmentations']} | "
                     f"{s['tracked_boxes']} | {t['mean']} | {t['p50']} | {t['p99']} |")
    lines += ["", "| comparison | IDF1 | MOTA | ID switches | per 100 frames | fragmentations | FP | misses |",
              "|---|---|---|---|---|---|---|---|"]
    for k, a in r["agreement"].items():
        lines.append(f"| {k} | {a['idf1']:.4f} | {a['mota']:.4f} | {int(a['num_switches'])} | "
                     f"{a['id_switches_per_100_frames']:.2f} | {int(a['num_fragmentations'])} | "
                     f"{int(a['num_false_positives'])} | {int(a['num_misses'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
