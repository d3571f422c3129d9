"""Tests of the evaluation command line (Counting.evaluate)."""
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Counting import evaluate
from Counting import models
from Counting.datasets import generate_dataset


def _tiny_dataset(folder, count, seed):
    generate_dataset(folder, count, image_size=(100, 100), scale=(12, 16),
                              shape_limit=4, seed=seed, workers=1, progress=False)


def test_evaluate_cli(helpers, tmp_path, capsys):
    train_dir, test_dir = str(tmp_path / 'train'), str(tmp_path / 'test')
    _tiny_dataset(train_dir, 6, 0)
    _tiny_dataset(test_dir, 5, 1)
    run = str(tmp_path / 'run')
    model = models.build_counter('convolutional', 'relu')
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3, 100, 100), numpy.float32))
    helpers.write_run(run, {'arch': 'convolutional', 'activation': 'relu', 'base': 1.1,
                            'batch_renorm': False, 'types': ['tri', 'sq'],
                            'image_size': [100, 100], 'softplus': 'stable', 'train': train_dir},
                      model)
    assert evaluate.main(['--run', run, '--test', test_dir, '--device', '@numpy']) == 0
    out = os.path.join(run, 'eval')
    assert sorted(n for n in os.listdir(out) if not n.startswith('.')) == [
        'metrics.json', 'metrics.md', 'scatter.png']
    with open(os.path.join(out, 'metrics.json')) as f:
        result = json.load(f)
    with open(os.path.join(train_dir, 'truths.json')) as f:
        truths = json.load(f)
    expected_mean = numpy.mean([v['tri'] for v in truths.values()])
    assert result['metrics']['tri']['baseline_prediction'] == pytest.approx(expected_mean)
    assert result['n_test'] == 5
    assert 'baseline MAE' in capsys.readouterr().out

    # Errors are one line through argparse (exit 2), naming what is wrong.
    with pytest.raises(SystemExit) as e:
        evaluate.main(['--run', str(tmp_path / 'missing'), '--test', test_dir])
    assert e.value.code == 2
    assert 'does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(['--run', run, '--test', str(tmp_path / 'nothing')])
    assert 'nothing' in capsys.readouterr().err
