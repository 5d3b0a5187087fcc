"""torchvision classifiers and semantic segmenters through `edgevision convert`: a state_dict
and --arch, verified against torchvision's own presets and model in PyTorch, then run through
edgevision.load() on ONNX Runtime on frames the conversion never saw."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import edgevision
from converters.export import ExportOptions, convert
from converters.families.torchvision import classify_reference, semantic_reference, _preset, default_weights
from converters.verify import compare
from edgevision.errors import EdgeVisionError
from edgevision.results import Classification, ClassMap
from tests.families import torchvision_state_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classifier(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """mobilenet_v3_small, 10 classes, real-frame BN statistics: (state_dict, converted ONNX)."""
    tmp = tmp_path_factory.mktemp("cls")
    sd = torchvision_state_dict("mobilenet_v3_small", vtest_frames40[:16], tmp / "mnv3.pth", (224, 224), num_classes=10)
    names = tmp / "names.txt"
    names.write_text("\n".join(f"thing{i}" for i in range(10)))
    result = convert(sd, tmp / "out", ExportOptions(arch="torchvision:mobilenet_v3_small",
                                                    class_names=tuple(names.read_text().split())), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return sd, result.onnx_path


@pytest.fixture(scope="module")
def segmenter(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """lraspp_mobilenet_v3_large, 21 VOC classes, real-frame BN statistics, input sized after vtest."""
    tmp = tmp_path_factory.mktemp("sem")
    sd = torchvision_state_dict("lraspp_mobilenet_v3_large", vtest_frames40[:16], tmp / "lraspp.pth", (520, 693),
                                weights_backbone=None)
    result = convert(sd, tmp / "out", ExportOptions(arch="torchvision:lraspp_mobilenet_v3_large"), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return sd, result.onnx_path


def _torch_model(name: str, sd: Path, **kwargs: object) -> torch.nn.Module:
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    model.load_state_dict(torch.load(sd, weights_only=True))
    return model.eval()


def test_classifier_matches_torchvision_on_unseen_frames(classifier: tuple[Path, Path],
                                                         vtest_frames40: list[np.ndarray]) -> None:
    sd, onnx = classifier
    model = edgevision.load(onnx, backend="onnxruntime")
    frames = vtest_frames40[20:32]
    got = [model(f) for f in frames]
    assert all(isinstance(r, Classification) and len(r) == 5 for r in got)
    assert got[0].class_name[0].startswith("thing"), "names from --class-names"
    net = _torch_model("mobilenet_v3_small", sd, num_classes=10)
    p = _preset(default_weights("mobilenet_v3_small"), "classify")
    from torchvision.transforms._presets import ImageClassification

    ref = classify_reference(net, ImageClassification(crop_size=224, resize_size=p["resize_size"]), 5, got[0].class_names)(frames)
    for g, r in zip(got, ref):
        assert np.array_equal(g.class_id, r.class_id)
        assert np.abs(g.confidence - r.confidence).max() <= 1e-4
    # the frames must tell classes apart, or top-1 agreement proves nothing
    assert len({int(r.class_id[0]) for r in ref}) >= 2 or np.ptp([r.confidence[0] for r in ref]) > 1e-3
    v = compare("classify", got, ref)
    assert v.passed and v.metrics["top1_agreement"] == 1.0


def test_semantic_matches_torchvision_on_unseen_frames(segmenter: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    sd, onnx = segmenter
    model = edgevision.load(onnx, backend="onnxruntime")
    frames = vtest_frames40[20:26]
    got = [model(f) for f in frames]
    assert all(isinstance(r, ClassMap) and r.class_map.shape == f.shape[:2] for r, f in zip(got, frames))
    net = _torch_model("lraspp_mobilenet_v3_large", sd, weights_backbone=None)
    p = _preset(default_weights("lraspp_mobilenet_v3_large"), "semantic")
    ref = semantic_reference(net, p, got[0].class_names)(frames)
    v = compare("semantic", got, ref)
    assert v.verified and v.metrics["pixel_agreement"] >= 0.99, v.summary
    assert got[0].class_names[0] == "__background__", "VOC names from the weights' meta"
    record = got[0].to_json(rle=True)
    assert sum(record["pixels"].values()) == frames[0].shape[0] * frames[0].shape[1]
    assert sum(record["rle"]["counts"]) == frames[0].shape[0] * frames[0].shape[1]


def test_batch_of_two_equals_two_single_runs(classifier: tuple[Path, Path], segmenter: tuple[Path, Path],
                                             vtest_frames40: list[np.ndarray]) -> None:
    for onnx in (classifier[1], segmenter[1]):
        model = edgevision.load(onnx, backend="onnxruntime")
        pair = model.predict(vtest_frames40[30:32])
        for got, frame in zip(pair, vtest_frames40[30:32]):
            single = model(frame)
            if isinstance(got, Classification):
                assert np.array_equal(got.class_id, single.class_id)
                assert np.allclose(got.confidence, single.confidence, atol=1e-5)
            else:
                assert (got.class_map == single.class_map).mean() >= 0.9999


def test_state_dict_needs_no_trust_and_a_pickle_is_refused(classifier: tuple[Path, Path], tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(_torch_model("mobilenet_v3_small", classifier[0], num_classes=10), whole)
    with pytest.raises(EdgeVisionError, match="pickles a whole model.*--trust-checkpoint"):
        convert(whole, tmp_path / "out", ExportOptions(arch="torchvision:mobilenet_v3_small"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.onnx"))


def test_torchscript_file_converts_with_arch_and_agrees_with_itself(classifier: tuple[Path, Path], tmp_path: Path,
                                                                    vtest_frames40: list[np.ndarray]) -> None:
    """A traced TorchScript classifier: no trust needed (TorchScript runs no pickled Python),
    its weights go into torchvision's builder, and verification runs the TorchScript module
    itself, so a weight that landed in the wrong place would fail it."""
    net = _torch_model("mobilenet_v3_small", classifier[0], num_classes=10)
    ts = tmp_path / "mnv3.torchscript"
    torch.jit.trace(net, torch.rand(1, 3, 224, 224)).save(str(ts))
    with pytest.raises(EdgeVisionError, match="torchscript needs --arch"):
        convert(ts, tmp_path / "no-arch", ExportOptions())
    frames = vtest_frames40[20:24]
    result = convert(ts, tmp_path / "out", ExportOptions(arch="torchvision:mobilenet_v3_small"), frames)
    assert result.verdict is not None and result.verdict.passed, result.verdict
    assert result.verdict.metrics["top1_agreement"] == 1.0
    assert result.manifest.source["file"] == ts.name
    got = [edgevision.load(result.onnx_path, backend="onnxruntime")(f) for f in frames]
    scripted = torch.jit.load(str(ts))
    with torch.no_grad():
        for g, f in zip(got, frames):
            probs, ids = scripted(_preprocessed(f)).softmax(-1)[0].topk(5)
            assert np.array_equal(g.class_id, ids.numpy()) and np.abs(g.confidence - probs.numpy()).max() <= 1e-4


def _preprocessed(frame: np.ndarray) -> torch.Tensor:
    from torchvision.transforms._presets import ImageClassification

    p = _preset(default_weights("mobilenet_v3_small"), "classify")
    rgb = torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1)
    return ImageClassification(crop_size=224, resize_size=p["resize_size"])(rgb)[None]


def test_wrong_arch_and_head_size_are_one_sentence(classifier: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(EdgeVisionError, match="does not fit torchvision:resnet18"):
        convert(classifier[0], tmp_path / "a", ExportOptions(arch="torchvision:resnet18"))
    with pytest.raises(EdgeVisionError, match="has no model 'mobilenet_v3_smal'.*mobilenet_v3_small"):
        convert(classifier[0], tmp_path / "b", ExportOptions(arch="torchvision:mobilenet_v3_smal"))
    with pytest.raises(EdgeVisionError, match="unknown family 'timmy'"):
        convert(classifier[0], tmp_path / "c", ExportOptions(arch="timmy:resnet"))
    with pytest.raises(EdgeVisionError, match="--class-names lists 3 names, the model has 10"):
        convert(classifier[0], tmp_path / "d", ExportOptions(arch="torchvision:mobilenet_v3_small",
                                                             class_names=("a", "b", "c")))


@pytest.mark.parametrize("which", ["classifier", "segmenter"])
def test_graph_parses_and_builds_with_tensorrt_rtx(which: str, request: pytest.FixtureRequest) -> None:
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is the CI builder")
    from edgevision.build import BatchRange, BuildOptions, build_engine
    from edgevision.build.onnx_graph import inspect_onnx

    onnx_path: Path = request.getfixturevalue(which)[1]
    graph = inspect_onnx(onnx_path)
    manifest = graph.require_manifest()
    assert not graph.nms_ops and "NonZero" not in graph.op_counts
    result = build_engine(onnx_path, options=BuildOptions(target="tensorrt_rtx", check_only=True,
                                                          batch=BatchRange(1, 2, 4), progress=False))
    print(f"\n{which}: {result.layers} layers built in {result.seconds:.2f} s with TensorRT-RTX {trt.__version__}")
    assert result.network_inputs["images"] == (-1, 3, *manifest.input_hw)
    assert list(result.network_outputs) == list(manifest.outputs)
    if which == "classifier":
        assert {"TopK", "Softmax"} <= set(graph.op_counts)
        assert result.network_outputs["topk_class_ids"] == (-1, 5)
    else:
        assert "ArgMax" in graph.op_counts
        assert result.network_outputs["class_map"] == (-1, *manifest.input_hw)


def test_cli_convert_verifies_on_images_and_folders_and_run_writes_results(
    classifier: tuple[Path, Path], segmenter: tuple[Path, Path], vtest_frames40: list[np.ndarray], tmp_path: Path
) -> None:
    import json

    import cv2

    from tests.test_cli import ev

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(vtest_frames40[32:35]):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    for verify in (folder, folder / "0.png"):
        out = ev("convert", str(classifier[0]), "--arch", "torchvision:mobilenet_v3_small", "--num-classes", "10",
                 "-o", str(tmp_path / "c"), "--verify", str(verify))
        assert out.returncode == 0, out.stderr
        assert "verified  top-1 agreement 1.0000" in out.stdout
    jsonl = tmp_path / "sem.jsonl"
    out = ev("run", str(segmenter[1]), "--source", str(folder), "--jsonl", str(jsonl), "--rle",
             "--save", str(tmp_path / "sem.mp4"), "--quiet")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    h, w = vtest_frames40[0].shape[:2]
    assert len(lines) == 3 and all(sum(r["pixels"].values()) == h * w == sum(r["rle"]["counts"]) for r in lines)
    assert (tmp_path / "sem.mp4").stat().st_size > 10_000
    out = ev("run", str(classifier[1]), "--source", str(folder), "--jsonl", str(tmp_path / "cls.jsonl"), "--quiet")
    assert out.returncode == 0, out.stderr
    first = json.loads((tmp_path / "cls.jsonl").read_text().splitlines()[0])
    assert len(first["classes"]) == 5 and first["classes"][0]["confidence"] >= first["classes"][1]["confidence"]
