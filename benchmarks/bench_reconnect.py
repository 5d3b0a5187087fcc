"""How long a dead or dropped RTSP stream holds a reader, with and without edgevision's timeouts.

1. Failed opens (cv2.VideoCapture, FFmpeg): a refused port, and a "silent" server that accepts the
   TCP connection and never answers (a hung camera), with OpenCV's defaults and with
   CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC as open_source() sets them.
2. A good open: the loopback RTSP server (tests/rtsp_server.py, vtest.avi at 10 fps, H.264).
3. Recovery, rounds of: a ReconnectingSource reading the server; the server is killed; seconds
   to LOST; the server is restarted `--down` seconds later; seconds from the restart to RESTORED.

    .venv/bin/python benchmarks/bench_reconnect.py [--rounds 3] [--down 2]
Results: benchmarks/results/bench_reconnect.json and .md
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.health import EventKind, SourceEvent  # noqa: E402
from edgevision.reconnect import ReconnectPolicy  # noqa: E402
from edgevision.sources import open_source  # noqa: E402
from tests.assets import VTEST  # noqa: E402
from tests.rtsp import RtspServer, free_port, missing  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def timed_open(url: str, params: list[int]) -> tuple[bool, float]:
    import cv2

    t0 = time.monotonic()
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params) if params else cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    ok = cap.isOpened()
    cap.release()
    return ok, time.monotonic() - t0


def failed_opens(good_url: str) -> list[dict[str, Any]]:
    import cv2

    rows = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        targets = {"refused port": f"rtsp://127.0.0.1:{free_port()}/x",
                   "silent server": f"rtsp://127.0.0.1:{silent.getsockname()[1]}/x",
                   "loopback server (good)": good_url}
        settings: dict[str, list[int]] = {
            "OpenCV defaults": [],
            "open/read timeout 5 s (open_source default)": [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000,
                                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
            "open/read timeout 1 s": [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1000],
        }
        for target, url in targets.items():
            for setting, params in settings.items():
                ok, s = timed_open(url, params)
                rows.append({"target": target, "setting": setting, "opened": ok, "seconds": round(s, 2)})
                print(rows[-1], flush=True)
    return rows


def recovery(server: RtspServer, policy: ReconnectPolicy, rounds: int, down_s: float) -> list[dict[str, float]]:
    events: list[tuple[float, SourceEvent]] = []
    src = open_source(server.url(), reconnect=policy)
    src.on_event = lambda e: events.append((time.monotonic(), e))
    frames = [0]

    def read() -> None:
        while src.read() is not None:
            frames[0] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out = []
    try:
        for _ in range(rounds):
            while frames[0] < 20:
                time.sleep(0.05)
            kinds_before = len(events)
            killed = time.monotonic()
            server.stop()
            while not any(e.kind == EventKind.LOST for _, e in events[kinds_before:]):
                time.sleep(0.01)
            lost_at = next(t for t, e in events[kinds_before:] if e.kind == EventKind.LOST)
            time.sleep(max(0.0, down_s - (time.monotonic() - killed)))
            restarted = time.monotonic()
            server.start()
            while not any(e.kind == EventKind.RESTORED for _, e in events[kinds_before:]):
                time.sleep(0.01)
            restored_at = next(t for t, e in events[kinds_before:] if e.kind == EventKind.RESTORED)
            frames[0] = 0
            out.append({"kill_to_lost_s": round(lost_at - killed, 2),
                        "restart_to_restored_s": round(restored_at - restarted, 2)})
            print(out[-1], flush=True)
    finally:
        src.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--down", type=float, default=2.0, help="seconds the server stays down")
    args = ap.parse_args()
    if why := missing():
        sys.exit(why)
    server = RtspServer(VTEST).start()
    try:
        opens = failed_opens(server.url())
        policies = {
            "default (stall 5 s, backoff 0.5 s x2 to 10 s, open timeout 5 s)": ReconnectPolicy(),
            "fast (stall 1 s, backoff 0.2 s x2 to 1 s, open timeout 3 s)":
                ReconnectPolicy(initial_s=0.2, max_delay_s=1.0, stall_s=1.0, open_timeout_s=3.0),
        }
        rec = {name: recovery(server, p, args.rounds, args.down) for name, p in policies.items()}
    finally:
        server.stop()
    load = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_reconnect.json").write_text(json.dumps(
        {"opens": opens, "recovery": rec, "rounds": args.rounds, "down_s": args.down, "load_1min": load}, indent=2))
    md = ["# RTSP: failed opens and recovery after a server restart", "",
          f"Loopback GStreamer RTSP server (tests/rtsp_server.py: vtest.avi, 10 fps, H.264). 2 cores, 1-minute load "
          f"average {load:.1f} at the end (a shared machine). One open per cell.", "",
          "| target | setting | opened | seconds |", "|---|---|---|---|"]
    md += [f"| {r['target']} | {r['setting']} | {r['opened']} | {r['seconds']} |" for r in opens]
    md += ["", f"Recovery: server killed, restarted {args.down:g} s later; {args.rounds} rounds, median (max).", "",
           "| policy | kill -> LOST s | restart -> RESTORED s |", "|---|---|---|"]
    for name, rows in rec.items():
        cells = [f"{statistics.median(r[k] for r in rows):.2f} ({max(r[k] for r in rows):.2f})"
                 for k in ("kill_to_lost_s", "restart_to_restored_s")]
        md.append(f"| {name} | {cells[0]} | {cells[1]} |")
    (RESULTS / "bench_reconnect.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
