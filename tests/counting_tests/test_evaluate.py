import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Counting import evaluate
from Counting import models
from lenses_common.runfolder import save_npz


def test_count_metrics_hand_computed():
    truth = [0, 1, 2, 3, 4]
    pred = [0.4, 1.6, 2.0, 5.0, 3.5]
    m = evaluate.count_metrics(pred, truth)
    # |errors| = .4 .6 0 2 .5 -> mean 0.7; squares .16 .36 0 4 .25 -> mean 0.954
    assert m['mae'] == pytest.approx(0.7)
    assert m['rmse'] == pytest.approx(numpy.sqrt(0.954))
    # rounded: 0 2 2 5 4 (3.5 rounds half up) -> exact at 0, 2, 4; off by one at 1; 3 is off by 2
    assert m['exact'] == pytest.approx(3 / 5)
    assert m['off_by_one'] == pytest.approx(1 / 5)
    assert m['n'] == 5


def test_count_metrics_errors():
    with pytest.raises(ValueError):
        evaluate.count_metrics([1, 2], [1])
    with pytest.raises(ValueError):
        evaluate.count_metrics([], [])


def test_baseline_and_ratio():
    truth = numpy.array([[0, 4], [2, 4], [4, 4]], numpy.float32)
    pred = numpy.array([[0, 4], [2, 5], [3, 4]], numpy.float32)
    result = evaluate.evaluate_predictions(pred, truth, ['tri', 'sq'], numpy.array([2.0, 3.0]))
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
    numpy.testing.assert_allclose(evaluate.mean_counts(str(tmp_path), ['tri', 'sq']), [2, 2.5])
    numpy.testing.assert_allclose(evaluate.mean_counts(str(tmp_path), ['sq']), [2.5])
    with pytest.raises(ValueError, match='does not exist'):
        evaluate.mean_counts(str(tmp_path / 'none'), ['tri'])


def test_scatter_plot_writes_png(tmp_path):
    path = str(tmp_path / 'scatter.png')
    truth = numpy.array([[0, 1], [2, 3]], numpy.float32)
    evaluate.scatter_plot(truth + 0.3, truth, ['tri', 'sq'], path, 'title')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert [p for p in os.listdir(str(tmp_path))] == ['scatter.png']  # no temporary left


def test_predict_matches_forward():
    model = models.build_counter('convolutional', 'relu')
    x = numpy.random.RandomState(0).randint(0, 256, (5, 3, 90, 90)).astype(numpy.float32)
    dataset = chainer.datasets.TupleDataset(x, numpy.zeros((5, 2), numpy.float32))
    pred = evaluate.predict(model, dataset, batchsize=2)
    with chainer.using_config('train', False):
        numpy.testing.assert_allclose(pred, model(x).array, rtol=1e-5, atol=1e-5)


def _tiny_dataset(folder, count, seed):
    generate = pytest.importorskip('Counting.generate')
    generate.generate_dataset(folder, count, image_size=(100, 100), scale=(12, 16),
                              shape_limit=4, seed=seed, workers=1, progress=False)


def test_evaluate_cli(tmp_path, capsys):
    train_dir, test_dir = str(tmp_path / 'train'), str(tmp_path / 'test')
    _tiny_dataset(train_dir, 6, 0)
    _tiny_dataset(test_dir, 5, 1)
    run = str(tmp_path / 'run')
    model = models.build_counter('convolutional', 'relu')
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3, 100, 100), numpy.float32))
    os.makedirs(run)
    with open(os.path.join(run, 'settings.json'), 'w') as f:
        json.dump({'arch': 'convolutional', 'activation': 'relu', 'base': 1.1,
                   'batch_renorm': False, 'types': ['tri', 'sq'], 'image_size': [100, 100],
                   'train': train_dir}, f)
    save_npz(os.path.join(run, 'model.npz'), model)
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
