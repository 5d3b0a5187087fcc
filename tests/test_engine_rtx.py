"""Every graph the converter makes parses and builds with a real TensorRT-family builder.

TensorRT-RTX is the one TensorRT parser/builder that installs and runs without a GPU;
it builds ahead of time, so these are real serialized plans. What this proves: the
ONNX parses (every operator has an importer), the network builds (every layer has a
kernel) for the dynamic batch profile, the precision path is accepted, and the
engine/sidecar/cache plumbing works on real files. What it cannot prove: that the plan
runs (that is tests/test_tensorrt_backend.py, marked gpu).
"""
from __future__ import annotations

import io
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgevision.backends.tensorrt.sidecar import read_sidecar
from edgevision.build import BatchRange, BuildOptions, build_engine
from edgevision.build.builder import BuildRequest, _probe_dla, build_serialized
from edgevision.build.onnx_graph import inspect_onnx
from edgevision.build.precision import plan_precision
from edgevision.build.profiles import derive_profiles
from edgevision.build.progress import BuildProgress
from edgevision.errors import EdgeVisionError
from edgevision.manifest import IN_CONF, IN_IMAGES, IN_IOU, METADATA_KEY, OUT_LIMITS, Manifest, sha256_file

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the CI builder")
CHECK = BuildOptions(target="tensorrt_rtx", check_only=True, batch=BatchRange(1, 2, 4), progress=False)


@pytest.fixture(scope="module")
def det_int8_onnx(det_onnx: Path, vtest_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The detector with Q/DQ INT8 convolutions, post-processing left in float.

    Made here with onnxruntime's quantize_static (FACTS.md's settings: symmetric int8,
    per-channel weights, no bias quantization, which TensorRT's parser rejects), on 4 real
    frames. The INT8 converter (converters/precision) makes the shipped artifact.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgevision.preprocess import preprocess

    manifest = inspect_onnx(det_onnx).require_manifest()
    feeds = [
        {IN_IMAGES: preprocess(f, manifest.input_hw, manifest.preprocess)[0],
         IN_CONF: np.array([0.25], np.float32), IN_IOU: np.array([0.7], np.float32)}
        for f in vtest_frames[:4]
    ]

    class Frames(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.it, None)

    out = tmp_path_factory.mktemp("int8") / "yolo11n-det.int8.onnx"
    quantize_static(
        str(det_onnx), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )
    return out


GRAPHS = {"detect fp32": "det_onnx", "segment fp32": "seg_onnx", "detect int8 (Q/DQ)": "det_int8_onnx"}


@pytest.mark.parametrize("label", list(GRAPHS))
def test_converted_graph_parses_and_builds_whole(label: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(GRAPHS[label])
    graph = inspect_onnx(path)
    manifest = graph.require_manifest()
    # The post-processing is plain ops: nothing to cut, so the graph builds whole.
    assert not graph.nms_ops and "NonZero" not in graph.op_counts
    assert {"TopK", "GatherElements", "MatMul"} <= set(graph.op_counts)  # the in-graph NMS
    result = build_engine(path, options=CHECK)
    print(f"\n{label}: {result.layers} layers, {result.plan_bytes / 1e6:.1f} MB plan, built in {result.seconds:.2f} s "
          f"with TensorRT-RTX {trt.__version__}; ops: {dict(Counter(graph.op_counts).most_common(6))}")
    assert result.layers > 400 and result.plan_bytes > 1_000_000
    assert not any("NMS stage" in n for n in result.notes)
    # The dynamic batch axis survives into TensorRT, and so does every output the runtime reads.
    assert result.network_inputs[IN_IMAGES] == (-1, 3, *manifest.input_hw)
    assert result.network_inputs[IN_CONF] == (1,) and result.network_inputs[IN_IOU] == (1,)
    expected = ["boxes", "scores", "class_ids", "num_dets"] + (["mask_coeffs", "protos"] if manifest.task == "segment" else [])
    assert list(result.network_outputs) == [*expected, OUT_LIMITS]
    assert result.network_outputs["boxes"] == (-1, manifest.max_det, 4)
    assert result.network_outputs[OUT_LIMITS] == (-1,)
    if "int8" in label:
        assert graph.precision.has_qdq and any("int8" in n for n in result.notes)


def test_progress_monitor_receives_tensorrt_phases(det_onnx: Path) -> None:
    graph = inspect_onnx(det_onnx)
    plan = plan_precision("fp32", "tensorrt_rtx", 1, graph.precision)
    profiles, _ = derive_profiles(graph.inputs, BatchRange())
    out = io.StringIO()
    progress = BuildProgress(out, interactive=False, log_every=0.0)
    build_serialized(trt, BuildRequest(det_onnx, plan, profiles, workspace_mb=256, progress=progress))
    assert progress.phases_seen >= 5, progress.phases_seen
    assert "Building engine" in out.getvalue()


def test_engine_file_sidecar_and_cache(det_onnx: Path, tmp_path: Path) -> None:
    """A real plan on disk, its sidecar, then: reuse, and a rebuild for every kind of change."""
    onnx_path = tmp_path / det_onnx.name
    shutil.copy(det_onnx, onnx_path)
    engine = tmp_path / "det.engine"
    opts = BuildOptions(target="tensorrt_rtx", batch=BatchRange(1, 1, 2), progress=False, timing_cache=None)

    first = build_engine(onnx_path, engine, opts)
    assert first.built and first.reason == "no engine yet" and engine.is_file()
    side = read_sidecar(engine)
    spec = side.build.spec
    assert (spec.trt_module, spec.trt_version, spec.precision, spec.flags) == (
        "tensorrt_rtx", trt.__version__, "fp32", ("STRONGLY_TYPED",))
    assert spec.onnx_sha256 == sha256_file(onnx_path) and side.build.plan_sha256 == sha256_file(engine)
    assert [p.describe() for p in spec.profiles] == ["images: min 1x3x640x640, opt 1x3x640x640, max 2x3x640x640"]
    assert side.manifest.class_names == inspect_onnx(onnx_path).require_manifest().class_names
    # The engine file is the bare plan TensorRT returned: trtexec and DeepStream load it as is.
    assert engine.stat().st_size == side.build.plan_bytes == first.plan_bytes

    again = build_engine(onnx_path, engine, opts)
    assert not again.built and "is up to date" in again.reason

    bigger = build_engine(onnx_path, engine, BuildOptions(**{**opts.__dict__, "batch": BatchRange(1, 2, 4)}))
    assert bigger.built and bigger.reason == "changed: profiles: images batch 1..2 (opt 1) -> images batch 1..4 (opt 2)"

    _touch_manifest(onnx_path)  # a re-exported artifact: same graph, new bytes
    changed = build_engine(onnx_path, engine, BuildOptions(**{**opts.__dict__, "batch": BatchRange(1, 2, 4)}))
    assert changed.built and changed.reason.startswith("changed: onnx_sha256: ")

    engine.write_bytes(engine.read_bytes()[:-1])  # truncated copy
    damaged = build_engine(onnx_path, engine, BuildOptions(**{**opts.__dict__, "batch": BatchRange(1, 2, 4)}))
    assert damaged.built and damaged.reason == "the engine file does not match its sidecar"

    forced = build_engine(onnx_path, engine, BuildOptions(**{**opts.__dict__, "batch": BatchRange(1, 2, 4), "force": True}))
    assert forced.built and forced.reason == "forced"


def _touch_manifest(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = Manifest.from_json(p.value).replace(extra={"rebuilt": True}).to_json()
    onnx.save(model, str(path))


def _tiny_model(tail: str) -> object:
    """images[B,3,8,8] -> 1x1 conv -> boxes[B,64,4], scores[B,1,64] -> `tail`.

    tail "nms": ONNX NonMaxSuppression and a Cast after it (a graph like Ultralytics'
    nms=True export). tail "nonzero": NonZero on the scores.
    """
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    consts = {
        "w": np.random.default_rng(0).normal(size=(5, 3, 1, 1)).astype(np.float32),
        "shape": np.array([0, 5, -1], np.int64), "s0": np.array([0], np.int64), "s4": np.array([4], np.int64),
        "s5": np.array([5], np.int64), "ax1": np.array([1], np.int64), "maxk": np.array([10], np.int64),
        "iou": np.array([0.5], np.float32), "thr": np.array([0.1], np.float32),
    }
    nodes = [
        h.make_node("Conv", ["images", "w"], ["feat"], name="head"),
        h.make_node("Reshape", ["feat", "shape"], ["flat"], name="flatten"),
        h.make_node("Slice", ["flat", "s0", "s4", "ax1"], ["box_t"], name="box_slice"),
        h.make_node("Transpose", ["box_t"], ["boxes"], perm=[0, 2, 1], name="box_transpose"),
        h.make_node("Slice", ["flat", "s4", "s5", "ax1"], ["logit"], name="score_slice"),
        h.make_node("Sigmoid", ["logit"], ["scores"], name="score_sigmoid"),
    ]
    if tail == "nms":
        nodes += [h.make_node("NonMaxSuppression", ["boxes", "scores", "maxk", "iou", "thr"], ["sel"], name="nms"),
                  h.make_node("Cast", ["sel"], ["out"], to=T.INT32, name="after_nms")]
        out = h.make_tensor_value_info("out", T.INT32, [None, 3])
    else:
        nodes += [h.make_node("NonZero", ["scores"], ["out"], name="nonzero")]
        out = h.make_tensor_value_info("out", T.INT64, [3, None])
    graph = h.make_graph(nodes, f"tiny_{tail}", [h.make_tensor_value_info("images", T.FLOAT, ["batch", 3, 8, 8])],
                         [out], [nh.from_array(v, k) for k, v in consts.items()])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    manifest = Manifest(task="detect", class_names=("thing",), input_hw=(8, 8), max_det=10)
    model.metadata_props.add(key=METADATA_KEY, value=manifest.to_json())
    onnx.checker.check_model(model, full_check=True)
    return model


def test_graph_with_nms_builds_without_the_nms_stage_and_says_so(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "tiny_nms.onnx"
    onnx.save(_tiny_model("nms"), str(path))
    graph = inspect_onnx(path)
    assert graph.nms_ops == ("NonMaxSuppression",)

    # Whole: TensorRT-RTX parses NMS into an INMSLayer and then has no kernel for it.
    plan = plan_precision("fp32", "tensorrt_rtx", 1, graph.precision)
    profiles, _ = derive_profiles(graph.inputs, BatchRange(1, 1, 2))
    with pytest.raises(EdgeVisionError, match=r"TensorRT could not build tiny_nms\.onnx \(failing layer: nms\w* \(NMS\)\)"):
        build_serialized(trt, BuildRequest(path, plan, profiles))

    # The check path cuts before NMS, builds the rest, and says what it left out.
    said: list[str] = []
    result = build_engine(path, options=CHECK, log=said.append)
    note = "built without the NMS stage: cut before NonMaxSuppression nms (2 node(s) removed); outputs are now boxes, scores"
    assert note in result.notes and any(note in s for s in said)
    assert result.network_outputs == {"boxes": (-1, 64, 4), "scores": (-1, 1, 64)}

    # Writing an engine from it would silently drop the NMS stage: refused.
    with pytest.raises(EdgeVisionError, match="ends in NonMaxSuppression, which TensorRT-RTX cannot build"):
        build_engine(path, tmp_path / "x.engine", BuildOptions(target="tensorrt_rtx", progress=False))


def test_parse_failure_names_node_and_operator(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "tiny_nonzero.onnx"
    onnx.save(_tiny_model("nonzero"), str(path))
    with pytest.raises(EdgeVisionError) as info:
        build_engine(path, options=CHECK)
    message = str(info.value)
    assert message.startswith("TensorRT cannot parse tiny_nonzero.onnx:")
    assert re.search(r"node #6 nonzero \(NonZero\): .*NonZero plugin", message), message


def test_dla_probe_runs_on_a_real_network(det_onnx: Path) -> None:
    """can_run_on_DLA over every parsed layer (TensorRT-RTX has no DLA, so all fall back)."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(det_onnx))
    config = builder.create_builder_config()
    config.default_device_type = trt.DeviceType.DLA
    report = _probe_dla(config, network, 0)
    assert report.layers == network.num_layers and report.on_dla == 0 and builder.num_DLA_cores == 0
    assert report.fallback_by_type["CONVOLUTION"] >= 80
    assert any("nothing runs on DLA" in line for line in report.lines())


def test_dla_request_on_rtx_is_refused(det_onnx: Path) -> None:
    with pytest.raises(EdgeVisionError, match="TensorRT-RTX has no DLA"):
        build_engine(det_onnx, options=BuildOptions(target="tensorrt_rtx", check_only=True, precision="fp16", dla_core=0))


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
