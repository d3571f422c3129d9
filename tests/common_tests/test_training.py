"""Unit tests of lenses_common.training, the Trainer assembly of both parts, on a tiny model."""
import argparse
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import training

from lenses_common import training as scaffolding
from lenses_common.nonfinite import NonFiniteCheck
from lenses_common.training import TrainingScaffold


def _parser():
    return argparse.ArgumentParser(prog='tiny')


def _one_line_exit(capsys, function, *args, **kwargs):
    with pytest.raises(SystemExit) as info:
        function(*args, **kwargs)
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if 'error' in line]
    assert len(err) == 1 and 'Traceback' not in err[0]
    return err[0]


class _Regression(chainer.Chain):
    """y = W x, squared error; ``poison_at``: the training call whose loss becomes NaN."""

    def __init__(self, poison_at=None):
        super().__init__()
        with self.init_scope():
            self.fc = L.Linear(3, 1, initialW=numpy.full((1, 3), 0.5, numpy.float32))
        self.poison_at = poison_at
        self.calls = 0

    def forward(self, x, t):
        loss = F.mean_squared_error(self.fc(x), t)
        self.calls += 1
        if self.calls == self.poison_at:
            loss = loss * float('nan')
        chainer.report({'loss': loss}, self)
        return loss


def _data(n=12):
    rng = numpy.random.RandomState(0)
    x = rng.uniform(-1, 1, (n, 3)).astype(numpy.float32)
    return chainer.datasets.TupleDataset(x, x.sum(axis=1, keepdims=True))


def _train(out, epochs, poison_at=None, resume=None, writer=True):
    """3 iterations an epoch (12 examples, batch 4), a snapshot every epoch."""
    scaffold = TrainingScaffold(_parser(), str(out), unit='epoch', final_model='model_final.npz',
                                writer=writer)
    model = _Regression(poison_at)
    optimizer = scaffold.setup_optimizer(chainer.optimizers.SGD(lr=0.1), model)
    updater = training.updaters.StandardUpdater(scaffold.train_iterator(_data(), 4, seed=0),
                                                optimizer)
    scaffold.make_trainer(updater, (epochs, 'epoch'), model)
    scaffold.add_reports(['epoch', 'main/loss'], plots=[(['main/loss'], 'loss.png')],
                         progress=False)
    if resume:
        scaffold.load_snapshot(resume)
    return scaffold, model, scaffold.run()


def test_non_finite_stop_names_epoch_iteration_and_keeps_the_last_good_snapshot(tmp_path):
    # Iteration 6 ends epoch 2: the check runs before that epoch's snapshot, which never appears.
    scaffold, model, failure = _train(tmp_path, epochs=4, poison_at=6)
    snapshot = str(tmp_path / 'snapshot_epoch_1')
    assert failure == ('tiny: error: non-finite main/loss (nan) in epoch 2, iteration 6: training '
                       'stopped; last good snapshot {}; no model_final.npz written'.format(
                           snapshot))
    assert scaffold.trainer.updater.iteration == 6
    assert sorted(os.listdir(tmp_path)) == ['log', 'loss.png', 'snapshot_epoch_1']
    with numpy.load(snapshot) as npz:
        weights = npz['updater/model:main/fc/W']
    assert numpy.isfinite(weights).all()
    # The epoch log stops at epoch 1, the last one whose values were finite.
    assert [e['epoch'] for e in json.loads((tmp_path / 'log').read_text())] == [1]


def test_non_finite_stop_before_any_snapshot(tmp_path):
    _, _, failure = _train(tmp_path, epochs=2, poison_at=2)
    assert failure.partition(': error: ')[2].startswith(
        'non-finite main/loss (nan) in epoch 1, iteration 2: ')
    assert failure.endswith('no snapshot yet; no model_final.npz written')


def test_non_finite_check_finds_gradients_and_parameters():
    model = L.Classifier(chainer.Sequential(L.Linear(6, 5), L.Linear(5, 4)))
    check = NonFiniteCheck(model)
    model.cleargrads()
    assert check.problem({'main/loss': 0.5}) is None
    assert check.problem({'main/loss': float('inf')}) == 'non-finite main/loss (inf)'
    second = model.predictor[1]
    second.W.grad = numpy.zeros((4, 5), numpy.float32)
    second.W.grad[1, 2] = numpy.nan
    assert check.problem({}) == 'non-finite gradient of predictor/1/W'
    model.cleargrads()
    # finite entries whose float32 sum overflows are not flagged
    model.predictor[0].W.array[...] = 3e38
    assert check.problem({}) is None
    model.predictor[0].b.array[0] = -numpy.inf
    assert check.problem({}) == 'non-finite parameter of predictor/0/b'


def test_resume_continues_to_the_uninterrupted_weights(tmp_path, capsys):
    _, whole, failure = _train(tmp_path / 'whole', epochs=3)
    assert failure is None
    _train(tmp_path / 'part', epochs=2)
    part = TrainingScaffold(_parser(), str(tmp_path / 'part'))
    assert part.latest_snapshot().endswith('snapshot_epoch_2')
    scaffold, resumed, failure = _train(tmp_path / 'part', epochs=3,
                                        resume=part.resolve_resume('auto'))
    assert failure is None and scaffold.trainer.updater.iteration == 9
    assert 'resuming from' in capsys.readouterr().out
    numpy.testing.assert_array_equal(whole.fc.W.array, resumed.fc.W.array)


def test_resume_identity_refusal(tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    snapshot = out / 'snapshot_iter_3'
    snapshot.write_bytes(b'')
    (out / 'settings.json').write_text(json.dumps(
        {'lr': 0.1, 'sizes': [3, 1], 'seed': 0, 'epoch': 5}))
    scaffold = TrainingScaffold(_parser(), str(out), unit='iteration')
    keys = ('lr', 'sizes', 'seed', 'stabilize')
    # The same run: a tuple equals the list it became in JSON, --epoch may grow, and a key absent
    # from both matches.
    scaffold.check_identity(str(snapshot), {'lr': 0.1, 'sizes': (3, 1), 'seed': 0, 'epoch': 9},
                            keys)
    # A run folder that lacks a defining key (written by an earlier version) is refused.
    line = _one_line_exit(capsys, scaffold.check_identity, str(snapshot),
                          {'lr': 0.1, 'sizes': (3, 1), 'seed': 0, 'stabilize': False}, keys)
    assert 'stabilize differ: stabilize=null there' in line
    line = _one_line_exit(capsys, scaffold.check_identity, str(snapshot),
                          {'lr': 0.2, 'sizes': (3, 1), 'seed': 1}, keys,
                          what='belongs to another network')
    assert line == ('tiny: error: --resume {}: {} belongs to another network (lr, seed differ: '
                    'lr=0.1 there, seed=0 there)'.format(snapshot, out / 'settings.json'))
    # a snapshot copied into a fresh --out is checked against the folder it came from too
    other = tmp_path / 'other'
    line = _one_line_exit(capsys, TrainingScaffold(_parser(), str(other)).check_identity,
                          str(snapshot), {'lr': 0.3, 'sizes': [3, 1], 'seed': 0}, keys)
    assert 'describes another run (lr differ: lr=0.1 there)' in line
    (out / 'settings.json').write_text('{broken')
    assert 'not valid JSON' in _one_line_exit(capsys, scaffold.check_identity, str(snapshot),
                                              {}, keys)


def test_resolve_resume_and_latest_snapshot(tmp_path, capsys):
    scaffold = TrainingScaffold(_parser(), str(tmp_path), unit='iteration')
    assert scaffold.resolve_resume(None) is None
    assert scaffold.resolve_resume('auto', missing_ok=True) is None
    assert 'no snapshot_iter_* in' in _one_line_exit(capsys, scaffold.resolve_resume, 'auto')
    assert 'no such snapshot file' in _one_line_exit(capsys, scaffold.resolve_resume,
                                                     str(tmp_path / 'gone'))
    for n in (9, 10, 2):                       # the newest by number, not by name
        (tmp_path / 'snapshot_iter_{}'.format(n)).write_bytes(b'')
    (tmp_path / 'snapshot_epoch_99').write_bytes(b'')
    assert scaffold.resolve_resume('auto') == str(tmp_path / 'snapshot_iter_10')


def test_guard_refuses_an_earlier_run_and_force_moves_it_aside(tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'model_final.npz').write_bytes(b'old')
    scaffold = TrainingScaffold(_parser(), str(out), final_model='model_final.npz')
    line = _one_line_exit(capsys, scaffold.guard, None)
    assert 'holds a finished run (model_final.npz)' in line
    assert scaffold.guard('some snapshot') is None            # resuming: left as it is
    note = scaffold.guard(None, force=True)
    assert note.endswith('run.old-1') and (tmp_path / 'run.old-1' / 'model_final.npz').exists()
    assert [p.name for p in out.iterdir()] == ['.lock']     # the new run's folder, locked


def test_final_save_is_atomic(tmp_path, monkeypatch):
    scaffold = TrainingScaffold(_parser(), str(tmp_path), final_model='model.npz')
    link = L.Linear(2, 2)
    path = scaffold.save_final(link)
    before = open(path, 'rb').read()
    with numpy.load(path) as npz:
        numpy.testing.assert_array_equal(npz['W'], link.W.array)

    def broken(f, **arrays):
        f.write(b'PK partial')
        raise OSError('disk full')

    monkeypatch.setattr(numpy, 'savez_compressed', broken)
    link.W.array[...] += 1
    with pytest.raises(OSError, match='disk full'):
        scaffold.save_final(link)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['model.npz']             # no temporary file left


def test_a_non_writer_writes_nothing(tmp_path, capsys):
    out = tmp_path / 'rank1'
    scaffold, _, failure = _train(out, epochs=2, writer=False)
    assert failure is None and scaffold.trainer.updater.iteration == 6
    scaffold.open({'lr': 0.1}, None, argv=['x'], header='header line')
    scaffold.save_final(L.Linear(2, 2))
    # (Chainer's Trainer makes its out folder; nothing goes into it)
    assert os.listdir(out) == [] and capsys.readouterr().out == ''


def test_epoch_order_depends_on_seed_and_epoch_only():
    order = scaffolding.EpochSeededOrder(5)
    it = chainer.iterators.SerialIterator(list(range(7)), 7, order_sampler=order)
    order.iterator = it
    first = list(numpy.random.RandomState([5, 0]).permutation(7))
    assert it.next() == first
    assert it.next() == list(numpy.random.RandomState([5, 1]).permutation(7)) != first
