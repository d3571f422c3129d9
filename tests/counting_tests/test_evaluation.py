"""Tests of Counting.evaluation: the metrics against hand-computed values, the baseline and
the predictions."""
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Counting import evaluation
from Counting import models


def test_count_metrics_hand_computed():
    truth = [0, 1, 2, 3, 4]
    pred = [0.4, 1.6, 2.0, 5.0, 3.5]
    m = evaluation.count_metrics(pred, truth)
    # |errors| = .4 .6 0 2 .5 -> mean 0.7; squares .16 .36 0 4 .25 -> mean 0.954
    assert m['mae'] == pytest.approx(0.7)
    assert m['rmse'] == pytest.approx(numpy.sqrt(0.954))
    # rounded: 0 2 2 5 4 (3.5 rounds half up) -> exact at 0, 2, 4; off by one at 1; 3 is off by 2
    assert m['exact'] == pytest.approx(3 / 5)
    assert m['off_by_one'] == pytest.approx(1 / 5)
    assert m['n'] == 5


def test_count_metrics_errors():
    with pytest.raises(ValueError):
        evaluation.count_metrics([1, 2], [1])
    with pytest.raises(ValueError):
        evaluation.count_metrics([], [])


def test_baseline_and_ratio():
    truth = numpy.array([[0, 4], [2, 4], [4, 4]], numpy.float32)
    pred = numpy.array([[0, 4], [2, 5], [3, 4]], numpy.float32)
    result = evaluation.evaluate_predictions(pred, truth, ['tri', 'sq'], numpy.array([2.0, 3.0]))
    # Baseline for tri predicts 2 everywhere: errors 2, 0, 2 -> MAE 4/3; ours: 0, 0, 1 -> 1/3.
    assert result['tri']['baseline']['mae'] == pytest.approx(4 / 3)
    assert result['tri']['ours']['mae'] == pytest.approx(1 / 3)
    assert result['tri']['mae_ratio'] == pytest.approx(4.0)
    assert result['sq']['baseline']['exact'] == 0.0
    assert result['sq']['baseline']['off_by_one'] == 1.0
    assert result['sq']['baseline_prediction'] == 3.0


def test_mean_counts(tmp_path):
    truths = {'0.png': {'tri': 1, 'sq': 0}, '1.png': {'tri': 3, 'sq': 5}}
    (tmp_path / 'truths.json').write_text(json.dumps(truths))
    numpy.testing.assert_allclose(evaluation.mean_counts(str(tmp_path), ['tri', 'sq']), [2, 2.5])
    numpy.testing.assert_allclose(evaluation.mean_counts(str(tmp_path), ['sq']), [2.5])
    with pytest.raises(ValueError, match='does not exist'):
        evaluation.mean_counts(str(tmp_path / 'none'), ['tri'])


def test_scatter_plot_writes_png(tmp_path):
    path = str(tmp_path / 'scatter.png')
    truth = numpy.array([[0, 1], [2, 3]], numpy.float32)
    evaluation.scatter_plot(truth + 0.3, truth, ['tri', 'sq'], path, 'title')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert [p for p in os.listdir(str(tmp_path))] == ['scatter.png']  # no temporary left


def test_predict_matches_forward():
    model = models.build_counter('convolutional', 'relu')
    x = numpy.random.RandomState(0).randint(0, 256, (5, 3, 90, 90)).astype(numpy.float32)
    dataset = chainer.datasets.TupleDataset(x, numpy.zeros((5, 2), numpy.float32))
    pred = evaluation.predict(model, dataset, batchsize=2)
    with chainer.using_config('train', False):
        numpy.testing.assert_allclose(pred, model(x).array, rtol=1e-5, atol=1e-5)
