"""Tests of box scoring (Counting.detection.scoring)."""

import pytest

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import detection


def test_box_iou_by_hand():
    assert detection.box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert detection.box_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)
    # One shared column:
    assert detection.box_iou([0, 0, 4, 4], [4, 0, 8, 4]) == pytest.approx(5 / 45)
    assert detection.box_iou([0, 0, 4, 4], [5, 0, 9, 4]) == 0.0
    assert detection.box_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 1.0


def test_greedy_matching_and_scores_by_hand():
    truth = [[0, 0, 9, 9], [20, 0, 29, 9]]
    predicted = [[0, 0, 9, 7],     # IoU 0.8 with truth 0
                 [0, 0, 9, 8],     # IoU 0.9 with truth 0: matched first
                 [20, 0, 29, 4],   # IoU 0.5 with truth 1: just enough
                 [50, 50, 60, 60]]
    matches = detection.match_boxes(predicted, truth)
    assert [(i, j) for i, j, _ in matches] == [(1, 0), (2, 1)]
    score = detection.score_boxes(predicted, truth)
    assert score['matched'] == 2 and score['predicted'] == 4 and score['truth'] == 2
    assert score['precision'] == 0.5 and score['recall'] == 1.0
    assert score['mean_iou'] == pytest.approx(0.7)
    strict = detection.score_boxes(predicted, truth, iou_threshold=0.85)
    assert strict['matched'] == 1 and strict['mean_iou'] == pytest.approx(0.9)
    empty = detection.score_boxes([], truth)
    assert empty['precision'] is None and empty['recall'] == 0.0 and empty['mean_iou'] is None
    pooled = detection.combine_scores([score, detection.score_boxes([], [[0, 0, 1, 1]] * 3)])
    assert pooled['precision'] == 0.5 and pooled['recall'] == pytest.approx(2 / 5)
    assert pooled['mean_iou'] == pytest.approx(0.7) and pooled['images'] == 2


def test_per_type_recall_and_type_accuracy_by_hand():
    truth = [[0, 0, 9, 9], [20, 0, 29, 9], [40, 0, 49, 9]]
    kinds = ['tri', 'sq', 'sq']
    predicted = [[0, 0, 9, 8], [20, 0, 29, 9], [60, 60, 70, 70]]
    s = detection.score_boxes(predicted, truth, predicted_types=['sq', 'sq', 'tri'],
                              truth_types=kinds)
    # matched: predicted 0 -> tri shape (type wrong), predicted 1 -> first sq (type right)
    assert s['truth_by_type'] == {'tri': 1, 'sq': 2}
    assert s['matched_by_type'] == {'tri': 1, 'sq': 1}
    assert s['recall_by_type'] == {'tri': 1.0, 'sq': 0.5}
    assert s['type_right'] == 1 and s['type_accuracy'] == 0.5
    untyped = detection.score_boxes(predicted, truth, truth_types=kinds)
    assert untyped['recall_by_type'] == s['recall_by_type'] and 'type_accuracy' not in untyped
    other = detection.score_boxes([[40, 0, 49, 9]], [[40, 0, 49, 9]], predicted_types=['sq'],
                                  truth_types=['sq'])
    pooled = detection.combine_scores([s, other])
    assert pooled['recall_by_type'] == {'tri': 1.0, 'sq': pytest.approx(2 / 3)}
    assert pooled['type_accuracy'] == pytest.approx(2 / 3)
    assert detection.matched_flags(predicted, truth) == ([True, True, False],
                                                          [True, True, False])
    with pytest.raises(ValueError):
        detection.score_boxes(predicted, truth, truth_types=['tri'])
