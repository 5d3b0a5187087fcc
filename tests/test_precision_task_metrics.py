"""The gate's measures for classifiers and class maps, and the budget that judges them, on
results built to sit on the edges (ties, dropped classes, empty maps). Fast: no model."""
from __future__ import annotations

import numpy as np
import pytest

from converters.precision.budget import parse_budget
from converters.precision.task_metrics import (
    classify_loss, compare_classify, compare_semantic, prob_diffs, semantic_loss,
)
from edgevision.results import Classification, ClassMap


def _cls(ids: list[int], probs: list[float]) -> Classification:
    return Classification(np.array(ids), np.array(probs, np.float32))


@pytest.mark.parametrize(
    "cand, ref, diffs",
    [
        (([3, 1, 2], [0.5, 0.3, 0.1]), ([3, 1, 2], [0.5, 0.3, 0.1]), [0.0, 0.0, 0.0]),
        (([1, 3, 2], [0.45, 0.35, 0.1]), ([3, 1, 2], [0.5, 0.3, 0.1]), [0.15, 0.15, 0.0]),
        # class 2 left the candidate's top-3: taken at the candidate's 3rd probability (0.08)
        (([3, 1, 7], [0.5, 0.3, 0.08]), ([3, 1, 2], [0.5, 0.3, 0.1]), [0.0, 0.0, 0.02]),
    ],
)
def test_prob_diffs_follow_classes_not_ranks(cand: tuple, ref: tuple, diffs: list[float]) -> None:
    assert np.allclose(prob_diffs(_cls(*cand), _cls(*ref)), diffs, atol=1e-6)


def test_classify_agreement_and_budget() -> None:
    ref = [_cls([3, 1, 2], [0.5, 0.3, 0.1]), _cls([0, 1, 2], [0.6, 0.2, 0.1])] * 25
    same = compare_classify(ref, ref)
    assert same.top1_agreement == 1.0 and same.max_prob_diff == 0.0 and same.reference_classes == 2
    assert parse_budget(None, "int8", "classify").passes(same) and classify_loss(ref, ref) == 0.0
    flipped = list(ref)
    flipped[0] = _cls([1, 3, 2], [0.45, 0.35, 0.1])  # one frame in 50 changes its top-1
    ev = compare_classify(flipped, ref)
    assert ev.top1_agreement == pytest.approx(0.98) and ev.max_prob_diff == pytest.approx(0.15, abs=1e-6)
    assert ev.topk_agreement == 1.0  # same set of classes, other order
    int8 = parse_budget(None, "int8", "classify")
    assert int8.failures(ev) == ["top-3 probability difference 0.1500 > 0.05"]
    assert parse_budget("0.98,0.2", "int8", "classify").passes(ev)
    assert not parse_budget("0.99,0.2", "int8", "classify").passes(ev)
    assert classify_loss(flipped, ref) > 0


def test_semantic_agreement_miou_and_budget() -> None:
    ref_map = np.zeros((40, 50), np.int32)
    ref_map[10:30, 10:30] = 15  # a person, 400 pixels
    ref_map[0:5, 0:5] = 7  # 25 pixels: too few to enter the mIoU mean
    ref = [ClassMap(ref_map, tuple(f"c{i}" for i in range(21)))]
    same = compare_semantic(ref, ref)
    assert same.pixel_agreement == 1.0 and same.miou == 1.0 and same.per_class["c7"] == (25, 1.0)
    cand_map = ref_map.copy()
    cand_map[10:30, 28:30] = 0  # the person loses a 2-pixel column strip: 40 of 2000 pixels
    cand_map[0:5, 0:5] = 0  # the small class vanishes: in per_class, not in the mean
    ev = compare_semantic([ClassMap(cand_map, ref[0].class_names)], ref)
    assert ev.pixel_agreement == pytest.approx(1 - 65 / 2000)
    person = 360 / 400
    background = (2000 - 425) / (2000 - 425 + 65)
    assert ev.miou == pytest.approx((person + background) / 2) and ev.min_class_iou == pytest.approx(person)
    assert ev.per_class["c7"] == (25, 0.0)
    assert semantic_loss([ClassMap(cand_map)], ref) == pytest.approx(65 / 2000)
    assert parse_budget(None, "int8", "semantic").failures(ev) == [f"pixel agreement {ev.pixel_agreement:.4f} < 0.98"]
    assert parse_budget("0.96,0.9", "int8", "semantic").passes(ev)
