"""`--qat`: the real yolo11n-seg distilled (fake-quantized with the TensorRT graph's placement)
against its FP32 self on real vtest frames, at test size (320x320 artifact and training,
a handful of steps at 320). Shown: the held-out distillation loss goes down; the Q/DQ graphs written
from the fine-tuned weights run on ONNX Runtime and build with TensorRT-RTX; a Ctrl-C in the
middle keeps the best checkpoint so far (and the exported weights are that checkpoint); an ONNX
input is refused with a message before any work. The accuracy measurement at 640 is
benchmarks/int8_scenes.py --qat (results/int8_scenes_qat.md)."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from converters.precision.qat import module_path  # noqa: E402
from edgevision.cli import main as cli  # noqa: E402


def test_module_path_maps_onnx_scopes_to_torch_modules(tmp_path: Path) -> None:
    """Every Conv of a real torch export (nested Sequentials called as modules, ModuleLists) maps
    back to its nn.Conv2d: what lets --qat work on any torch family whose export keeps scopes."""

    class Block(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.m = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.SiLU(),
                                         torch.nn.Conv2d(4, 4, 1))
            self.cv = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1)) for _ in range(2))

        def forward(self, x: Any) -> Any:
            y = self.m(x)
            return self.cv[0](y) + self.cv[1](y)

    class Net(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 4, 3)
            self.model = torch.nn.ModuleList([Block(), Block()])

        def forward(self, x: Any) -> Any:
            x = self.stem(x)
            for b in self.model:
                x = b(x)
            return x

    net = Net().eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False)
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    modules = dict(net.named_modules())
    mapped = [module_path(net, n) for n in convs]
    assert len(convs) == 1 + 2 * 4
    assert all(p in modules and isinstance(modules[p], torch.nn.Conv2d) for p in mapped), list(zip(convs, mapped))
    assert len(set(mapped)) == len(convs)  # one module per layer, none guessed twice


@pytest.fixture(scope="module")
def qat_setup(seg_checkpoint: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """yolo11n-seg at 320x320 with its post-training INT8 graphs (12 calibration frames, the
    default float stem / final layers, no protection search) in a fresh folder."""
    from converters.export import ExportOptions, convert
    from converters.precision.budget import DEFAULT_BUDGETS
    from converters.precision.int8 import Int8Options, build_int8
    from edgevision.sources import sample_frames

    folder = tmp_path_factory.mktemp("qat")
    fp32 = convert(seg_checkpoint, folder, ExportOptions(imgsz=(320, 320))).onnx_path
    from converters.onnx_io import read_manifest

    manifest = read_manifest(fp32)
    calib, _ = sample_frames(vtest, 12)
    opts = Int8Options(keep_float="none")
    build = build_int8(fp32, manifest, calib, folder / "ptq.int8.onnx", folder / "ptq.int8-cpu.onnx",
                       DEFAULT_BUDGETS["int8"], opts, log=lambda _: None)
    return {"fp32": fp32, "fp32_sha": hashlib.sha256(fp32.read_bytes()).hexdigest(), "manifest": manifest, "calib": calib, "opts": opts, "build": build, "folder": folder,
            "export": ExportOptions(imgsz=(320, 320)), "ckpt": seg_checkpoint}


def _qat(setup: dict[str, Any], name: str, progress: Any = None, **over: Any) -> Any:
    from converters.precision.qat import QatOptions
    from converters.precision.qat_int8 import qat_int8

    folder = setup["folder"]
    build = replace(setup["build"], trt_path=folder / f"{name}.int8.onnx", cpu_path=folder / f"{name}.int8-cpu.onnx")
    qopts = QatOptions(**{"steps": 8, "minutes": 5.0, "batch": 4, "imgsz": 320, "lr": 1e-5, "eval_every": 2,
                          "held_out": 3, "warmup": 8, **over})
    return qat_int8(setup["ckpt"], setup["export"], setup["fp32"], setup["manifest"], build, setup["calib"],
                    setup["opts"], qopts, log=lambda _: None, progress=progress), build


@pytest.fixture(scope="module")
def qat_run(qat_setup: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    seen: list[Any] = []
    result, build = _qat(qat_setup, "qat", progress=seen.append)
    return result, build, seen


@pytest.mark.slow
def test_qat_lowers_the_held_out_distillation_loss(qat_run: tuple[Any, Any, list[Any]]) -> None:
    result, _, seen = qat_run
    assert result.steps == 8 and result.stopped == "steps"
    assert result.loss_after < result.loss_before  # measured on calibration frames never trained on
    assert 1 <= result.best_step <= 8
    assert result.train_frames == 9 and result.held_out_frames == 3
    assert [p.step for p in seen][0] == 1 and seen[-1].step == 8 and seen[-1].eta_s == 0
    assert "ETA" in seen[-1].line()


@pytest.mark.slow
def test_qat_graphs_run_on_onnx_runtime(qat_setup: dict[str, Any], qat_run: tuple[Any, Any, list[Any]]) -> None:
    """Both graphs written from the fine-tuned weights load and run; the TensorRT graph keeps the
    post-training graph's Q/DQ placement and scales exactly, with other (fine-tuned) int8 weights."""
    from converters.precision.evaluate import prepare

    _, build, _ = qat_run
    ptq = onnx.load(str(qat_setup["build"].trt_path))
    qat = onnx.load(str(build.trt_path))
    ops = lambda m: [n.op_type for n in m.graph.node if "Quantize" in n.op_type]  # noqa: E731
    assert ops(qat) == ops(ptq) and len(ops(qat)) > 50
    scales = lambda m: {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer  # noqa: E731
                        if i.name.startswith("qdq:") and i.name.endswith(":scale")}
    assert scales(qat).keys() == scales(ptq).keys()
    assert all(np.array_equal(scales(qat)[k], scales(ptq)[k]) for k in scales(ptq))
    w8 = lambda m: {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer if i.name.endswith(":int8")}  # noqa: E731
    changed = sum(not np.array_equal(w8(qat)[k], w8(ptq)[k]) for k in w8(ptq))
    assert changed > len(w8(ptq)) // 2
    x = prepare(qat_setup["fp32"], qat_setup["calib"][:1]).batches[0]
    for path in (build.trt_path, build.cpu_path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: (x if i.name == "images" else np.array([0.25 if "conf" in i.name else 0.7], np.float32))
                 for i in sess.get_inputs()}
        out = sess.run(None, feeds)
        assert out[0].shape[0] == 1 and int(out[3][0]) > 0  # people found on a vtest frame


@pytest.mark.slow
def test_qat_graph_builds_with_tensorrt_rtx(qat_run: tuple[Any, Any, list[Any]]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine

    _, build, _ = qat_run
    from converters.onnx_io import read_manifest, write_manifest

    write_manifest(build.trt_path, read_manifest(build.trt_path).replace(precision="int8"))
    options = BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 2), progress=False)
    result = build_engine(build.trt_path, options=options, log=lambda _: None)
    assert result.layers > 100


@pytest.mark.slow
def test_ctrl_c_keeps_the_best_checkpoint(qat_setup: dict[str, Any]) -> None:
    """A KeyboardInterrupt from the progress callback at step 3 (what Ctrl-C raises wherever it
    lands): training stops and the best checkpoint so far is the one exported, not the last one.
    A learning rate 100x the default makes every step worse than the start (Adam moves every
    weight by lr at once), so the best checkpoint is the post-training one: the exported int8
    weights must equal the post-training graph's although the last weights trained differ."""
    seen: list[Any] = []

    def progress(p: Any) -> None:
        seen.append(p)
        if p.step == 3:
            raise KeyboardInterrupt

    result, build = _qat(qat_setup, "interrupted", progress=progress, steps=50, batch=1, imgsz=160, eval_every=1,
                         warmup=1, lr=1e-3)
    assert result.stopped == "interrupted" and result.steps == 3
    assert len(seen) == 3 and all(p.held_out_loss > result.loss_before for p in seen), [p.line() for p in seen]
    assert result.best_step == 0 and result.loss_after == pytest.approx(result.loss_before)
    assert build.trt_path.is_file() and build.cpu_path.is_file()
    ptq = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(qat_setup["build"].trt_path)).graph.initializer}
    got = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(build.trt_path)).graph.initializer}
    w8 = [k for k in ptq if k.endswith(":int8")]
    assert len(w8) > 50 and all(np.array_equal(got[k], ptq[k]) for k in w8)
    # the FP32 artifact is still the original model and QAT's temporary export is gone
    assert hashlib.sha256(qat_setup["fp32"].read_bytes()).hexdigest() == qat_setup["fp32_sha"]
    assert not list(qat_setup["folder"].glob(".*.qat.onnx"))


def test_qat_on_an_onnx_input_is_refused(vtest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ONNX file (another exporter's) has no PyTorch model to fine-tune: refused with a message
    before any conversion or calibration."""
    from onnx import TensorProto, helper

    src = tmp_path / "src" / "foreign.onnx"
    src.parent.mkdir()
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in ("images", "out")]
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", io[:1],
                                                  io[1:])), str(src))
    out = tmp_path / "out"
    assert cli(["convert", str(src), "-o", str(out), "--precision", "int8", "--qat", "--calib", str(vtest)]) == 1
    err = capsys.readouterr().err
    assert "--qat needs the PyTorch model" in err and "is an ONNX file" in err
    assert not out.exists()  # refused before any work
    assert cli(["convert", str(src), "-o", str(out), "--qat"]) == 1
    assert "add --precision int8" in capsys.readouterr().err


def test_qat_with_the_nncf_engine_is_refused(seg_checkpoint: Path, vtest: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """QAT trains against edgevision's own Q/DQ placement and scales; NNCF places its own, so the
    pair is refused before any conversion."""
    out = tmp_path / "out"
    assert cli(["convert", str(seg_checkpoint), "-o", str(out), "--precision", "int8", "--qat",
                "--int8-engine", "nncf", "--calib", str(vtest)]) == 1
    assert "drop --int8-engine nncf" in capsys.readouterr().err
    assert not out.exists()


def test_fake_quant_learns_scales_and_quantizes_linear_weights_per_output_channel(tmp_path: Path) -> None:
    """On a real torch export with a Conv and an nn.Linear on 3-D input (ONNX MatMul, weight stored
    [in, out]): learned activation scales get gradients and are read back as amax; the Linear's
    weight is fake-quantized per OUTPUT channel (torch's axis 0, the graph's axis 1), as the Q/DQ
    graph quantizes it; removing the hooks leaves plain float weights."""
    from converters.precision.calibration import Ranges, TensorRange
    from converters.precision.qat import FakeQuant
    from converters.precision.regions import find_regions

    class Net(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x: Any) -> Any:
            y = self.conv(x).flatten(2).transpose(1, 2)  # [B, HW, 8]
            return self.fc(y)

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # output channels of very different size: per-channel vs per-input scales differ
        net.fc.weight.mul_(torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0]).reshape(5, 1))
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 6, 6),), str(path), dynamo=False)
    model = onnx.load(str(path))
    layers = find_regions(model).layers
    assert sorted(la.op_type for la in layers) == ["Conv", "MatMul"]
    nodes = {n.name: n for n in model.graph.node}
    inputs = {la.name: nodes[la.name].input[la.activations[0]] for la in layers}
    ranges = Ranges({t: TensorRange(-2.0, 2.0, 2.0) for t in inputs.values()}, 100.0, 1)
    w = net.fc.weight.detach().clone()

    fq = FakeQuant(net, layers, inputs, ranges, learn=True)
    x = torch.rand(2, 3, 6, 6) * 3
    net(x).square().sum().backward()
    assert all(s.grad is not None and torch.isfinite(s.grad).all() for s in fq.scales.values())
    assert sorted(fq.amax().values()) == pytest.approx([2.0, 2.0], rel=1e-5)
    q = net.fc.weight.detach()  # the parametrized (fake-quantized) weight
    step = w.abs().amax(dim=1, keepdim=True) / 127  # per output channel
    assert torch.allclose(q, torch.round(w / step) * step, rtol=1e-5, atol=1e-9)
    assert torch.count_nonzero(q[0]) > 0  # a per-input-channel scale would round the 0.01 row to zero
    fq.remove()
    assert torch.equal(net.fc.weight.detach(), w) and not hasattr(net.fc, "parametrizations")
