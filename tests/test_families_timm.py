"""timm classifiers through `edgevision convert --arch timm:NAME`: a state_dict (and a TorchScript
file) loaded into timm's builder, verified against timm's own eval transform and model in
PyTorch, then run through edgevision.load() on ONNX Runtime on frames the conversion never saw."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edgevision
from converters.export import ExportOptions, convert
from edgevision.errors import EdgeVisionError
from edgevision.preprocess import place_image
from edgevision.results import Classification
from tests.families import recalibrate_bn

timm = pytest.importorskip("timm", reason="timm is installed by `make test` (pip install --no-deps timm)")
pytestmark = pytest.mark.slow

NAME = "mobilenetv3_small_050"  # 1.6 M parameters, BatchNorm, bicubic, crop_pct 0.875


@pytest.fixture(scope="module")
def timm_classifier(vtest_frames40: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(state_dict with seeded random weights and real-frame BN statistics, converted ONNX)."""
    tmp = tmp_path_factory.mktemp("timm")
    torch.manual_seed(0)
    model = recalibrate_bn(timm.create_model(NAME, pretrained=False, num_classes=12), vtest_frames40[:16], (224, 224))
    sd = tmp / "mnv3-timm.pth"
    torch.save(model.state_dict(), sd)
    result = convert(sd, tmp / "out", ExportOptions(arch=f"timm:{NAME}"), vtest_frames40[16:20])
    assert result.verdict is not None and result.verdict.passed and result.batch_consistent
    return sd, result.onnx_path


def _timm_net(sd: Path) -> torch.nn.Module:
    net = timm.create_model(NAME, pretrained=False, num_classes=12)
    net.load_state_dict(torch.load(sd, weights_only=True))
    return net.eval()


def _timm_input(net: torch.nn.Module, frame: np.ndarray) -> torch.Tensor:
    """What a timm user feeds the model: its eval transform on a PIL RGB image."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config({}, model=net))
    return transform(Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])))


def test_preprocessing_is_timms_eval_transform(timm_classifier: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    """edgevision's runtime pre-processing gives timm's eval transform's tensor (PIL bicubic on
    uint8, shorter side to floor(224 / 0.875) = 256, centre crop, mean/std) to float rounding."""
    model = edgevision.load(timm_classifier[1], backend="onnxruntime")
    m = model.manifest
    assert m.preprocess.resize_size == 256 and m.preprocess.interpolation == "cubic" and m.input_hw == (224, 224)
    net = _timm_net(timm_classifier[0])
    for frame in vtest_frames40[20:23]:
        ours = np.empty((3, 224, 224), np.float32)
        place_image(frame, m.input_hw, m.preprocess, ours)
        theirs = _timm_input(net, frame).numpy()
        assert np.abs(ours - theirs).max() <= 1e-5


def test_matches_timm_on_unseen_frames(timm_classifier: tuple[Path, Path], vtest_frames40: list[np.ndarray]) -> None:
    sd, onnx = timm_classifier
    model = edgevision.load(onnx, backend="onnxruntime")
    net = _timm_net(sd)
    frames = vtest_frames40[20:32]
    top1 = set()
    with torch.no_grad():
        for frame in frames:
            got = model(frame)
            assert isinstance(got, Classification) and len(got) == 5
            probs, ids = net(_timm_input(net, frame)[None]).softmax(-1)[0].topk(5)
            assert np.array_equal(got.class_id, ids.numpy())
            assert np.abs(got.confidence - probs.numpy()).max() <= 1e-4
            top1.add(int(ids[0]))
    # the frames must tell classes apart, or top-1 agreement proves little
    assert len(top1) >= 2


def test_torchscript_and_refusals(timm_classifier: tuple[Path, Path], tmp_path: Path,
                                  vtest_frames40: list[np.ndarray]) -> None:
    net = _timm_net(timm_classifier[0])
    ts = tmp_path / "timm.torchscript"
    torch.jit.trace(net, torch.rand(1, 3, 224, 224)).save(str(ts))
    result = convert(ts, tmp_path / "ts", ExportOptions(arch=f"timm:{NAME}"), vtest_frames40[20:24])
    assert result.verdict is not None and result.verdict.passed and result.verdict.metrics["top1_agreement"] == 1.0
    with pytest.raises(EdgeVisionError, match="timm has no model 'mobilenetv3_smal_050'"):
        convert(timm_classifier[0], tmp_path / "a", ExportOptions(arch="timm:mobilenetv3_smal_050"))
    with pytest.raises(EdgeVisionError, match=r"does not fit timm:resnet18 with \d+ classes: missing \d+ \(conv1.weight, "):
        convert(timm_classifier[0], tmp_path / "b", ExportOptions(arch="timm:resnet18"))
