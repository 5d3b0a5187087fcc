"""Foreign ONNX specs and heads without converting anything (fast tier).

The spec's parsing and its fit to a file's output shapes (one sentence where it does not fit),
Ultralytics' metadata, and each layout's torch head against its numpy twin (the verification
reference) on inputs with overlapping boxes, ties below conf and padding rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.foreign.reference import decode_raw
from converters.foreign.spec import ForeignSpec, check_outputs, load_spec, ultralytics_spec, ULTRALYTICS_PRE
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest, Preprocess

IN = [1, 3, 320, 320]


def test_a_full_spec_parses(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("cat\ndog\n\n")
    p = tmp_path / "s.yaml"
    p.write_text("layout: ssd\nboxes: xyxy\nnormalized: true\nscores: softmax\nbackground: first\n"
                 "classes_file: names.txt\noutputs: [b, s]\n"
                 "input: {size: [300, 400], resize: stretch, color: bgr, scale: 1, mean: [104, 117, 123], std: 1}\n")
    s = load_spec(p)
    assert (s.layout, s.box_format, s.normalized, s.score_fn, s.background) == ("ssd", "xyxy", True, "softmax", "first")
    assert s.class_names == ("cat", "dog") and s.outputs == ("b", "s") and s.input_hw == (300, 400)
    assert s.preprocess == Preprocess(resize="stretch", pad_value=114, color="BGR", scale=1.0,
                                      mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("text, message", [
    ("layout: yolov8\n", 'did you mean "yolo"'),
    ("layout: yolo\nbox: xyxy\n", 'unknown key \'box\' (did you mean "boxes"?)'),
    ("layout: detr\ntask: segment\n", "does not go with layout 'detr'"),
    ("layout: ssd\nscores: sigmoid\nbackground: first\n", "goes with softmax"),
    ("layout: yolo\ninput: {resize: center_crop}\n", "not one of letterbox, stretch"),
    ("layout: yolo\ninput: {size: [320]}\n", "wants N or [H, W]"),
    ("- yolo\n", "must be a mapping"),
    ("layout: [yolo\n", "not valid YAML"),
])
def test_a_bad_spec_is_one_sentence(text: str, message: str, tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(EdgeVisionError) as exc:
        load_spec(p)
    assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def spec(layout: str, **kw: object) -> ForeignSpec:
    return ForeignSpec(layout=layout, preprocess=ULTRALYTICS_PRE, origin="s.yaml", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("s, outputs, message", [
    (spec("yolo", class_names=("a", "b", "c")), {"o": [1, 84, 2100]}, "has 84 channels, the spec says 4 + 3 classes"),
    (spec("yolo"), {"o": [1, 2100, 84]}, "has 2100 channels"),
    (spec("yolo", class_names=tuple("abc")), {"o": [1, 2100, 7]}, "rather than [B, 4+C, N]"),
    (spec("end2end"), {"o": [1, 84, 2100]}, "end2end wants rows [B, N, 6]"),
    (spec("end2end"), {"o": [1, 300, 6]}, "list them under `classes:`"),
    (spec("yolo", task="segment"), {"o": [1, 116, 2100]}, "reads 2 output(s), the file has 1"),
    (spec("detr", background="last", score_fn="softmax", class_names=tuple("ab")),
     {"b": [1, 100, 4], "l": [1, 100, 4]}, "has 4 class columns, the spec says 2 classes + 1 background"),
    (spec("ssd"), {"b": [1, 100, 4], "s": [1, 90, 3]}, "b has 100 rows and s 90"),
    (spec("ssd", outputs=("boxes", "scores")), {"b": [1, 100, 4], "s": [1, 100, 3]}, "no output 'boxes'"),
    (spec("yolo", input_hw=(640, 640)), {"o": [1, 84, 2100]}, "input size 640x640 is not the file's 320x320"),
])
def test_a_spec_that_does_not_fit_says_why(s: ForeignSpec, outputs: dict[str, list[int | None]], message: str) -> None:
    with pytest.raises(EdgeVisionError) as exc:
        check_outputs(s, outputs, IN, Path("m.onnx"))
    assert message in str(exc.value) and "does not fit s.yaml" in str(exc.value), str(exc.value)


def test_a_spec_that_fits() -> None:
    fit = check_outputs(spec("yolo", task="segment"), {"p": [1, 116, 2100], "q": [1, 32, 80, 80]}, IN, Path("m.onnx"))
    assert (fit.outputs, fit.num_classes, fit.num_masks, fit.rows, fit.input_hw) == (("p", "q"), 80, 32, 2100, (320, 320))
    fit = check_outputs(spec("detr", background="last", score_fn="softmax"), {"b": [1, 100, 4], "l": [1, 100, 92]},
                        IN, Path("m.onnx"))
    assert (fit.num_classes, fit.rows) == (91, 100)


@pytest.mark.parametrize("meta, layout, refused", [
    ({"task": "detect", "args": "{'nms': None}", "end2end": "False"}, "yolo", None),
    ({"task": "detect", "args": "{'nms': True}", "end2end": "False"}, "end2end", None),
    ({"task": "segment", "args": "{'nms': False}", "end2end": "True"}, "end2end", None),
    ({"task": "pose"}, None, "Ultralytics pose export"),
])
def test_ultralytics_metadata(meta: dict[str, str], layout: str | None, refused: str | None) -> None:
    full = {"author": "Ultralytics", "names": "{0: 'person', 1: 'car'}", "imgsz": "[320, 416]", "stride": "32", **meta}
    if refused:
        with pytest.raises(EdgeVisionError, match=refused):
            ultralytics_spec(full, Path("m.onnx"))
        return
    s = ultralytics_spec(full, Path("m.onnx"))
    assert s is not None and s.ultralytics and s.layout == layout and s.task == meta["task"]
    assert s.class_names == ("person", "car") and s.input_hw == (320, 416) and s.preprocess == ULTRALYTICS_PRE
    assert ultralytics_spec({"names": "x"}, Path("m.onnx")) is None  # not Ultralytics': a spec is needed


# --- each head against its numpy twin -------------------------------------------------------

HW = (64, 96)
NC, N, B = 3, 40, 2


def raw_inputs(layout: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Batch-2 raw outputs with clusters of overlapping boxes, exact score ties and zero padding rows."""
    centres = rng.uniform(10, 60, (B, N, 2)).astype(np.float32)
    centres[:, 1::2] = centres[:, ::2] + 1.5  # pairs that overlap heavily
    wh = rng.uniform(8, 20, (B, N, 2)).astype(np.float32)
    probs = rng.uniform(0, 1, (B, N, NC)).astype(np.float32)
    probs[:, 5] = probs[:, 6]  # a tie
    probs[:, -4:] = 0  # padding rows
    cxcywh = np.concatenate([centres, wh], -1)
    xyxy = np.concatenate([centres - wh / 2, centres + wh / 2], -1)
    if layout == "yolo":
        return [np.concatenate([cxcywh, probs], -1).transpose(0, 2, 1).copy()]
    if layout == "end2end":
        return [np.concatenate([xyxy, probs.max(-1, keepdims=True), probs.argmax(-1)[..., None].astype(np.float32)], -1)]
    scale = np.array([HW[1], HW[0], HW[1], HW[0]], np.float32)
    logits = np.log(np.clip(probs, 1e-6, 1 - 1e-6) / np.clip(1 - probs, 1e-6, 1))
    if layout == "detr":
        return [cxcywh / scale, logits.astype(np.float32)]
    return [xyxy / scale, np.concatenate([np.zeros((B, N, 1), np.float32), 3 * probs], -1)]  # ssd, background first


SPECS = {
    "yolo": {},
    "end2end": {"box_format": "xyxy"},
    "detr": {"normalized": True, "score_fn": "sigmoid"},
    "ssd": {"box_format": "xyxy", "normalized": True, "score_fn": "softmax", "background": "first"},
}


@pytest.mark.parametrize("layout", list(SPECS))
def test_head_equals_its_numpy_twin(layout: str) -> None:
    import torch

    from converters.foreign.heads import NmsHead, TopKHead
    from converters.nms import DetectPostprocess

    s = spec(layout, class_names=tuple("abc"), **SPECS[layout])
    raw = raw_inputs(layout, np.random.default_rng(1))
    conf, iou, max_det = 0.3, 0.5, 12
    if layout in ("yolo", "ssd"):
        head = NmsHead(s, DetectPostprocess(NC, 0, max_det, N, 8), HW)
    else:
        head = TopKHead(s, max_det, NC, HW)
    manifest = Manifest(task="detect", class_names=tuple("abc"), input_hw=HW, max_det=max_det, conf_threshold=conf,
                        iou_threshold=iou, extra={"pre_nms_topk": N})
    with torch.no_grad():
        boxes, scores, classes, num, limits = head(*[torch.from_numpy(r) for r in raw], torch.tensor([conf]),
                                                   torch.tensor([iou]))
    assert limits.dtype == torch.int32 and not limits.any()
    for b in range(B):
        want_boxes, want_scores, want_cls = decode_raw([r[b] for r in raw], s, manifest)
        n = int(num[b])
        assert n == len(want_scores) > 2, (n, len(want_scores))
        np.testing.assert_allclose(boxes[b, :n].numpy(), want_boxes, atol=1e-4)
        np.testing.assert_allclose(scores[b, :n].numpy(), want_scores, atol=1e-6)
        np.testing.assert_array_equal(classes[b, :n].numpy(), want_cls)
        assert not scores[b, n:].any()  # padding rows score 0
