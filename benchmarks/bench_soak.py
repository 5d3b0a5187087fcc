"""Soak: a long multi-source run with an RTSP camera cut every minute; does anything grow?

Two sources through one model (edgevision.multi.MultiPipeline), as a camera app runs them:
  0  vtest.avi looping forever, paced at its own frame rate (a camera that never ends)
  1  rtsp://127.0.0.1:PORT/video from the real GStreamer RTSP server (tests/rtsp_server.py),
     killed every --cut-every seconds and started again --down seconds later
Every --sample seconds: resident memory (VmRSS), threads and open file descriptors of this
process, frames per source, reconnects and events. Written to benchmarks/results/bench_soak.{json,md,png}.

"Flat" is judged after a warm-up (the first two minutes: ONNX Runtime's arenas, FFmpeg's
buffers): the last third's median RSS against the second third's, and the thread and fd
counts' range, sampled while the stream is up (a reconnect briefly holds one more thread).

    python benchmarks/bench_soak.py --minutes 10 [--artifact model.onnx]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevision import load  # noqa: E402
from edgevision.health import SourceEvent  # noqa: E402
from edgevision.multi import MultiPipeline  # noqa: E402
from edgevision.reconnect import ReconnectPolicy  # noqa: E402
from edgevision.sources import Frame, Source, open_source  # noqa: E402
from tests.rtsp import RtspServer, missing  # noqa: E402

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
RESULTS = Path(__file__).parent / "results"


class LoopingFile(Source):
    """A video file that starts over at its end, paced at its frame rate: a camera that never ends."""

    live = True

    def __init__(self, path: Path) -> None:
        self.path, self.uri = path, f"{path} (looping)"
        self._src = open_source(str(path))
        self.fps, self.size = self._src.fps or 25.0, self._src.size
        self.state = self._src.state
        self._i, self._next = 0, time.monotonic()

    def read(self) -> Frame | None:
        frame = self._src.read()
        if frame is None:  # the end: open it again
            self._src.close()
            self._src = open_source(str(self.path))
            frame = self._src.read()
            if frame is None:
                return None
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0)
        time.sleep(max(0.0, self._next - time.monotonic()))
        self._i += 1
        return Frame(frame.image, self._i - 1, source=self.index)

    def close(self) -> None:
        self._src.close()


def proc_status() -> dict[str, int]:
    """This process' resident memory (KiB), threads and open file descriptors, from /proc."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss_kib": fields["VmRSS"], "threads": fields["Threads"], "fds": len(os.listdir("/proc/self/fd"))}


def artifact(path: str | None, work: Path) -> Path:
    if path:
        return Path(path)
    from converters.export import ExportOptions, convert
    from demos.assets import demo_checkpoint

    return convert(demo_checkpoint(), work, ExportOptions(imgsz=(320, 320))).onnx_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cut-every", type=float, default=60.0, help="seconds between RTSP server kills")
    ap.add_argument("--down", type=float, default=5.0, help="seconds the server stays down")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--artifact", help="a converted .onnx (default: the demo model converted at 320x320)")
    ap.add_argument("--work", default="runs/soak")
    args = ap.parse_args()
    if why := missing():
        sys.exit(why)
    model = load(artifact(args.artifact, Path(args.work)), backend="onnxruntime")
    server = RtspServer(VTEST).start()
    events: list[dict[str, object]] = []
    t0 = time.monotonic()

    def on_event(event: SourceEvent) -> None:
        events.append({**event.to_dict(), "t_s": round(event.at - t0, 2)})

    rtsp = open_source(server.url(), reconnect=ReconnectPolicy(initial_s=0.5, max_delay_s=2.0, stall_s=2.0))
    pipeline = MultiPipeline(model, [LoopingFile(VTEST), rtsp], on_event=on_event)
    samples: list[dict[str, float]] = []
    cuts: list[tuple[float, float]] = []
    stop = threading.Event()

    def cutter() -> None:
        while not stop.wait(args.cut_every):
            down = time.monotonic() - t0
            server.stop()
            if stop.wait(args.down):
                break
            server.start()
            cuts.append((round(down, 2), round(time.monotonic() - t0, 2)))

    pipeline.start()
    threading.Thread(target=cutter, name="soak-cutter", daemon=True).start()
    try:
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(args.sample)
            st = pipeline.stats.to_dict()
            src = st.get("sources", [])
            samples.append({"t_s": round(time.monotonic() - t0, 1), **proc_status(),
                            "frames": [s["frames"] for s in src], "reconnects": [s["reconnects"] for s in src],
                            "states": [s["state"] for s in src]})
            print(f"{samples[-1]['t_s']:7.1f}s rss {samples[-1]['rss_kib'] / 1024:7.1f} MiB threads "
                  f"{samples[-1]['threads']:3d} fds {samples[-1]['fds']:3d} frames {samples[-1]['frames']} "
                  f"states {samples[-1]['states']}", flush=True)
    finally:
        stop.set()
        pipeline.stop()
        stats = pipeline.join(timeout=30)
        model.close()
        if server.proc is not None:
            server.stop()
    summarize(args, samples, events, cuts, stats.to_dict())


def summarize(args: argparse.Namespace, samples: list[dict], events: list[dict], cuts: list,
              stats: dict) -> None:
    warm = [s for s in samples if s["t_s"] >= 120] or samples
    third = max(1, len(warm) // 3)
    mid, last = warm[third:2 * third] or warm, warm[-third:]
    up = [s for s in warm if s["states"][1:] == ["live"]] or warm  # the stream up: no reconnect thread
    rss_mid = float(np.median([s["rss_kib"] for s in mid])) / 1024
    rss_last = float(np.median([s["rss_kib"] for s in last])) / 1024
    result = {
        "what": "MultiPipeline: looping vtest.avi + loopback RTSP cut every minute, one model (ONNX Runtime CPU)",
        "minutes": args.minutes, "cut_every_s": args.cut_every, "down_s": args.down,
        "rss_mib_median_second_third": round(rss_mid, 1), "rss_mib_median_last_third": round(rss_last, 1),
        "rss_growth_mib_per_hour": round((rss_last - rss_mid) / max((last[-1]["t_s"] - mid[0]["t_s"]) / 3600, 1e-9), 1),
        "threads_range_stream_up": [min(s["threads"] for s in up), max(s["threads"] for s in up)],
        "fds_range_stream_up": [min(s["fds"] for s in up), max(s["fds"] for s in up)],
        "cuts": cuts, "events": events, "final_stats": {k: stats[k] for k in ("frames", "dropped", "fps", "sources")},
        "samples": samples,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_soak.json").write_text(json.dumps(result, indent=2))
    lost = sum(e["event"] == "lost" for e in events)
    restored = sum(e["event"] == "restored" for e in events)
    md = [
        "# Soak: looping file + RTSP cut every minute, one model", "",
        f"{args.minutes:g} min, {len(cuts)} server restarts, events: {lost} lost / {restored} restored; "
        f"frames per source {[s['frames'] for s in stats['sources']]}, reconnects "
        f"{[s['reconnects'] for s in stats['sources']]}.", "",
        "| after warm-up (2 min) | value |", "|---|---|",
        f"| RSS median, second third | {rss_mid:.1f} MiB |", f"| RSS median, last third | {rss_last:.1f} MiB |",
        f"| RSS trend | {result['rss_growth_mib_per_hour']} MiB/hour |",
        f"| threads (stream up), min-max | {result['threads_range_stream_up']} |",
        f"| open fds (stream up), min-max | {result['fds_range_stream_up']} |", "",
        "![RSS and threads over time](bench_soak.png)",
    ]
    (RESULTS / "bench_soak.md").write_text("\n".join(md) + "\n")
    plot(samples, cuts)
    print("\n".join(md))


def plot(samples: list[dict], cuts: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, ax = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    ax[0].plot(t, [s["rss_kib"] / 1024 for s in samples])
    ax[0].set_ylabel("RSS MiB")
    ax[1].plot(t, [s["threads"] for s in samples], label="threads")
    ax[1].plot(t, [s["fds"] for s in samples], label="open fds")
    ax[1].legend()
    for i in range(len(samples[0]["frames"]) if samples else 0):
        ax[2].plot(t, [s["frames"][i] for s in samples], label=f"source {i} frames")
    ax[2].legend()
    ax[2].set_xlabel("minutes")
    for down, up in cuts:
        for a in ax:
            a.axvspan(down / 60, up / 60, color="red", alpha=0.15)
    fig.suptitle("edgevision soak: RTSP server down in red")
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_soak.png", dpi=90)


if __name__ == "__main__":
    main()
