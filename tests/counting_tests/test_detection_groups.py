"""Tests of the groups and thresholds shared by the methods (Counting.detection.groups)."""

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import detection


def test_auto_threshold_rules_by_hand():
    importance = numpy.array([[0.0, 1.0, 2.0], [4.0, 8.0, 10.0]], numpy.float32)
    free = numpy.array([[True, True, True], [True, False, True]])
    assert detection.auto_threshold(importance, free, 'fraction', 0.25) == 2.5
    assert detection.auto_threshold(importance, free, 'fraction') == pytest.approx(0.03)
    # Non-zero free values 1, 2, 4, 10: their median is 3.
    assert detection.auto_threshold(importance, free, 'quantile', 0.5) == 3.0
    assert detection.auto_threshold(importance, free, 'quantile') == 3.0  # default level 0.5
    # logsplit (the default rule): 2-means of log10 1, 2, 4, 10 gives the clusters {1, 2} and
    # {4, 10}, centred on log10 sqrt(2) and log10 sqrt(40); the cut is level of the way between.
    assert detection.auto_threshold(importance, free) == pytest.approx(80 ** 0.25)
    assert detection.auto_threshold(importance, free, 'logsplit', 0.0) == pytest.approx(2 ** 0.5)
    assert detection.auto_threshold(importance, free, 'logsplit', 1.0) == pytest.approx(40 ** 0.5)
    one = numpy.full((2, 2), 7.0)
    assert detection.auto_threshold(one, numpy.ones((2, 2), bool), 'logsplit') == 7.0
    assert detection.auto_threshold(numpy.zeros((2, 2)), numpy.ones((2, 2), bool)) == numpy.inf
    with pytest.raises(ValueError, match='rule'):
        detection.auto_threshold(importance, free, 'otsu')
    with pytest.raises(ValueError, match='level'):
        detection.auto_threshold(importance, free, 'fraction', 1.5)
