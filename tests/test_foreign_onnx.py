"""ONNX files made by other exporters convert into ordinary edgevision artifacts.

Ultralytics' own exporter makes the files (yolo11n detector and segmenter at 320x320, plain
and nms=True); edgevision converts them from their metadata alone and must agree with that
same file run by Ultralytics' predictor on real frames. The --describe path is tested on the
same files with their metadata stripped, and on DETR- and SSD-style files made from them with
onnx.helper (verified in convert against the foreign file on ONNX Runtime + numpy decode).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgevision
from benchmarks.ultralytics_ref import predict
from converters.export import ExportOptions, convert
from edgevision.errors import EdgeVisionError
from edgevision.metrics import agreement

pytestmark = pytest.mark.slow  # exports and converts models
os.environ.setdefault("YOLO_OFFLINE", "1")

IMGSZ = 320
N = sum((IMGSZ // s) ** 2 for s in (8, 16, 32))  # YOLO anchors at 320: 2100
VARIANTS = {"plain": {}, "nms": {"nms": True}, "seg": {}, "seg-nms": {"nms": True}, "dynamic": {"dynamic": True}}
FIXED = ["plain", "nms", "seg", "seg-nms"]  # exported at a fixed 320x320, as Ultralytics' predictor runs them


@pytest.fixture(scope="module")
def ultra_onnx(det_checkpoint: Path, seg_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ultralytics' ONNX exports at 320: the detector and the segmenter, plain and nms=True, and the
    detector with dynamic=True (batch, height and width symbolic)."""
    from ultralytics import YOLO

    out = tmp_path_factory.mktemp("ultra_onnx")
    files = {}
    for name, kwargs in VARIANTS.items():
        local = out / f"yolo11n-{name}.pt"
        shutil.copy(seg_checkpoint if name.startswith("seg") else det_checkpoint, local)
        files[name] = Path(YOLO(str(local)).export(format="onnx", imgsz=IMGSZ, verbose=False, **kwargs))
    return files


@pytest.fixture(scope="module")
def frames(vtest_frames40: list[np.ndarray]) -> list[np.ndarray]:
    return vtest_frames40[::2]  # 20 frames across the video


@pytest.fixture(scope="module")
def converted(ultra_onnx: dict[str, Path], frames: list[np.ndarray],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each Ultralytics file converted with no spec and no flags, verified on 4 frames."""
    out = tmp_path_factory.mktemp("converted")
    return {name: convert(path, out / name, ExportOptions(), frames[:4]).onnx_path for name, path in ultra_onnx.items()}


@pytest.mark.parametrize("variant", FIXED)
def test_agrees_with_ultralytics_predictor_on_the_same_file(variant: str, ultra_onnx: dict[str, Path],
                                                            converted: dict[str, Path],
                                                            frames: list[np.ndarray]) -> None:
    from ultralytics import YOLO

    ref_model = YOLO(str(ultra_onnx[variant]), task="segment" if variant.startswith("seg") else "detect")
    ref = [predict(ref_model, f, imgsz=IMGSZ) for f in frames]
    with edgevision.load(converted[variant], backend="onnxruntime", masks=False) as model:
        assert model.manifest.family == "onnx" and model.manifest.input_hw == (IMGSZ, IMGSZ)
        assert model.manifest.class_names[0] == "person" and model.manifest.num_classes == 80
        got = [model(f) for f in frames]
    a = agreement(got, ref)
    print(variant, a.summary())
    assert a.reference_detections > 100, a.summary()  # frames where the model finds people
    assert a.f1 >= 0.99 and a.ap50_95 >= 0.97, a.summary()


@pytest.mark.parametrize("variant", ["plain", "seg-nms", "dynamic"])
def test_the_artifact_is_one_plain_graph(variant: str, converted: dict[str, Path]) -> None:
    """edgevision's inputs and outputs, one opset per domain (onnxruntime's quantizer refuses
    duplicates), and the foreign nodes kept under their src/ prefix."""
    import onnx

    from edgevision.manifest import IN_CONF, IN_IMAGES, IN_IOU, OUT_LIMITS
    from converters.onnx_io import read_manifest

    m = onnx.load(str(converted[variant]))
    manifest = read_manifest(converted[variant])
    assert [i.name for i in m.graph.input] == [IN_IMAGES, IN_CONF, IN_IOU]
    assert [o.name for o in m.graph.output] == [*manifest.outputs, OUT_LIMITS]
    domains = [o.domain for o in m.opset_import]
    assert len(domains) == len(set(domains)), m.opset_import
    assert sum(n.name.startswith("src/") for n in m.graph.node) > 100
    onnx.checker.check_model(m, full_check=True)


def test_segment_masks_come_through(converted: dict[str, Path], frames: list[np.ndarray]) -> None:
    """Masks from the raw-head file (edgevision's NMS) and from the nms=True file (Ultralytics'
    NMS, top-k here) are made from the same mask coefficients: they must be the same masks."""
    from edgevision.metrics import mask_iou

    with edgevision.load(converted["seg"], backend="onnxruntime") as raw_head, \
            edgevision.load(converted["seg-nms"], backend="onnxruntime") as end2end:
        for model in (raw_head, end2end):
            assert model.manifest.task == "segment" and model.manifest.proto_shape == (32, IMGSZ // 4, IMGSZ // 4)
        for frame in frames[:3]:
            a, b = raw_head(frame), end2end(frame)
            assert len(a) == len(b) > 0 and a.masks is not None and b.masks is not None
            assert a.masks.shape == (len(a), *frame.shape[:2]) and all(m.sum() > 0 for m in a.masks)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
            assert min(mask_iou(m, n) for m, n in zip(a.masks, b.masks)) >= 0.99


def test_batch2_equals_two_batch1_runs(converted: dict[str, Path], frames: list[np.ndarray]) -> None:
    with edgevision.load(converted["plain"], backend="onnxruntime") as model:
        assert model.manifest.dynamic_batch
        pair = model.predict(frames[2:4])
        for got, frame in zip(pair, frames[2:4]):
            one = model(frame)
            assert len(got) == len(one) > 0
            np.testing.assert_allclose(got.xyxy, one.xyxy, atol=1e-3)
            np.testing.assert_array_equal(got.class_id, one.class_id)


def test_a_dynamic_size_export_gets_a_fixed_size_artifact(converted: dict[str, Path], frames: list[np.ndarray]) -> None:
    """dynamic=True: N is symbolic in the file (found by one run at 320), the artifact's input is
    [batch, 3, 320, 320] (TensorRT profiles only the batch), and it finds what the fixed export finds."""
    import onnx

    dims = [d.dim_param or d.dim_value for d in onnx.load(str(converted["dynamic"])).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, IMGSZ, IMGSZ], dims
    with edgevision.load(converted["dynamic"], backend="onnxruntime") as dyn, \
            edgevision.load(converted["plain"], backend="onnxruntime") as fixed:
        assert dyn.manifest.dynamic_batch and dyn.manifest.extra["anchors"] == N
        for f in frames[:4]:
            a, b = dyn(f), fixed(f)
            assert len(a) == len(b) > 0
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)


def test_nms_export_stays_batch1_and_says_so(converted: dict[str, Path], frames: list[np.ndarray]) -> None:
    """Ultralytics' nms=True graph unrolls NMS for batch 1: the artifact keeps batch 1 and says so,
    and convert says that TensorRT cannot build its NonZero / NonMaxSuppression."""
    import json

    notes = json.loads(converted["nms"].with_suffix(".convert.json").read_text())["notes"]
    assert any("batch 1 only" in n for n in notes) and any("NonZero" in n for n in notes), notes
    with edgevision.load(converted["nms"], backend="onnxruntime") as model:
        assert not model.manifest.dynamic_batch and model.manifest.extra["layout"] == "end2end"
        with pytest.raises(EdgeVisionError, match="built for batch 1"):
            model.predict(frames[:2])


def test_tensorrt_rtx_builds_the_converted_graph(converted: dict[str, Path]) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine

    check = BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 4), progress=False)
    # The dynamic=True artifact builds too (3021 layers, measured); its fixed [batch, 3, 320, 320]
    # input, which TensorRT's profiles need, is checked in test_a_dynamic_size_export_gets_a_fixed_size_artifact.
    assert build_engine(converted["plain"], options=check).layers > 100


# --- the --describe path ---------------------------------------------------------------

def strip(src: Path, dst: Path) -> tuple[Path, list[str]]:
    """A copy of src without any metadata_props (what another exporter writes), and its names."""
    import ast

    import onnx

    m = onnx.load(str(src))
    meta = {p.key: p.value for p in m.metadata_props}
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    names = ast.literal_eval(meta["names"])
    return dst, [names[i] for i in sorted(names)]


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("variant, layout", [("plain", "yolo"), ("nms", "end2end")])
def test_describe_gives_what_the_metadata_gives(variant: str, layout: str, ultra_onnx: dict[str, Path],
                                               converted: dict[str, Path], frames: list[np.ndarray],
                                               tmp_path: Path) -> None:
    bare, names = strip(ultra_onnx[variant], tmp_path / "bare.onnx")
    (tmp_path / "coco.names").write_text("\n".join(names))
    boxes = "cxcywh" if layout == "yolo" else "xyxy"
    spec = write_spec(tmp_path / "spec.yaml", f"""layout: {layout}
boxes: {boxes}
classes_file: coco.names
input:
  size: [{IMGSZ}, {IMGSZ}]
  resize: letterbox
  pad_value: 114
  color: RGB
  scale: 0.00392156862745098
""")
    art = convert(bare, tmp_path / "out", ExportOptions(describe=spec), frames[:4]).onnx_path
    with edgevision.load(art, backend="onnxruntime") as ours, \
            edgevision.load(converted[variant], backend="onnxruntime") as theirs:
        assert ours.manifest.class_names == theirs.manifest.class_names
        for f in frames[:6]:
            a, b = ours(f), theirs(f)
            assert len(a) == len(b)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def _append(src: Path, dst: Path, build: object) -> Path:
    """src's graph with nodes appended by build(graph, raw_name) -> new output value_infos."""
    import onnx

    m = onnx.load(str(src))
    raw = m.graph.output[0].name
    outputs = build(m.graph, raw)  # type: ignore[operator]
    del m.graph.output[:]
    m.graph.output.extend(outputs)
    del m.metadata_props[:]
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def detr_style(graph: object, raw: str) -> list[object]:
    """[1, 84, N] YOLO preds -> DETR-style boxes [1, N, 4] cxcywh / 320 and logits [1, N, 80]
    (log(p / (1 - p)), so the spec's sigmoid gives the YOLO scores back)."""
    from onnx import TensorProto, helper, numpy_helper

    g = graph
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                          (("s0", [0]), ("s4", [4]), ("s84", [84]), ("ax2", [2]))])
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
                          (("inv", 1 / IMGSZ), ("one", 1.0), ("eps", 1e-7))])
    g.node.extend([
        helper.make_node("Transpose", [raw], ["t"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["t", "s0", "s4", "ax2"], ["b"]),
        helper.make_node("Mul", ["b", "inv"], ["pred_boxes"]),
        helper.make_node("Slice", ["t", "s4", "s84", "ax2"], ["p"]),
        helper.make_node("Max", ["p", "eps"], ["pc"]),
        helper.make_node("Sub", ["one", "pc"], ["q"]),
        helper.make_node("Max", ["q", "eps"], ["qc"]),
        helper.make_node("Div", ["pc", "qc"], ["odds"]),
        helper.make_node("Log", ["odds"], ["pred_logits"]),
    ])
    return [helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, [1, N, 4]),
            helper.make_tensor_value_info("pred_logits", TensorProto.FLOAT, [1, N, 80])]


def ssd_style(graph: object, raw: str) -> list[object]:
    """[1, 84, N] YOLO preds -> SSD-style boxes [1, N, 4] xyxy in pixels and softmax logits
    [1, N, 1+80] with the background column first (logit 0)."""
    from onnx import TensorProto, helper, numpy_helper

    g = graph
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                          (("s0", [0]), ("s2", [2]), ("s4", [4]), ("s84", [84]), ("ax2", [2]))])
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
                          (("half", 0.5), ("k", 10.0))])
    g.node.extend([
        helper.make_node("Transpose", [raw], ["t"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["t", "s0", "s2", "ax2"], ["xy"]),
        helper.make_node("Slice", ["t", "s2", "s4", "ax2"], ["wh"]),
        helper.make_node("Mul", ["wh", "half"], ["hw"]),
        helper.make_node("Sub", ["xy", "hw"], ["tl"]),
        helper.make_node("Add", ["xy", "hw"], ["br"]),
        helper.make_node("Concat", ["tl", "br"], ["boxes"], axis=2),
        helper.make_node("Slice", ["t", "s4", "s84", "ax2"], ["p"]),
        helper.make_node("Mul", ["p", "k"], ["cls"]),  # class logits: 10 x probability
        helper.make_node("ReduceSum", ["p", "ax2"], ["bg0"], keepdims=1),
        helper.make_node("Mul", ["bg0", "half"], ["bg"]),  # a background logit that varies per anchor
        helper.make_node("Concat", ["bg", "cls"], ["scores"], axis=2),
    ])
    return [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, N, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, N, 81])]


@pytest.mark.parametrize("layout, build, spec_lines", [
    ("detr", detr_style, "boxes: cxcywh\nnormalized: true\nscores: sigmoid\n"),
    ("ssd", ssd_style, "boxes: xyxy\nnormalized: false\nscores: softmax\nbackground: first\n"),
])
def test_detr_and_ssd_layouts_convert_and_verify(layout: str, build: object, spec_lines: str,
                                                ultra_onnx: dict[str, Path], frames: list[np.ndarray],
                                                tmp_path: Path) -> None:
    """convert's own verification (the foreign file on ONNX Runtime + the numpy decode) must pass on
    real frames, and the artifact must find people where the YOLO file does."""
    src = _append(ultra_onnx["plain"], tmp_path / f"{layout}.onnx", build)
    _, names = strip(ultra_onnx["plain"], tmp_path / "names.onnx")
    classes = "[" + ", ".join(repr(n) for n in names) + "]"
    spec = write_spec(tmp_path / "spec.yaml", f"layout: {layout}\n{spec_lines}classes: {classes}\n"
                                              f"input: {{size: {IMGSZ}, resize: letterbox, pad_value: 114}}\n")
    result = convert(src, tmp_path / "out", ExportOptions(describe=spec, conf=0.25 if layout == "detr" else 0.3),
                     frames[:6])
    assert result.verdict is not None and result.verdict.passed, result.verdict
    assert result.batch_consistent is True
    with edgevision.load(result.onnx_path, backend="onnxruntime") as model:
        dets = model(frames[0])
    assert len(dets) > 0 and set(dets.class_id.tolist()) >= {0}


# --- one clear sentence for what does not fit ----------------------------------------------

def _one_sentence(exc: pytest.ExceptionInfo[EdgeVisionError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_spec_that_does_not_fit_is_one_sentence(ultra_onnx: dict[str, Path], tmp_path: Path) -> None:
    bare, _ = strip(ultra_onnx["plain"], tmp_path / "bare.onnx")
    spec = write_spec(tmp_path / "spec.yaml", "layout: end2end\nclasses: [a, b]\n")
    with pytest.raises(EdgeVisionError) as exc:
        convert(bare, tmp_path / "out", ExportOptions(describe=spec))
    text = _one_sentence(exc)
    assert "does not fit" in text and "[B, N, 6]" in text and "[1, 84, 2100]" in text, text
    wrong_nc = write_spec(tmp_path / "nc.yaml", "layout: yolo\nclasses: [a, b, c]\n")
    with pytest.raises(EdgeVisionError) as exc:
        convert(bare, tmp_path / "out", ExportOptions(describe=wrong_nc))
    assert "84 channels" in _one_sentence(exc) and "4 + 3 classes" in str(exc.value)
    typo = write_spec(tmp_path / "typo.yaml", "layout: yolov8\n")
    with pytest.raises(EdgeVisionError) as exc:
        convert(bare, tmp_path / "out", ExportOptions(describe=typo))
    assert "yolo" in _one_sentence(exc)


def test_a_corrupt_onnx_file_is_one_sentence(ultra_onnx: dict[str, Path], tmp_path: Path) -> None:
    data = ultra_onnx["plain"].read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(EdgeVisionError) as exc:
        convert(bad, tmp_path / "out", ExportOptions())
    assert "not a valid ONNX model" in _one_sentence(exc)


def test_unknown_layout_without_spec_is_one_sentence(ultra_onnx: dict[str, Path], tmp_path: Path) -> None:
    bare, _ = strip(ultra_onnx["plain"], tmp_path / "bare.onnx")
    with pytest.raises(EdgeVisionError) as exc:
        convert(bare, tmp_path / "out", ExportOptions())
    text = _one_sentence(exc)
    assert "--describe" in text and "output0 [1, 84, 2100]" in text, text


def test_the_source_file_is_never_overwritten(ultra_onnx: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    shutil.copy(ultra_onnx["plain"], src)
    before = src.read_bytes()
    with pytest.raises(EdgeVisionError) as exc:
        convert(src, tmp_path, ExportOptions())
    assert "would overwrite the source" in _one_sentence(exc) and src.read_bytes() == before


def test_an_edgevision_artifact_is_not_converted_again(converted: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EdgeVisionError) as exc:
        convert(converted["plain"], tmp_path / "out", ExportOptions())
    assert "already" in _one_sentence(exc)



def test_command_line_describe(ultra_onnx: dict[str, Path], vtest: Path, tmp_path: Path) -> None:
    """`edgevision convert FILE.onnx --describe SPEC --verify VIDEO`: verified artifact, exit 0; a spec
    that does not fit: its sentence on stderr, exit 1, no traceback."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    bare, names = strip(ultra_onnx["plain"], tmp_path / "bare.onnx")
    spec = write_spec(tmp_path / "spec.yaml", f"layout: yolo\nclasses: [{', '.join(repr(n) for n in names)}]\n")

    def ev(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgevision", "convert", str(bare), *args], cwd=root,
                              capture_output=True, text=True, timeout=300)

    ok = ev("--describe", str(spec), "-o", str(tmp_path / "out"), "--verify", str(vtest), "--verify-frames", "4")
    assert ok.returncode == 0, ok.stderr
    assert "verified  F1@0.5 1.0000" in ok.stdout and (tmp_path / "out" / "bare.onnx").is_file()
    wrong = write_spec(tmp_path / "wrong.yaml", "layout: ssd\n")
    bad = ev("--describe", str(wrong), "-o", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "does not fit" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
