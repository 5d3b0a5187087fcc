"""converters/families/yolo_unsplit.py: YOLO's split blocks with cv1 as two convolutions
compute what cv1 + Split computed, on the real checkpoint and a real frame, and the exported
graph has no Split left in them."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from converters.checkpoint import load_checkpoint
from converters.families.yolo_unsplit import unsplit
from edgevision.manifest import Preprocess
from edgevision.preprocess import preprocess

pytest.importorskip("ultralytics", reason="unpickling the YOLO checkpoint needs ultralytics")
LETTERBOX = Preprocess(resize="letterbox", pad_value=114, color="RGB", scale=1 / 255.0)  # Ultralytics' input


def test_two_convolutions_compute_the_split_halves(seg_checkpoint: Path, vtest_frames: list[np.ndarray]) -> None:
    ckpt = load_checkpoint(seg_checkpoint, trust=True)
    model = (ckpt.get("ema") or ckpt["model"]).float().fuse(verbose=False).eval()
    rewritten = copy.deepcopy(model)
    # yolo11n: eight C3k2 blocks and one C2PSA
    assert unsplit(rewritten) == 9
    assert unsplit(rewritten) == 0, "a rewritten block has no cv1 left to split"
    for m in rewritten.modules():
        if hasattr(m, "cv1a"):
            assert not hasattr(m, "cv1") and m.cv1a.conv.out_channels == m.cv1b.conv.out_channels == m.c
    x = torch.from_numpy(preprocess(vtest_frames[3], (640, 640), LETTERBOX)[0])
    with torch.no_grad():
        before, after = model(x), rewritten(x)
    preds_b, preds_a = first_tensor(before), first_tensor(after)  # [1, 4+80+32, 8400]
    assert preds_b.shape == preds_a.shape
    # The same dot products per output channel: equal up to float rounding of the kernels.
    torch.testing.assert_close(preds_a, preds_b, rtol=1e-5, atol=1e-3)
    assert float(preds_b[:, 4:84].max()) > 0.5, "the frame must hold confident detections for this to mean anything"


def test_exported_graph_keeps_split_only_in_attention(seg_onnx: Path) -> None:
    """Only the attention's q/k/v Split (on a reshaped tensor, not a conv output's channels)
    and the post-processing's own remain."""
    splits = [n.name for n in onnx.load(str(seg_onnx)).graph.node if n.op_type == "Split"]
    assert all("/attn/" in s or s.startswith("/post/") for s in splits), splits
    assert sum("/attn/" in s for s in splits) == 1


def first_tensor(out: object) -> torch.Tensor:
    """The model's decoded predictions: the first tensor of its (nested) outputs."""
    while not isinstance(out, torch.Tensor):
        out = out[0]  # type: ignore[index]
    return out
