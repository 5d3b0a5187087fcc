"""Build progress line and the DLA fallback report: the pure halves, driven like TensorRT drives them."""
from __future__ import annotations

import io
import threading

import pytest

from edgevision.build.dla import LayerPlacement, summarize
from edgevision.build.progress import BuildProgress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_phase_chain_and_steps() -> None:
    clock, out = Clock(), io.StringIO()
    p = BuildProgress(out, interactive=False, log_every=10, clock=clock)
    assert p.line() == "[    0.0 s] building"
    p.phase_start("Building engine", None, 4)
    p.phase_start("Timing tactics", "Building engine", 30)
    assert p.step_complete("Timing tactics", 4) is True
    clock.t += 2.5
    assert p.line() == "[    2.5 s] Building engine 0/4 > Timing tactics 5/30"
    p.phase_finish("Timing tactics")
    assert p.line().endswith("Building engine 0/4")
    assert p.phases_seen == 2


def test_log_mode_prints_on_new_top_phase_and_every_interval() -> None:
    clock, out = Clock(), io.StringIO()
    p = BuildProgress(out, interactive=False, log_every=10, clock=clock)
    p.phase_start("Parsing", None, 1)
    p.tick()
    p.tick()  # same top phase, too soon: nothing new
    clock.t += 11
    p.tick()  # interval passed
    p.phase_finish("Parsing")
    p.phase_start("Building engine", None, 2)
    p.tick()  # new top phase
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("Parsing 0/1") and lines[2].endswith("Building engine 0/2")


def test_terminal_mode_rewrites_one_line() -> None:
    clock, out = Clock(), io.StringIO()
    p = BuildProgress(out, interactive=True, clock=clock)
    p.phase_start("Building engine", None, 1)
    p.tick()
    p.step_complete("Building engine", 0)
    p.tick()
    p.finish("built: 437 layers")
    text = out.getvalue()
    assert "\n" not in text.rstrip("\n") and text.count("\r") >= 3
    assert text.endswith("built: 437 layers\n")


def test_cancel_answers_false_to_tensorrt() -> None:
    p = BuildProgress(io.StringIO(), interactive=False)
    p.phase_start("Timing", None, 3)
    assert p.step_complete("Timing", 0)
    p.cancel()
    assert p.step_complete("Timing", 1) is False


def test_callbacks_from_many_threads() -> None:
    p = BuildProgress(io.StringIO(), interactive=False)

    def worker(i: int) -> None:
        for step in range(200):
            name = f"phase {i}"
            p.phase_start(name, None, 200)
            p.step_complete(name, step)
            p.line()
            p.phase_finish(name)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert p.phases_seen == 8 * 200 and p.line().endswith("building")


def _layers(pattern: str) -> list[LayerPlacement]:
    """'DDG' -> DLA, DLA, GPU: one placement per character."""
    kinds = {"D": "CONVOLUTION", "G": "TOPK"}
    return [LayerPlacement(i, f"layer{i}", kinds[c], c == "D") for i, c in enumerate(pattern)]


@pytest.mark.parametrize(
    "pattern, on_dla, segments, by_type",
    [
        ("DDDD", 4, 1, {}),
        ("DDGDD", 4, 2, {"TOPK": 1}),
        ("GDGDG", 2, 2, {"TOPK": 3}),
        ("GGG", 0, 0, {"TOPK": 3}),
        ("", 0, 0, {}),
    ],
)
def test_dla_summary(pattern: str, on_dla: int, segments: int, by_type: dict) -> None:
    r = summarize(0, _layers(pattern))
    assert (r.layers, r.on_dla, r.segments, r.fallback_by_type) == (len(pattern), on_dla, segments, by_type)
    text = "\n".join(r.lines())
    assert text.startswith(f"DLA core 0: {on_dla}/{len(pattern)} layers can run on DLA")
    assert ("nothing runs on DLA" in text) == (on_dla == 0)


def test_dla_report_warns_past_16_loadables_and_truncates() -> None:
    r = summarize(1, _layers("DG" * 20))
    lines = r.lines(limit=3)
    assert r.segments == 20
    assert any("exceed the 16 loadables" in line for line in lines)
    assert sum(line.startswith("  fallback: #") for line in lines) == 3
    assert "  ... and 17 more" in lines
