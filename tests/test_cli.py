"""The command line: real commands in a subprocess, clear errors with exit code 1 and no
traceback, Ctrl-C that keeps what was written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]


def ev(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgevision", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def no_manifest_onnx(path: Path) -> Path:
    node = helper.make_node("Identity", ["images"], ["boxes"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("args, message", [
    (["run", "{tmp}/missing.onnx", "--source", "{vtest}"], "model file not found"),
    (["run", "{tmp}/garbage.onnx", "--source", "{vtest}"], "ONNX Runtime cannot load"),
    (["run", "{tmp}/plain.onnx", "--source", "{vtest}"], "no edgevision manifest"),
    (["run", "{seg}", "--source", "{tmp}/nothing.mp4"], "source not found"),
    (["run", "{seg}", "--source", "/dev/video7"], "no such camera"),
    (["run", "{seg}", "--source", "{tmp}/garbage.onnx"], "cannot open source"),
    (["run", "{seg}", "--source", "{vtest}", "--classes", "persn"], 'did you mean "person"'),
    (["run", "{seg}", "--source", "{vtest}", "--conf", "2"], "between 0 and 1"),
    (["run", "{seg}", "--source", "{vtest}", "--backend", "onnxrt"], 'did you mean "onnxruntime"'),
    (["run", "{seg}", "--source", "{vtest}", "--save", "{tmp}/out.xyz"], "don't know how to write"),
    (["convert", "{tmp}/missing.pt"], "model file not found"),
    (["convert", "{tmp}/garbage.onnx"], "is not a valid ONNX model"),
    (["convert", "{tmp}/plain.onnx"], "carries no Ultralytics metadata"),
    (["info", "{tmp}/garbage.onnx"], "ONNX Runtime cannot load"),
])
def test_bad_input_gets_one_clear_error(args: list[str], message: str, seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    (tmp_path / "garbage.onnx").write_bytes(os.urandom(4096))
    no_manifest_onnx(tmp_path / "plain.onnx")
    res = ev(*[a.format(tmp=tmp_path, vtest=vtest, seg=seg_onnx) for a in args])
    assert res.returncode == 1, res.stdout + res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_info_prints_the_manifest(seg_onnx: Path) -> None:
    res = ev("info", str(seg_onnx))
    assert res.returncode == 0, res.stderr
    assert "segment (ultralytics-yolo)" in res.stdout and "640x640" in res.stdout
    assert "protos" in res.stdout and "onnxruntime" in res.stdout


def test_run_prints_stats_and_writes_outputs(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    res = ev("run", str(seg_onnx), "--source", str(vtest), "--max-frames", "6", "--save", str(tmp_path / "o.mp4"),
             "--jsonl", str(tmp_path / "o.jsonl"), "--stats-json", str(tmp_path / "s.json"), "--classes", "person")
    assert res.returncode == 0, res.stderr
    assert "6 frames" in res.stdout and "p99" in res.stdout and "detections: person" in res.stdout
    assert "car" not in res.stdout.split("detections:")[1]
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 6


def test_ctrl_c_ends_cleanly_and_keeps_a_playable_video(seg_onnx: Path, vtest: Path, tmp_path: Path) -> None:
    out, jl = tmp_path / "int.mp4", tmp_path / "int.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgevision", "run", str(seg_onnx), "--source", str(vtest),
                             "--save", str(out), "--jsonl", str(jl)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not jl.exists() or len(jl.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    written = len(jl.read_text().splitlines())
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert 3 <= frames and abs(frames - written) <= 1


def test_build_side_commands_are_registered_not_imported(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """convert/build/verify come from setup.py's `edgevision.commands` group; without it (a checkout
    never installed, an install older than the group) the runtime's own commands still work and
    the CLI says to install."""
    import edgevision.cli as cli
    from edgevision.cli.commands import registered

    assert registered() == {"build": "edgevision.build.cli", "convert": "converters.cli.convert",
                            "verify": "converters.cli.verify"}, "stale metadata: pip install -e ."
    monkeypatch.setattr(cli, "registered", dict)
    with pytest.raises(SystemExit):
        cli.main(["convert", "x.pt"])
    assert "none is here: install it (pip install -e . in a checkout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "run" in out and "info" in out and "convert " not in out and "install it (pip install -e ." in out
