import json

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Friendly import models
from Friendly import train
from lenses_common import cli
from Friendly import runs
from Friendly import train_args
from Friendly import trainer
from lenses_common import training


def test_split_is_4200_55800_disjoint_and_seeded():
    data = chainer.datasets.TupleDataset(numpy.arange(60000), numpy.arange(60000))
    tr, val = trainer.split_mnist(data, seed=3)
    assert (len(tr), len(val)) == (55800, 4200)
    ids_val = {val[i][0] for i in range(len(val))}
    ids_tr = {tr[i][0] for i in range(0, len(tr), 7)}
    assert not ids_val & ids_tr
    tr2, val2 = trainer.split_mnist(data, seed=3)
    assert [val2[i][0] for i in range(50)] == [val[i][0] for i in range(50)]
    _, val3 = trainer.split_mnist(data, seed=4)
    assert [val3[i][0] for i in range(50)] != [val[i][0] for i in range(50)]
    tr4, val4 = trainer.split_mnist(data, seed=3, train_subset=100, val_subset=30)
    assert (len(tr4), len(val4)) == (100, 30)
    assert tr4[5][0] == tr[5][0]


def _error(capsys, argv, main=train.main):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(err)
    return err[-1]


def test_unknown_variant_is_one_line_error(capsys, tmp_path):
    msg = _error(capsys, ['--variant', 'ZZ', '--out', str(tmp_path)])
    assert "unknown variant 'ZZ'" in msg and 'S, RS, A, GMR, GMRES, PD' in msg


def test_bad_numbers_are_errors(capsys, tmp_path):
    assert '--batchsize' in _error(capsys, ['--variant', 'S', '--out', str(tmp_path),
                                            '--batchsize', '0'])
    assert '--lr' in _error(capsys, ['--variant', 'S', '--out', str(tmp_path), '--lr', '-1'])


def test_resume_without_snapshot_is_error(capsys, tmp_path):
    msg = _error(capsys, ['--variant', 'S', '--out', str(tmp_path), '--resume'])
    assert 'no snapshot' in msg and str(tmp_path) in msg


def _tiny(out, variant='S', seed=0, epoch=2, extra=()):
    return ['--variant', variant, '--seed', str(seed), '--out', str(out), '--epoch', str(epoch),
            '--train-subset', '200', '--val-subset', '200', '--no-progress'] + list(extra)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp('runs') / 'S'
    summary = train.main(_tiny(out, epoch=1, extra=['--mnist-dir', mnist_dir]))
    return out, summary


def test_training_writes_run_folder(tiny_run):
    out, summary = tiny_run
    for name in ('settings.json', 'command.txt', 'log', 'model_final.npz', 'model_best.npz',
                 'summary.json', 'loss.png', 'accuracy.png', 'snapshot_epoch_1'):
        assert (out / name).exists(), name
    settings = json.loads((out / 'settings.json').read_text())
    assert settings['variant'] == 'S' and settings['lr'] == 0.002
    assert settings['momentum'] == 0.85 and settings['batchsize'] == 20
    assert summary['iterations'] == 10 and summary['epochs_run'] == 1
    log = json.loads((out / 'log').read_text())
    assert log[-1]['epoch'] == 1 and 'validation/main/accuracy' in log[-1]
    model, loaded = runs.load_run(str(out))
    assert isinstance(model, models.FC100) and loaded['variant'] == 'S'


def test_resume_continues_from_snapshot(tiny_run, mnist_dir, tmp_path, capsys):
    out, _ = tiny_run
    # copy the folder so the module fixture stays untouched
    import shutil
    copy = tmp_path / 'S'
    shutil.copytree(out, copy)
    before = numpy.load(str(copy / 'model_final.npz'))['l1/W']
    summary = train.main(_tiny(copy, epoch=2, extra=['--resume', '--mnist-dir', mnist_dir]))
    assert summary['iterations'] == 20 and summary['epochs_run'] == 2
    log = json.loads((copy / 'log').read_text())
    assert [entry['epoch'] for entry in log] == [1, 2]
    after = numpy.load(str(copy / 'model_final.npz'))['l1/W']
    assert not numpy.array_equal(before, after)
    assert (copy / 'snapshot_epoch_2').exists() and not (copy / 'snapshot_epoch_1').exists()
    assert (copy / 'command.txt').read_text().count('--variant') == 2
    # resuming as another network is refused
    msg = _error(capsys, _tiny(copy, variant='RS', extra=['--resume', '--mnist-dir', mnist_dir]))
    assert 'belongs to another network' in msg and 'variant' in msg


def test_resumed_run_matches_uninterrupted(mnist_dir, tmp_path):
    straight = tmp_path / 'straight'
    train.main(['--variant', 'RS', '--out', str(straight), '--epoch', '3', '--train-subset', '50',
                '--val-subset', '200', '--no-progress', '--mnist-dir', mnist_dir])
    split = tmp_path / 'split'
    common = ['--variant', 'RS', '--out', str(split), '--train-subset', '50', '--val-subset',
              '200', '--no-progress', '--mnist-dir', mnist_dir]
    # interrupted after epoch 2: a sampler drawing from the global generator would give
    # epoch 3 another order than the uninterrupted run
    train.main(common + ['--epoch', '2'])
    train.main(common + ['--epoch', '3', '--resume'])
    a = numpy.load(str(straight / 'model_final.npz'))
    b = numpy.load(str(split / 'model_final.npz'))
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        numpy.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_epoch_order_depends_on_seed_and_epoch_only():
    order = training.EpochSeededOrder(5)
    it = chainer.iterators.SerialIterator(list(range(7)), 7, order_sampler=order)
    order.iterator = it
    epochs = [sorted(it.next()) == list(range(7)) for _ in range(3)]
    assert all(epochs)
    first = list(numpy.random.RandomState([5, 0]).permutation(7))
    it2 = chainer.iterators.SerialIterator(list(range(7)), 7,
                                           order_sampler=training.EpochSeededOrder(5))
    assert it2.next() == first
    assert list(numpy.random.RandomState([5, 1]).permutation(7)) != first


def test_load_run_errors(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(ValueError, match='does not exist'):
        runs.load_run(str(tmp_path))
    # settings of another network (RS) beside the S model: refused, not silently half-loaded
    import shutil
    other = tmp_path / 'other'
    shutil.copytree(out, other)
    settings = json.loads((other / 'settings.json').read_text())
    settings['variant'] = 'RS'
    (other / 'settings.json').write_text(json.dumps(settings))
    with pytest.raises(ValueError, match='does not fit the RS network'):
        runs.load_run(str(other))
    settings['variant'] = 'GMRES'
    (other / 'settings.json').write_text(json.dumps(settings))
    with pytest.raises(ValueError, match='does not fit the GMRES network'):
        runs.load_run(str(other))
    # a model file that is not an npz
    settings['variant'] = 'S'
    (other / 'settings.json').write_text(json.dumps(settings))
    (other / 'model_final.npz').write_text('not a model')
    with pytest.raises(ValueError, match='not a readable .npz'):
        runs.load_run(str(other))
    (other / 'model_final.npz').unlink()
    with pytest.raises(ValueError, match='model file .* does not exist'):
        runs.load_run(str(other))
    (other / 'settings.json').write_text(json.dumps({'kind': 'counting'}))
    with pytest.raises(ValueError, match='not written by Friendly.train'):
        runs.load_run(str(other))


def test_same_seed_same_weights(tiny_run, mnist_dir, tmp_path):
    out, _ = tiny_run
    train.main(_tiny(tmp_path / 'again', epoch=1, extra=['--mnist-dir', mnist_dir]))
    a = numpy.load(str(out / 'model_final.npz'))
    b = numpy.load(str(tmp_path / 'again' / 'model_final.npz'))
    for key in a.files:
        numpy.testing.assert_array_equal(a[key], b[key])


def test_gmr_and_renorm_variants_train(mnist_dir, tmp_path):
    for variant in ('GMRES', 'RS'):
        summary = train.main(['--variant', variant, '--out', str(tmp_path / variant),
                              '--epoch', '1', '--train-subset', '60', '--val-subset', '200',
                              '--no-progress', '--mnist-dir', mnist_dir])
        assert summary['iterations'] == 3
        log = summary['last_epoch_log']
        assert numpy.isfinite(log['main/loss'])
        if variant == 'GMRES':
            assert log['main/penalty'] > 0
        else:
            assert 'renorm_schedule/rmax' in log or 'rmax' in log


# Only other devices: an @numpy case would compare NumPy with NumPy and could not fail.
DEVICES = [pytest.param('@cupy:0', marks=pytest.mark.gpu)]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('variant', ['S', 'RS', 'GMRES'])
def test_training_step_on_device_agrees_with_numpy(device, variant):
    rng = numpy.random.RandomState(0)
    x = rng.randint(0, 256, (20, 1, 4, 4)).astype(numpy.float32)
    t = rng.randint(0, 10, 20).astype(numpy.int32)

    def step(dev):
        numpy.random.seed(0)
        model = models.FriendlyClassifier(models.FC100(variant, sizes=(16, 8, 8, 10)))
        model.to_device(dev)
        opt = trainer.make_optimizer('fast', 0.002, 0.85)
        opt.setup(model)
        with chainer.using_config('train', True):
            opt.update(model, dev.send(x), dev.send(t))
        return {name: chainer.backend.CpuDevice().send(p.array)
                for name, p in model.namedparams()}

    expected = step(chainer.get_device('@numpy'))
    got = step(chainer.get_device(device))
    for name in expected:
        numpy.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5,
                                      err_msg=name)


def test_non_finite_numbers_are_refused_at_parse_time(capsys, tmp_path):
    out = tmp_path / 'run'
    for option, value in (('--lr', 'inf'), ('--lr', 'nan'), ('--lr', '-0.1'), ('--lr', '0'),
                          ('--gmr-weight', 'nan'), ('--gmr-weight', 'inf'),
                          ('--gmr-weight', '-1'), ('--renorm-threshold', 'nan')):
        msg = _error(capsys, ['--variant', 'GMR', '--out', str(out), option, value])
        assert 'error: argument ' + option in msg, msg
    assert not out.exists()


def test_non_finite_loss_stops_at_that_iteration(mnist_dir, tmp_path, capsys, monkeypatch):
    calls = {'training': 0}
    plain = models.squared_distance_loss

    def poisoned(y, t, reduce='mean'):
        loss = plain(y, t, reduce)
        if chainer.config.enable_backprop:          # training batches only
            calls['training'] += 1
            if calls['training'] == 13:             # epoch 2 (10 iterations an epoch)
                return loss * float('nan')
        return loss

    monkeypatch.setattr(models, 'squared_distance_loss', poisoned)
    out = tmp_path / 'S'
    with pytest.raises(SystemExit) as info:
        train.main(_tiny(out, epoch=3, extra=['--mnist-dir', mnist_dir]))
    assert info.value.code == cli.EXIT_NONFINITE != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'Traceback' not in err[0]
    assert err[0].partition('error: ')[2].startswith(
        'non-finite main/loss (nan) in epoch 2, iteration 13')
    assert str(out / 'snapshot_epoch_1') in err[0]
    assert (out / 'snapshot_epoch_1').exists() and not (out / 'snapshot_epoch_2').exists()
    assert not (out / 'model_final.npz').exists()
    with numpy.load(str(out / 'snapshot_epoch_1')) as snapshot:
        weights = [snapshot[k] for k in snapshot.files if k.startswith('updater/model:main/')]
    assert weights and all(numpy.isfinite(w).all() for w in weights)


def test_non_finite_check_finds_gradients_and_parameters():
    model = models.FriendlyClassifier(models.FC100('S', sizes=(6, 5, 4, 3)))
    check = training.NonFiniteCheck(model)
    model.cleargrads()
    assert check.problem({'main/loss': 0.5}) is None
    assert check.problem({'main/loss': float('inf')}) == 'non-finite main/loss (inf)'
    model.predictor.l2.W.grad = numpy.zeros((4, 5), numpy.float32)
    model.predictor.l2.W.grad[1, 2] = numpy.nan
    assert check.problem({}) == 'non-finite gradient of predictor/l2/W'
    model.cleargrads()
    # finite entries whose float32 sum overflows are not flagged
    model.predictor.l1.W.array[...] = 3e38
    assert check.problem({}) is None
    model.predictor.l1.b.array[0] = -numpy.inf
    assert check.problem({}) == 'non-finite parameter of predictor/l1/b'


def test_stabilize_clips_the_gradient_norm():
    lr = 0.1
    for stabilize, expected in ((False, 100.0), (True, train_args.STABLE_CLIP_NORM)):
        link = chainer.links.Linear(3, 2)
        optimizer = trainer.setup_optimizer(trainer.make_optimizer('fast', lr, 0.0), link,
                                            stabilize)
        before = [p.array.copy() for p in (link.W, link.b)]
        link.W.grad = numpy.zeros((2, 3), numpy.float32)
        link.b.grad = numpy.zeros(2, numpy.float32)
        link.W.grad[0, 0] = 60.0
        link.b.grad[1] = 80.0                        # global gradient norm 100
        optimizer.update()
        step = numpy.sqrt(sum(((p.array - b) ** 2).sum() for p, b in zip((link.W, link.b),
                                                                          before)))
        assert step == pytest.approx(lr * expected, rel=1e-5)


def test_stop_rules_replays_chainer_early_stopping(tmp_path, capsys):
    from Friendly import stop_rules
    # the same sequences through Chainer's trigger (test_early_stopping_watches_the_chosen_loss)
    assert stop_rules.stop_epoch([0.5, 0.6, 0.7, 0.4], patience=2, max_epochs=10) == 3
    assert stop_rules.stop_epoch([0.5, 0.6, 0.4, 0.45], patience=2, max_epochs=10) is None
    assert stop_rules.stop_epoch([0.5, 0.5, 0.5], patience=2, max_epochs=10) == 3   # not better
    assert stop_rules.stop_epoch([1.0, 0.9, 0.8], patience=20, max_epochs=3) == 3
    run = tmp_path / 'r'
    run.mkdir()
    (run / 'settings.json').write_text(json.dumps({'patience': 2, 'epoch': 6,
                                                   'early_stop_on': 'training'}))
    log = [{'epoch': e, 'main/loss': 1.0 / e, 'validation/main/loss': 0.5 + 0.1 * (e - 1)}
           for e in range(1, 7)]
    (run / 'log').write_text(json.dumps(log))
    (_, stops), = stop_rules.main([str(run)])
    assert stops == {'training': 6, 'validation': 3}
    assert capsys.readouterr().out.strip().endswith('| 6 | training | 6 | 3 | no |')
