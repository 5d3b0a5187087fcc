"""`edgevision build` says, before building, where the TensorRT version has a known issue with the graph
(edgevision/build/requirements.py). The comparison is a pure function of the version string; here it
runs on versions given to it and on a real ONNX graph's ops. The INT8 YOLO26 artifact's case (its
manifest record, the command line's warning and --strict) is in tests/test_precision_heads.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision.build.requirements import HEAD_NEEDS, head_needs, manifest_needs, op_needs, version_tuple, \
    version_warnings

E2E = HEAD_NEEDS[("one2one", "int8")]


@pytest.mark.parametrize("text, want", [("10.3.0.30", (10, 3, 0, 30)), ("10.7", (10, 7)), ("8.6.1", (8, 6, 1)),
                                        ("10.7.0rc1", (10, 7)), ("1.7.1.116", (1, 7, 1, 116))])
def test_version_tuple(text: str, want: tuple[int, ...]) -> None:
    assert version_tuple(text) == want


@pytest.mark.parametrize("running, warned", [("10.3.0.30", True), ("10.3", True), ("8.6.2", True), ("10.6.9", True),
                                             ("10.7.0.23", False), ("10.13.3.9", False), ("11.0", False)])
def test_end_to_end_int8_needs_tensorrt_10_7(running: str, warned: bool) -> None:
    got = version_warnings(running, [E2E])
    assert bool(got) == warned
    if warned:  # names the head, the running version and the one it needs, and where that is known from
        assert "end-to-end" in got[0] and f"TensorRT {running}" in got[0] and ">= 10.7" in got[0]
        assert "ultralytics" in got[0]


def test_only_the_end_to_end_head_in_int8_has_a_need() -> None:
    assert head_needs("one2one", "int8") and not head_needs("one2one", "fp16") and not head_needs("one2many", "int8")
    assert not head_needs(None, "int8") and not head_needs("rtdetr", "int8")
    # what the converter writes into a manifest reads back as the same need
    assert manifest_needs({"min_tensorrt": head_needs("one2one", "int8")}) == [E2E]
    assert manifest_needs({"min_tensorrt": [{"what": "x"}]}) == []  # a malformed record is not a need


def _grid_sample_graph(path: Path) -> Path:
    """A real ONNX file: GridSample of a feature map at given points (deformable attention's sampler)."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], align_corners=0)], "gs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
         helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 3, 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_grid_sample_is_flagged_from_the_graph(tmp_path: Path) -> None:
    """Read from the graph's ops (any ONNX file): GridSample is reported silently wrong from TensorRT 10.13."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from edgevision.build.onnx_graph import inspect_onnx

    path = _grid_sample_graph(tmp_path / "gs.onnx")
    y = ort.InferenceSession(str(path)).run(None, {"x": np.ones((1, 2, 4, 4), np.float32),
                                                   "grid": np.zeros((1, 3, 3, 2), np.float32)})[0]
    assert y.shape == (1, 2, 3, 3)  # a graph that runs
    needs = op_needs(inspect_onnx(path).op_counts)
    assert [n.what.split()[0] for n in needs] == ["GridSample"]
    assert not version_warnings("10.12.0", needs) and not version_warnings("10.3.0.30", needs)
    warned = version_warnings("10.13.3.9", needs)
    assert len(warned) == 1 and "GridSample" in warned[0] and ">= 10.13" in warned[0] and "10.13.3.9" in warned[0]
    assert op_needs(["Conv", "TopK", "GatherElements"]) == []
