"""The precision gate and scenes calibration never saw (issue 12): the report says when validation came
from the calibration clip itself, and the MSE calibration picks the range of least int8 error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.precision.calibration import split_frames
from converters.precision.report import markdown, same_clip_warning

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")  # opencv-doc, beside vtest.avi


def run_report(frames: dict) -> str:
    return markdown({"task": "segment", "artifacts": {}, "runs": [{"precision": "int8", "frames": frames}]})


def test_report_warns_when_validation_comes_from_the_calibration_clip(vtest: Path) -> None:
    if not MEGAMIND.is_file():
        pytest.skip(f"{MEGAMIND} missing (apt-get install opencv-doc)")
    same = split_frames(str(vtest), 2, None, 2).describe()
    other = split_frames(str(vtest), 2, str(MEGAMIND), 2).describe()
    assert same["val"]["held_out_of_calib"] and not other["val"]["held_out_of_calib"]
    assert "overstates" in same_clip_warning(same) and same_clip_warning(other) == ""
    assert "- **warning**: validation frames come from the calibration source itself" in run_report(same)
    assert "**warning**" not in run_report(other) and f"`{MEGAMIND}`" in run_report(other)


def test_final_and_stem_layers_stay_float(seg_onnx: Path, vtest_frames: list[np.ndarray], tmp_path: Path) -> None:
    """By default the stem (model.0-2) and the final box / class / mask-coefficient convolutions stay
    float in both INT8 files: on scenes unlike the calibration clip, the final convolutions' inputs
    reach 3x vtest's range and the stem is the most sensitive (benchmarks/int8_diagnose.py)."""
    import onnx

    from converters.onnx_io import read_manifest
    from converters.precision import Budget
    from converters.precision.int8 import Int8Options, build_int8, final_layers, stem_layers
    from converters.precision.regions import find_regions

    manifest = read_manifest(seg_onnx)
    model = onnx.load(str(seg_onnx))
    regions = find_regions(model, manifest.family, manifest.extra)
    final, stem = final_layers(model, regions), stem_layers(regions, 3)
    heads = {f"/model/model.23/cv{b}.{i}/cv{b}.{i}.2/Conv" for b in (2, 3, 4) for i in range(3)}
    assert set(final) == heads | {"/model/model.23/proto/cv3/conv/Conv"}  # boxes, classes, mask coefficients, protos
    assert {n.split("/")[2] for n in stem} == {"model.0", "model.1", "model.2"} and len(stem) == 7

    build = build_int8(seg_onnx, manifest, vtest_frames[:2], tmp_path / "t.onnx", tmp_path / "c.onnx",
                       Budget(0.0, 0.0, 0.0), Int8Options(keep_float="none"), log=lambda _: None)
    assert set(build.kept_float) == set(final) | set(stem)
    trt = onnx.load(str(tmp_path / "t.onnx"))
    dq = {o for n in trt.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    readers = {n.name for n in trt.graph.node if any(i in dq for i in n.input)}
    assert readers == {layer.name for layer in regions.layers} - set(final) - set(stem)
    cpu = onnx.load(str(tmp_path / "c.onnx"))
    dq_cpu = {o for n in cpu.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    kept = [n for n in cpu.graph.node if n.name in set(final) | set(stem)]
    assert len(kept) == 17 and not [n.name for n in kept if any(i in dq_cpu for i in n.input)]  # float in, float weights


def test_mse_calibration_picks_the_range_of_least_int8_error(seg_onnx: Path, vtest_frames: list[np.ndarray]) -> None:
    """collect_ranges_mse's range per tensor, checked against numpy on the tensor itself: no candidate
    between the 99.9th percentile of |x| and its maximum quantizes it with less squared error."""
    import onnx

    from converters.onnx_io import read_manifest
    from converters.precision.calibration import (MSE_LOW_PERCENTILE, MSE_STEPS, collect_ranges_mse,
                                                  collect_ranges_multi, graph_feeds, preprocess_batches)
    from edgevision.backends.onnxruntime import make_session

    manifest = read_manifest(seg_onnx)
    tensors = ["/model/model.1/conv/Conv_output_0", "/model/model.4/cv2/act/Mul_output_0"]
    frames = vtest_frames[:2]
    got = collect_ranges_mse(seg_onnx, manifest, tensors, frames)
    model = onnx.load(str(seg_onnx))
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    sess = make_session(model.SerializeToString())
    x = next(preprocess_batches(seg_onnx, frames))
    feeds = graph_feeds(manifest, x, [i.name for i in sess.get_inputs()])
    values = dict(zip(tensors, sess.run(tensors, feeds)))
    bounds = collect_ranges_multi(seg_onnx, manifest, tensors, frames, (MSE_LOW_PERCENTILE, 100.0))

    def err(v: np.ndarray, amax: float) -> float:
        s = np.float32(amax / 127.0)
        return float(((np.clip(np.round(v / s), -128, 127) * s - v) ** 2).sum())

    for t in tensors:
        lo, hi = bounds[MSE_LOW_PERCENTILE].amax(t), bounds[100.0].amax(t)
        assert lo <= got.amax(t) <= hi * (1 + 1e-6)
        cands = [lo * (hi / lo) ** s for s in np.linspace(0, 1, MSE_STEPS)]
        assert err(values[t], got.amax(t)) <= min(err(values[t], c) for c in cands) * (1 + 1e-3), t
    assert "least squared int8 error" in got.info["method"]
