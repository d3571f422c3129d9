"""Tests of the groups and thresholds shared by the methods (Counting.detection.groups)."""

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import detection


def test_auto_threshold_rules_by_hand():
    importance = numpy.array([[0.0, 1.0, 2.0], [4.0, 8.0, 10.0]], numpy.float32)
    free = numpy.array([[True, True, True], [True, False, True]])
    assert detection.auto_threshold(importance, free, 'fraction', 0.25) == 2.5
    assert detection.auto_threshold(importance, free, 'fraction') == 1.0  # default level 0.1
    assert detection.auto_threshold(importance, free) == 3.0  # default: the median of 1, 2, 4, 10
    # Non-zero free values 1, 2, 4, 10: their median is 3.
    assert detection.auto_threshold(importance, free, 'quantile', 0.5) == 3.0
    assert detection.auto_threshold(numpy.zeros((2, 2)), numpy.ones((2, 2), bool)) == numpy.inf
    with pytest.raises(ValueError, match='rule'):
        detection.auto_threshold(importance, free, 'otsu')
    with pytest.raises(ValueError, match='level'):
        detection.auto_threshold(importance, free, 'fraction', 1.5)
