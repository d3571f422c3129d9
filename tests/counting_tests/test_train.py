import json
import os
import re

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Counting import models
from Counting.datasets import generate_dataset
from Counting import train
from lenses_common import cli
from lenses_common.training import EpochSeededOrder


@pytest.fixture(scope='module')
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('counting_data')
    train_dir, test_dir = str(root / 'train'), str(root / 'test')
    generate_dataset(train_dir, 12, image_size=(100, 100), scale=(12, 16),
                              shape_limit=4, seed=0, workers=1, progress=False)
    generate_dataset(test_dir, 4, image_size=(100, 100), scale=(12, 16),
                              shape_limit=4, seed=1, workers=1, progress=False)
    return train_dir, test_dir


def _log(out):
    with open(os.path.join(out, 'log')) as f:
        return json.load(f)


def _args(train_dir, out, *extra):
    return ['--train', train_dir, '--out', out, '--batchsize', '4', '--no-progress',
            '--device', '@numpy', '--workers', '1'] + list(extra)


def test_train_writes_run_folder_and_steps_lr(tiny_sets, tmp_path):
    train_dir, test_dir = tiny_sets
    out = str(tmp_path / 'run')
    assert train.main(_args(train_dir, out, '--test', test_dir, '--epoch', '3', '--lr', '1e-4',
                            '--snapshot-interval', '1')) == 0
    files = set(os.listdir(out))
    assert {'settings.json', 'command.txt', 'log', 'model_final.npz', 'loss.png',
            'mae.png'} <= files
    assert {'snapshot_epoch_2', 'snapshot_epoch_3'} <= files  # one per epoch, two kept
    log = _log(out)
    assert [e['epoch'] for e in log] == [1, 2, 3]
    assert all('validation/main/loss' in e for e in log)
    # 3 iterations per epoch, 9 in all: x0.1 after iterations 3 and 6 (each a third of the run);
    # the log reads the lr at the end of each epoch, before that iteration's shift.
    numpy.testing.assert_allclose([e['lr'] for e in log], [1e-4, 1e-5, 1e-6])
    with open(os.path.join(out, 'settings.json')) as f:
        settings = json.load(f)
    assert settings['types'] == ['tri', 'sq'] and settings['image_size'] == [100, 100]
    assert settings['n_train'] == 12
    model, _ = models.load_counter(out)
    assert model.fc.W.shape == (2, 10)  # 100 -> 19 -> 3 -> 1: a 10 x 1 x 1 map


def test_train_is_repeatable_with_seed(tiny_sets, tmp_path):
    train_dir, _ = tiny_sets
    weights = []
    for name in ('a', 'b'):
        out = str(tmp_path / name)
        train.main(_args(train_dir, out, '--epoch', '1', '--lr', '1e-4', '--seed', '3'))
        model, _ = models.load_counter(out)
        weights.append(model.conv1.W.array.copy())
    numpy.testing.assert_array_equal(weights[0], weights[1])


def test_resume_continues_and_restores_renorm_schedule(tiny_sets, tmp_path):
    train_dir, _ = tiny_sets
    out = str(tmp_path / 'brn')
    common = ['--activation', 'sigmoid', '--batch-renorm', '--lr', '1e-3',
              '--snapshot-interval', '1', '--renorm-threshold', '1e9']
    assert train.main(_args(train_dir, out, '--epoch', '1', *common)) == 0
    snapshot = train.latest_snapshot(out)
    assert snapshot.endswith('snapshot_epoch_1')
    # The threshold is huge, so the schedule started at once and its state is in the snapshot.
    with numpy.load(snapshot) as npz:
        assert int(npz['extensions/renorm_schedule/stage']) == 1
    # --resume alone is --resume auto: the newest snapshot_epoch_N in --out.
    assert train.main(_args(train_dir, out, '--epoch', '2', *common, '--resume')) == 0
    log = _log(out)
    assert [e['iteration'] for e in log] == [3, 6]
    with open(os.path.join(out, 'command.txt')) as f:
        assert f.read().count('Counting.train') == 2


def test_interrupted_run_resumes_to_the_same_weights(tiny_sets, tmp_path):
    train_dir, _ = tiny_sets
    common = ['--epoch', '3', '--lr', '1e-3', '--optimizer', 'rmsprop', '--snapshot-interval', '1',
              '--seed', '1']
    whole = str(tmp_path / 'whole')
    assert train.main(_args(train_dir, whole, *common)) == 0
    # "Interrupt" a second run after its second epoch: keep only that snapshot (the two newest
    # are kept), then resume.
    part = str(tmp_path / 'part')
    assert train.main(_args(train_dir, part, *common)) == 0
    for name in os.listdir(part):
        if name.startswith('snapshot_epoch_') and name != 'snapshot_epoch_2' or \
                name == 'model_final.npz':
            os.remove(os.path.join(part, name))
    assert train.latest_snapshot(part).endswith('snapshot_epoch_2')
    assert train.main(_args(train_dir, part, *common, '--resume', 'auto')) == 0
    a, _ = models.load_counter(whole)
    b, _ = models.load_counter(part)
    for (name, pa), (_, pb) in zip(sorted(a.namedparams()), sorted(b.namedparams())):
        numpy.testing.assert_array_equal(pa.array, pb.array, err_msg=name)


def test_epoch_order_sampler():
    sampler = EpochSeededOrder(5)
    first = sampler(numpy.arange(10), 0)
    assert sorted(first) == list(range(10))
    numpy.testing.assert_array_equal(first, EpochSeededOrder(5)(numpy.arange(10), 0))
    assert not numpy.array_equal(first, EpochSeededOrder(6)(numpy.arange(10), 0))


def test_diverging_lr_is_reported(tiny_sets, tmp_path, capsys):
    train_dir, _ = tiny_sets
    out = str(tmp_path / 'nan')
    # Sigmoid hidden units cannot die, so with this seed a step of 1e30 makes the outputs, and
    # the loss, overflow float32 at the second iteration: the run must stop there, with status 3,
    # and save no model. Without the check it would run on and save NaN weights with status 0.
    code = train.main(_args(train_dir, out, '--epoch', '1', '--lr', '1e30', '--optimizer', 'sgd',
                            '--activation', 'sigmoid', '--seed', '0'))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_NONFINITE == 3
    assert len(err) == 1 and 'Traceback' not in err[0]
    assert err[0].partition('error: ')[2].startswith(
        'non-finite main/loss (inf) in epoch 1, iteration 2: '
        'training stopped; no snapshot yet; no model_final.npz written')
    assert not os.path.exists(os.path.join(out, 'model_final.npz'))


def test_non_finite_stop_keeps_the_last_good_snapshot(tiny_sets, tmp_path, capsys, monkeypatch):
    # A NaN loss forced at the 5th training batch (3 batches an epoch: epoch 2): the run stops
    # there with status 3; epoch 1's snapshot stays, with finite weights; no model_final.npz.
    train_dir, _ = tiny_sets
    plain = models.CountingLoss.forward
    calls = {'n': 0}

    def poisoned(self, x, t):
        loss = plain(self, x, t)
        calls['n'] += 1
        return loss * float('nan') if calls['n'] == 5 else loss

    monkeypatch.setattr(models.CountingLoss, 'forward', poisoned)
    out = str(tmp_path / 'nan')
    code = train.main(_args(train_dir, out, '--epoch', '3', '--lr', '1e-4',
                            '--snapshot-interval', '1'))
    err = capsys.readouterr().err.strip().splitlines()
    snapshot = os.path.join(out, 'snapshot_epoch_1')
    assert code == 3 and len(err) == 1
    # the loss was reported before it was poisoned: the NaN shows in the gradients
    assert re.search(r': error: non-finite gradient of predictor/\S+ in epoch 2, iteration 5: '
                    r'training stopped; last good snapshot {}; no model_final.npz written'.format(
                        re.escape(snapshot)), err[0]), err[0]
    assert sorted(f for f in os.listdir(out) if f.startswith('snapshot')) == ['snapshot_epoch_1']
    assert not os.path.exists(os.path.join(out, 'model_final.npz'))
    with numpy.load(snapshot) as npz:
        weights = [npz[k] for k in npz.files if k.startswith('updater/model:main/')]
    assert weights and all(numpy.isfinite(w).all() for w in weights)


def test_one_type(tiny_sets, tmp_path):
    train_dir, _ = tiny_sets
    out = str(tmp_path / 'sq')
    assert train.main(_args(train_dir, out, '--epoch', '1', '--lr', '1e-4', '--types', 'sq')) == 0
    model, settings = models.load_counter(out)
    assert settings['types'] == ['sq'] and model.fc.W.shape[0] == 1


def test_bad_options_are_one_line_errors(tiny_sets, tmp_path, capsys):
    train_dir, _ = tiny_sets
    cases = [
        (['--train', str(tmp_path / 'none'), '--out', str(tmp_path / 'x')], 'none'),
        (_args(train_dir, str(tmp_path / 'x'), '--types', 'circle'), 'circle'),
        (_args(train_dir, str(tmp_path / 'x'), '--arch', 'convolutionallarge'), 'too small'),
        (_args(train_dir, str(tmp_path / 'x'), '--resume', str(tmp_path / 'nosnap')),
         'no such snapshot'),
        (_args(train_dir, str(tmp_path / 'x'), '--lr', '-1'), '--lr'),
        (_args(train_dir, str(tmp_path / 'x'), '--activation', 'modsoftplus', '--base', '1'),
         '--base'),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as e:
            train.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert needle in err, err
        assert 'Traceback' not in err


def test_optimizers():
    assert isinstance(train.make_optimizer('momentum', 0.07, 0.85), chainer.optimizers.MomentumSGD)
    assert train.make_optimizer('momentum', 0.07, 0.85).momentum == 0.85
    assert isinstance(train.make_optimizer('rmsprop', 0.01, 0), chainer.optimizers.RMSprop)
    assert isinstance(train.make_optimizer('sgd', 0.01, 0), chainer.optimizers.SGD)


def test_author_defaults_and_chainer_softplus(tiny_sets, tmp_path):
    args = train.build_parser().parse_args(['--train', 'x'])
    assert args.optimizer == 'sgd' and args.lr == 0.07 and args.softplus == 'stable'
    train_dir, _ = tiny_sets
    out = str(tmp_path / 'chainer_softplus')
    assert train.main(_args(train_dir, out, '--epoch', '1', '--lr', '1e-6', '--activation',
                            'softplus', '--softplus', 'chainer')) == 0
    model, settings = models.load_counter(out)
    assert settings['softplus'] == 'chainer' and settings['optimizer'] == 'sgd'
    assert model.activation_fn is chainer.functions.softplus
