"""The pose graph module on a keypoint layout without visibility (K, 2): keypoints come out as
[B, D, K, 3] with visibility 1, and each kept row carries its own anchor's keypoints (the same
rows the numpy reference keeps). Runs the torch module only (the exported graph of the (17, 3)
layout is tested against Ultralytics in tests/test_ultralytics_tasks.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from converters.checkpoint import load_checkpoint
from converters.families.ultralytics_pose import PoseWithPostprocess
from converters.families.ultralytics_shared import export_ready
from converters.nms import DetectPostprocess
from converters.reference import decode_nms
from edgevision.manifest import Preprocess
from edgevision.preprocess import preprocess
from tests.ultralytics_models import yolo_task_checkpoint


def test_two_dim_keypoints_get_visibility_one_and_follow_their_rows(vtest_frames: list[np.ndarray],
                                                                    tmp_path: Path) -> None:
    # BN statistics from real frames: an untouched random model ties every score (NMS order noise)
    ckpt = yolo_task_checkpoint("pose", vtest_frames[4:8], tmp_path / "pose52.pt", 320, nc=2, kpt_shape=(5, 2))
    model = export_ready(load_checkpoint(ckpt), ckpt)
    post = DetectPostprocess(2, 10, 50, 256, 32)
    wrapper = PoseWithPostprocess(model, post, (5, 2)).eval()
    x = torch.from_numpy(np.concatenate([preprocess(f, (320, 320), Preprocess())[0] for f in vtest_frames[:2]]))
    conf, iou = torch.tensor([0.3]), torch.tensor([0.6])
    with torch.no_grad():
        boxes, scores, classes, num, kpts, limits = wrapper(x, conf, iou)
        preds = model(x)
    preds = (preds[0] if isinstance(preds, (tuple, list)) else preds).numpy()
    assert kpts.shape == (2, 50, 5, 3)
    for b in range(2):
        n = int(num[b])
        ref = decode_nms(preds[b], 2, 0.3, 0.6, 50, 256)
        assert n == len(ref.scores) > 5 and int(limits[b]) == 0
        want = preds[b, 6:, ref.anchors].reshape(n, 5, 2)
        np.testing.assert_allclose(kpts[b, :n, :, :2].numpy(), want, rtol=1e-5, atol=1e-3)
        assert (kpts[b, :n, :, 2] == 1).all()


# Builds and re-estimates a YOLO model (~40-110 s on 2 cores): not in the fast tier.
pytestmark = pytest.mark.slow
