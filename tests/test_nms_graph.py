"""The in-graph decode + NMS (converters/nms.py), exported to ONNX and run by ONNX Runtime,
against the numpy greedy-NMS reference (converters/reference.py) on inputs built to sit on
the edges: exact IoU ties at the threshold, pairs one ulp either side of it, suppression
chains, classes, padding, the candidate cap; and nms_limits, which must say exactly when the
rows are not a plain greedy NMS."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from converters.nms import NMS_CAPPED, NMS_UNCONVERGED, DetectPostprocess
from converters.reference import decode_nms, nms_chain_depth, nms_limits_reached
from edgevision.manifest import OUT_LIMITS
from edgevision.metrics import box_iou

NC, N = 3, 64
NAMES = ["boxes", "scores", "class_ids", "num_dets"]


def export_post(tmp: Path, topk: int, iters: int, max_det: int, nm: int = 0, block: int = 32) -> ort.InferenceSession:
    post = DetectPostprocess(NC, nm, max_det, topk, iters, block).eval()
    example = (torch.rand(2, 4 + NC + nm, N), torch.tensor([0.25]), torch.tensor([0.5]))
    path = tmp / f"post_{topk}_{iters}_{max_det}_{nm}_{block}.onnx"
    names = NAMES + (["mask_coeffs"] if nm else []) + [OUT_LIMITS]
    torch.onnx.export(post, example, str(path), opset_version=17, dynamo=False,
                      input_names=["preds", "conf", "iou"], output_names=names,
                      dynamic_axes={"preds": {0: "b"}, **{n: {0: "b"} for n in names}})
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def make_preds(boxes_xyxy: list[list[float]], scores: list[float], classes: list[int], nm: int = 0) -> np.ndarray:
    """float32[4+NC+nm, N]: the given boxes first, the rest background (score 0)."""
    p = np.zeros((4 + NC + nm, N), np.float32)
    p[0:4, :] = np.array([[5], [5], [2], [2]], np.float32)
    for i, ((x1, y1, x2, y2), s, c) in enumerate(zip(boxes_xyxy, scores, classes)):
        p[0:4, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        p[4 + c, i] = s
    if nm:
        p[4 + NC :, :] = np.arange(nm * N, dtype=np.float32).reshape(nm, N)
    return p


CASES = {
    # name: (boxes, scores, classes, iou threshold)
    "disjoint": ([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.5),
    "duplicate": ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], 0.5),
    "other_class_survives": ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 1], 0.5),
    # IoU exactly 0.5 is not suppressed ("> iou"), as in torchvision
    "iou_at_threshold": ([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], [0, 0], 0.5),
    "iou_just_above": ([[0, 0, 10, 10], [0, 0, 10, 5.1]], [0.9, 0.8], [0, 0], 0.5),
    # chain: A suppresses B, B would suppress C, but B is gone so C survives
    "chain": ([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.3),
    "long_chain": ([[i * 4.0, 0, i * 4.0 + 10, 10] for i in range(8)], [0.9 - 0.05 * i for i in range(8)], [0] * 8, 0.3),
    "below_conf": ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.2], [0, 0], 0.5),
    "zero_area": ([[5, 5, 5, 5], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], 0.5),
    "two_empty_boxes": ([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], [0, 0], 0.5),  # union 0: no 0/0 in the graph
    # a negative intersection height with a positive width: must not count as overlap
    "apart_vertically": ([[0, 0, 10, 10], [0, 30, 10, 40]], [0.9, 0.8], [0, 0], 0.0),
}

# Graphs: label -> (pre_nms_topk K, nms_iters, max_det, block). Blocks smaller than K exercise
# the blocked fixed point; "shallow" runs out of iterations on ordinary clusters.
GRAPHS = {"one block": (32, 8, 16, 32), "blocks of 8": (32, 8, 16, 8), "shallow": (32, 1, 16, 8)}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ort.InferenceSession]:
    tmp = tmp_path_factory.mktemp("nms")
    return {label: export_post(tmp, k, it, d, block=b) for label, (k, it, d, b) in GRAPHS.items()}


@pytest.fixture(scope="module")
def session(sessions: dict[str, ort.InferenceSession]) -> ort.InferenceSession:
    return sessions["one block"]


def run(session: ort.InferenceSession, preds: np.ndarray, conf: float, iou: float) -> dict[str, np.ndarray]:
    outs = session.run(None, {"preds": preds, "conf": np.array([conf], np.float32), "iou": np.array([iou], np.float32)})
    return dict(zip([o.name for o in session.get_outputs()], outs))


def assert_rows_equal(got: dict[str, np.ndarray], b: int, preds: np.ndarray, conf: float, iou: float, max_det: int,
                      pre_nms_topk: int | None = None, num_classes: int = NC) -> None:
    """Image b's rows equal the greedy reference bit for bit (same float ops on both sides)."""
    ref = decode_nms(preds, num_classes, conf, iou, max_det, pre_nms_topk)
    n = int(got["num_dets"][b])
    assert n == len(ref.scores)
    np.testing.assert_array_equal(got["boxes"][b, :n], ref.boxes)
    np.testing.assert_array_equal(got["scores"][b, :n], ref.scores)
    np.testing.assert_array_equal(got["class_ids"][b, :n], ref.class_ids)
    assert np.all(got["scores"][b, n:] == 0), "padding rows must score 0"


def test_outputs_keep_their_places_and_limits_come_last(tmp_path: Path) -> None:
    post = DetectPostprocess(NC, 2, 4, 8, 2)
    outs = post(torch.rand(3, 4 + NC + 2, N), torch.tensor([0.25]), torch.tensor([0.5]))
    assert [tuple(o.shape) for o in outs] == [(3, 4, 4), (3, 4), (3, 4), (3,), (3, 4, 2), (3,)]
    assert outs[-1].dtype == torch.int32 and outs[3].dtype == torch.int32 and outs[2].dtype == torch.int32
    session = export_post(tmp_path, topk=8, iters=2, max_det=4, nm=2)
    assert [o.name for o in session.get_outputs()] == [*NAMES, "mask_coeffs", OUT_LIMITS]
    assert session.get_outputs()[-1].type == "tensor(int32)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_nms_matches_greedy_reference(session: ort.InferenceSession, case: str) -> None:
    boxes, scores, classes, iou = CASES[case]
    preds = make_preds(boxes, scores, classes)
    got = run(session, preds[None], 0.25, iou)
    assert int(got[OUT_LIMITS][0]) == 0, case
    assert_rows_equal(got, 0, preds, 0.25, iou, 16)


def chain(length: int, x0: float = 0.0) -> tuple[list[list[float]], list[float]]:
    """Boxes 10 wide, each shifted 4 from the last, scores falling: at IoU 0.3 every box
    suppresses only its neighbours (IoU 0.43; two apart 0.11), the deepest chain there is."""
    return [[x0 + i * 4.0, 0, x0 + i * 4.0 + 10, 10] for i in range(length)], [0.9 - 0.02 * i for i in range(length)]


def test_long_chain_needs_its_depth_in_iterations(tmp_path: Path) -> None:
    """With fewer iterations than the chain is deep, the fixed point is not reached, and
    nms_limits says so; with as many, the rows are exact and the flag is clear."""
    boxes, scores = chain(8)
    preds = make_preds(boxes, scores, [0] * 8)
    depth = nms_chain_depth(np.array(boxes, np.float32), np.array(scores, np.float32), np.zeros(8, np.int64), 0.3)
    assert depth >= 3
    shallow = run(export_post(tmp_path, topk=32, iters=depth - 1, max_det=16), preds[None], 0.25, 0.3)
    exact = run(export_post(tmp_path, topk=32, iters=depth, max_det=16), preds[None], 0.25, 0.3)
    assert int(shallow["num_dets"][0]) != len(decode_nms(preds, NC, 0.25, 0.3, 16).scores)
    assert int(shallow[OUT_LIMITS][0]) == NMS_UNCONVERGED
    assert int(exact[OUT_LIMITS][0]) == 0
    assert_rows_equal(exact, 0, preds, 0.25, 0.3, 16)


@pytest.mark.parametrize("label", sorted(GRAPHS))
def test_chains_of_every_length_are_flagged_exactly_when_too_deep(sessions: dict[str, ort.InferenceSession],
                                                                  label: str) -> None:
    """Chains of 1..20 boxes, one per image: bit 1 is set iff the chain needs more iterations
    than the graph has (per block: a chain across blocks is resolved by the block order)."""
    k, iters, max_det, block = GRAPHS[label]
    batch, deep = [], []
    for length in range(1, 21):
        boxes, scores = chain(length)
        batch.append(make_preds(boxes, scores, [0] * length))
        xyxy = np.array(boxes, np.float32)
        deep.append(nms_chain_depth(xyxy, np.array(scores, np.float32), np.zeros(length, np.int64), 0.3, block) > iters)
    got = run(sessions[label], np.stack(batch), 0.25, 0.3)
    flags = got[OUT_LIMITS].tolist()
    assert flags == [NMS_UNCONVERGED * d for d in deep]
    if block > iters:
        assert any(deep) and not all(deep), "the sweep must see both sides of the iteration limit"
    else:  # a block of 8 holds chains at most 7 deep: blocks alone resolve chains of any length
        assert not any(deep)
    for b, preds in enumerate(batch):
        if flags[b] == 0:
            assert_rows_equal(got, b, preds, 0.25, 0.3, max_det)


def straddling_pair(rng: np.random.Generator, t: float, above: bool, centre: tuple[float, float]) -> np.ndarray:
    """float32[2, 4] cx, cy, w, h: two same-size boxes side by side whose float32 IoU (as the
    graph and the reference decode and compute it) is the nearest one found above t, or at or
    below t: the threshold test then turns on the last bits. The second box moves by single
    ulps of its coordinates, sideways and down, around the shift that gives IoU == t."""
    w, h = rng.uniform(5, 120, 2).astype(np.float32)
    cx, cy = np.float32(centre[0]), np.float32(centre[1])
    bx = np.float32(cx + w * (1 - t) / (1 + t))  # IoU (w - s) / (w + s) == t
    xs = bx + np.arange(-32, 33, dtype=np.float32) * np.spacing(bx)
    ys = cy + np.arange(0, 32, dtype=np.float32) * np.spacing(cy)
    gx, gy = (g.ravel() for g in np.meshgrid(xs, ys))
    a = np.array([[cx, cy, w, h]], np.float32)
    b = np.stack([gx, gy, np.full_like(gx, w), np.full_like(gx, h)], 1).astype(np.float32)

    def xyxy(c: np.ndarray) -> np.ndarray:
        return np.concatenate([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], 1)

    ious = box_iou(xyxy(a), xyxy(b))[0]
    side = np.nonzero(ious > np.float32(t) if above else ious <= np.float32(t))[0]
    pick = side[np.argmin(ious[side])] if above else side[np.argmax(ious[side])]
    assert abs(float(ious[pick]) - t) < 1e-5, (t, ious[pick])
    return np.concatenate([a, b[pick : pick + 1]])


def random_image(rng: np.random.Generator, t: float) -> np.ndarray:
    """float32[4+NC, N]: 16..48 random boxes of one of three kinds, scores uniform in
    0.05..1 (some below conf), plus, apart from them, 4 pairs straddling the IoU threshold t.
    Kinds: torchvision's test_nms_ref boxes (corners anywhere in a 100 px square, random
    classes); YOLO-like, a few objects each found by many jittered anchors of its class; and
    one such object alone (a pile: few survive, so the candidate cap can matter)."""
    p = np.zeros((4 + NC, N), np.float32)
    p[0:4, :] = np.array([[5], [5], [2], [2]], np.float32)
    kind = int(rng.integers(0, 3))
    n = int(rng.integers(16, 49))
    if kind == 0:
        xy, wh, cls = rng.uniform(0, 100, (n, 2)), rng.uniform(1, 100, (n, 2)), rng.integers(0, NC, n)
    else:
        objs = int(rng.integers(1, 5)) if kind == 1 else 1
        centre, size = rng.uniform(20, 80, (objs, 2)), rng.uniform(10, 40, (objs, 2))
        o = rng.integers(0, objs, n)
        wh = size[o] * rng.uniform(0.7, 1.3, (n, 2))
        xy = centre[o] + rng.normal(0, 0.15, (n, 2)) * size[o] - wh / 2
        cls = rng.integers(0, NC, objs)[o]
    p[0:4, :n] = np.concatenate([xy + wh / 2, wh], 1).T
    p[4 + cls, np.arange(n)] = rng.uniform(0.05, 1.0, n)
    for j in range(4):
        pair = straddling_pair(rng, t, above=j % 2 == 0, centre=(300.0 + 200 * j, 300.0 + 100 * (j % 2)))
        cols = [n + 2 * j, n + 2 * j + 1]
        p[0:4, cols] = pair.T
        p[4 + j % NC, cols] = np.sort(rng.uniform(0.3, 1.0, 2))[::-1]
    return p


@pytest.mark.parametrize("label", sorted(GRAPHS))
@pytest.mark.parametrize("iou", [0.0, 0.2, 0.45, 0.5, 0.7, 0.9])
def test_seeded_sweep_exact_whenever_limits_are_clear(sessions: dict[str, ort.InferenceSession], label: str,
                                                      iou: float) -> None:
    """Seeds 0..4, 6 images each: nms_limits equals what the reference says the graph's limits
    are (bit for bit), and wherever it is 0 the rows equal greedy NMS over all candidates
    exactly; where only the cap was hit, they equal greedy NMS over the K best."""
    k, iters, max_det, block = GRAPHS[label]
    t = float(np.float32(iou))
    seen = {0: 0, NMS_CAPPED: 0, NMS_UNCONVERGED: 0}
    for seed in range(5):
        rng = np.random.default_rng(1000 * seed + int(iou * 100))
        batch = [random_image(rng, t) for _ in range(6)]
        got = run(sessions[label], np.stack(batch), 0.25, t)
        for b, preds in enumerate(batch):
            capped, unconverged = nms_limits_reached(preds, NC, 0.25, t, max_det, k, iters, block)
            flag = int(got[OUT_LIMITS][b])
            assert flag == NMS_CAPPED * capped + NMS_UNCONVERGED * unconverged, (seed, b)
            for bit in seen:
                seen[bit] += bool(flag & bit) if bit else flag == 0
            if flag == 0:
                assert_rows_equal(got, b, preds, 0.25, t, max_det)
            elif flag == NMS_CAPPED:
                assert_rows_equal(got, b, preds, 0.25, t, max_det, pre_nms_topk=k)
    print(f"{label}, IoU {iou}: images by flag {seen}")
    assert seen[0] >= 10, f"too few exact images to test: {seen}"
    if iou in (0.2, 0.45, 0.5):  # the seeds are fixed: these must meet the cap (piles)
        assert seen[NMS_CAPPED], f"the sweep should reach the candidate cap: {seen}"
    if label == "shallow" and iou in (0.45, 0.5):  # ... and run out of one iteration (jittered anchors)
        assert seen[NMS_UNCONVERGED], f"the sweep should run out of iterations: {seen}"


def test_cap_is_flagged_only_when_it_can_change_the_rows(session: ort.InferenceSession) -> None:
    """40 candidates for K = 32, max_det 16. Disjoint boxes: 16 survive among the 32 best, so
    the rows are exact and the flag clear. The 32 best all duplicates of one box: one survives,
    the 8 dropped might have been kept, so bit 0; the rows are then greedy NMS of the 32 best.
    Exactly 32 candidates: nothing dropped, nothing flagged."""
    disjoint = make_preds([[i * 12.0, 0, i * 12.0 + 10, 10] for i in range(40)], [0.9 - 0.01 * i for i in range(40)],
                          [0] * 40)
    piled = make_preds([[0.0, 0, 10, 10]] * 32 + [[i * 12.0 + 20, 0, i * 12.0 + 30, 10] for i in range(8)],
                       [0.9 - 0.01 * i for i in range(40)], [0] * 40)
    full = make_preds([[0.0, 0, 10, 10]] * 32, [0.9 - 0.01 * i for i in range(32)], [0] * 32)
    got = run(session, np.stack([disjoint, piled, full]), 0.25, 0.5)
    assert got[OUT_LIMITS].tolist() == [0, NMS_CAPPED, 0]
    assert_rows_equal(got, 0, disjoint, 0.25, 0.5, 16)
    assert int(got["num_dets"][1]) == 1 and len(decode_nms(piled, NC, 0.25, 0.5, 16).scores) == 9
    assert_rows_equal(got, 1, piled, 0.25, 0.5, 16, pre_nms_topk=32)
    assert_rows_equal(got, 2, full, 0.25, 0.5, 16)


def test_random_batches_match_reference_per_image(session: ort.InferenceSession) -> None:
    """Batch 3 of random clustered boxes: every image equals its own greedy reference."""
    rng = np.random.default_rng(0)
    batch = []
    for _ in range(3):
        centres = rng.uniform(10, 90, (6, 2))
        pick = rng.integers(0, 6, 24)
        xy = centres[pick] + rng.normal(0, 3, (24, 2))
        wh = rng.uniform(8, 20, (24, 2))
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).tolist()
        batch.append(make_preds(boxes, rng.uniform(0.3, 0.99, 24).tolist(), rng.integers(0, NC, 24).tolist()))
    got = run(session, np.stack(batch), 0.25, 0.45)
    for b, preds in enumerate(batch):
        assert int(got[OUT_LIMITS][b]) == 0
        assert_rows_equal(got, b, preds, 0.25, 0.45, 16)


def test_max_det_caps_and_mask_coeffs_follow_their_rows(tmp_path: Path) -> None:
    boxes = [[i * 20.0, 0, i * 20.0 + 10, 10] for i in range(10)]
    preds = make_preds(boxes, [0.9 - 0.01 * i for i in range(10)], [0] * 10, nm=2)
    got = run(export_post(tmp_path, topk=32, iters=4, max_det=4, nm=2), preds[None], 0.25, 0.5)
    assert int(got["num_dets"][0]) == 4 and int(got[OUT_LIMITS][0]) == 0
    # coefficient rows must come from the same anchors as the boxes (anchors 0..3)
    np.testing.assert_array_equal(got["mask_coeffs"][0, :, 0], preds[4 + NC, :4])


@pytest.fixture(scope="module")
def real_preds(seg_checkpoint: Path, vtest: Path) -> np.ndarray:
    """float32[4, 84, 8400]: yolo11n's box and class rows on 3 real vtest frames and on a
    640x640 mosaic of 20 vtest frames (about 200 pedestrians; benchmarks/bench_nms.py)."""
    from benchmarks.bench_nms import crowd_mosaic, yolo_preds
    from edgevision.sources import sample_frames

    frames, _ = sample_frames(vtest, 20)
    return yolo_preds(seg_checkpoint, [frames[3], frames[10], frames[17], crowd_mosaic(frames)])


def export_real(tmp: Path, preds: np.ndarray, max_det: int, topk: int, iters: int) -> ort.InferenceSession:
    """The post-processing alone for 80 classes, as export_yolo builds it, run by ONNX Runtime."""
    post = DetectPostprocess(80, 0, max_det, topk, iters).eval()
    path = tmp / f"real_{topk}_{iters}.onnx"
    names = [*NAMES, OUT_LIMITS]
    torch.onnx.export(post, (torch.from_numpy(preds[:2]), torch.tensor([0.25]), torch.tensor([0.7])), str(path),
                      opset_version=17, dynamo=False, input_names=["preds", "conf", "iou"], output_names=names,
                      dynamic_axes={"preds": {0: "b"}, **{n: {0: "b"} for n in names}})
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_defaults_are_exact_on_real_frames_and_a_crowd(real_preds: np.ndarray, tmp_path: Path) -> None:
    """The converter's defaults (ExportOptions) on the real model's predictions: 3 vtest frames
    and the crowd, at the default conf and IoU, and the crowd at conf 0.01 too (841 anchors
    pass; IoU 0.7 and 0.45): nms_limits is 0 and the rows are greedy NMS over all candidates,
    bit for bit. The former default K = 512 is too small there, and nms_limits says so."""
    from converters.families.ultralytics import YOLO_DEFAULTS

    opts = SimpleNamespace(**YOLO_DEFAULTS)
    crowd = real_preds[3]
    assert (crowd[4:].max(0) > 0.01).sum() > 800, "the crowd must pass hundreds of candidates at conf 0.01"
    session = export_real(tmp_path, real_preds, opts.max_det, opts.pre_nms_topk, opts.nms_iters)
    for preds, conf, iou in [(real_preds, opts.conf, opts.iou), (crowd[None], 0.01, opts.iou), (crowd[None], 0.01, 0.45)]:
        got = run(session, preds, conf, iou)
        assert got[OUT_LIMITS].tolist() == [0] * len(preds), (conf, iou)
        for b in range(len(preds)):
            assert int(got["num_dets"][b]) > 0
            assert_rows_equal(got, b, preds[b], conf, iou, opts.max_det, num_classes=80)
    old = run(export_real(tmp_path, real_preds, opts.max_det, 512, opts.nms_iters), crowd[None], 0.01, opts.iou)
    assert old[OUT_LIMITS].tolist() == [NMS_CAPPED]
    assert_rows_equal(old, 0, crowd, 0.01, opts.iou, opts.max_det, pre_nms_topk=512, num_classes=80)
