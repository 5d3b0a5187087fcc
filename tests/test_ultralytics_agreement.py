"""edgevision's detections agree with Ultralytics' own predictor running Ultralytics' own
ONNX export of the same checkpoint (640x640, conf 0.25, IoU 0.7), on real frames.
The whole video is checked by benchmarks/agreement_ultralytics.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgevision
from benchmarks.ultralytics_ref import export_ultralytics_onnx, load_predictor, predict
from edgevision.metrics import agreement
from edgevision.sources import sample_frames


@pytest.fixture(scope="module")
def frames(vtest: Path) -> list[np.ndarray]:
    return sample_frames(vtest, 40)[0]


def test_agrees_with_ultralytics_predictor(seg_onnx: Path, seg_checkpoint: Path, frames: list[np.ndarray],
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    ref_model = load_predictor(export_ultralytics_onnx(seg_checkpoint, tmp_path_factory.mktemp("ultra")))
    ours = edgevision.load(seg_onnx, masks=False)
    a = agreement([ours(f) for f in frames], [predict(ref_model, f) for f in frames])
    print(a.summary())
    assert a.reference_detections > 200
    assert a.f1 >= 0.98 and a.ap50_95 >= 0.95, a.summary()


# Converts models (directly or through fixtures fetched by name): not in the fast tier.
pytestmark = pytest.mark.slow
