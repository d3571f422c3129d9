"""Tests of Friendly.train_extensions: the renorm schedule and resumable early stopping."""
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import serializers

from Friendly import train_args
from Friendly import train_extensions as extensions


class _Link:
    rmax, dmax = 1.0, 0.0


class _Updater:
    def __init__(self):
        self.epoch = 0
        self.is_new_epoch = False


class _Trainer:
    def __init__(self):
        self.updater = _Updater()
        self.observation = {}


def _run_epochs(schedule, trainer, losses, iterations_per_epoch=3):
    """Feed ``losses`` (one mean loss per epoch) through the extension; return (rmax, dmax) after
    each epoch."""
    seen = []
    for loss in losses:
        for i in range(iterations_per_epoch):
            last = i == iterations_per_epoch - 1
            trainer.updater.is_new_epoch = last
            if last:
                trainer.updater.epoch += 1
            # the mean over the epoch is ``loss``: values loss-0.001, loss, loss+0.001
            trainer.observation = {'main/loss': loss + 0.001 * (i - 1)}
            with chainer.reporter.Reporter().scope({}):
                schedule(trainer)
        seen.append((schedule.links[0].rmax, schedule.links[0].dmax))
    return seen


def test_renorm_schedule_steps():
    links = [_Link(), _Link()]
    schedule = extensions.RenormSchedule(links, threshold=0.01)
    trainer = _Trainer()
    schedule.initialize(trainer)
    assert (links[0].rmax, links[0].dmax) == (1.0, 0.0)
    # epochs 1-3 above the threshold, epoch 4 under it (mean 0.005), then it may rise again
    losses = [0.5, 0.1, 0.02, 0.005] + [0.05] * 70
    seen = _run_epochs(schedule, trainer, losses)
    assert seen[:3] == [(1.0, 0.0)] * 3
    assert seen[3] == (1.1, 1.1)              # end of epoch 4
    assert seen[22] == (1.1, 1.1)             # end of epoch 23
    assert seen[23] == (10.0, 10.0)           # epoch 24 = 4 + 20
    assert seen[43] == (100.0, 100.0)         # epoch 44
    assert seen[63] == (1000.0, 1000.0)       # epoch 64
    assert seen[-1] == (1000.0, 1000.0)
    assert links[1].rmax == links[0].rmax


def test_renorm_schedule_epoch_mean_rule_ignores_one_low_batch():
    schedule = extensions.RenormSchedule([_Link()], threshold=0.01, rule='epoch-mean')
    trainer = _Trainer()
    # one batch under the threshold, the epoch mean above it
    trainer.updater.is_new_epoch = False
    for value in (0.001, 0.05):
        trainer.observation = {'main/loss': value}
        with chainer.reporter.Reporter().scope({}):
            schedule(trainer)
    trainer.updater.epoch, trainer.updater.is_new_epoch = 1, True
    trainer.observation = {'main/loss': 0.05}
    with chainer.reporter.Reporter().scope({}):
        schedule(trainer)
    assert schedule.links[0].rmax == 1.0 and schedule.start_epoch == -1


def _feed_epoch(schedule, trainer, values):
    """One epoch whose minibatch losses are ``values`` (the last one ends the epoch)."""
    for i, value in enumerate(values):
        last = i == len(values) - 1
        trainer.updater.is_new_epoch = last
        if last:
            trainer.updater.epoch += 1
        trainer.observation = {'main/loss': value}
        with chainer.reporter.Reporter().scope({}):
            schedule(trainer)


def test_renorm_schedule_last_batch_rule_is_the_default(capsys):
    schedule = extensions.RenormSchedule([_Link()], threshold=0.01)
    assert schedule.rule == 'last-batch'
    trainer = _Trainer()
    # epoch 1: mean 0.0367 but the last batch 0.005: the author's rule starts the schedule
    _feed_epoch(schedule, trainer, [0.1, 0.0051, 0.005])
    assert schedule.start_epoch == 1 and schedule.links[0].rmax == 1.1
    out = capsys.readouterr().out
    assert 'epoch 1 is 0.005 < 0.01' in out and 'rmax = 1.1, dmax = 1.1 from epoch 2' in out
    # epoch-mean on the same losses does not start; a low batch that is not the last does not
    # start the last-batch rule either
    for rule, values in (('epoch-mean', [0.1, 0.0051, 0.005]), ('last-batch', [0.001, 0.02])):
        other = extensions.RenormSchedule([_Link()], threshold=0.01, rule=rule)
        trainer = _Trainer()
        _feed_epoch(other, trainer, values)
        assert other.start_epoch == -1 and other.links[0].rmax == 1.0
    # each later stage is announced when it starts (epoch 1 + 20 = 21)
    trainer = _Trainer()
    trainer.updater.epoch = 1
    capsys.readouterr()
    for _ in range(20):
        _feed_epoch(schedule, trainer, [0.5, 0.5])
    assert schedule.links[0].rmax == 10.0
    assert capsys.readouterr().out.count('rmax = 10, dmax = 10 from epoch 22') == 1
    with pytest.raises(ValueError):
        extensions.RenormSchedule([_Link()], rule='median')


def test_renorm_schedule_survives_serialization(tmp_path):
    schedule = extensions.RenormSchedule([_Link()], threshold=0.01)
    trainer = _Trainer()
    _run_epochs(schedule, trainer, [0.5, 0.005] + [0.5] * 25)
    assert schedule.links[0].rmax == 10.0
    path = str(tmp_path / 'state.npz')
    serializers.save_npz(path, schedule)
    restored = extensions.RenormSchedule([_Link()], threshold=0.01)
    serializers.load_npz(path, restored)
    assert restored.start_epoch == 2
    restored.initialize(trainer)          # what the Trainer does after --resume
    assert (restored.links[0].rmax, restored.links[0].dmax) == (10.0, 10.0)


def test_early_stopping_state_survives_serialization(tmp_path):
    stop = extensions.ResumableEarlyStopping(monitor='validation/main/loss', patience=20,
                                        mode='min', max_trigger=(100, 'epoch'))
    stop.best, stop.count = 0.123, 7
    path = str(tmp_path / 'stop.npz')
    serializers.save_npz(path, stop)
    restored = extensions.ResumableEarlyStopping(monitor='validation/main/loss', patience=20,
                                            mode='min', max_trigger=(100, 'epoch'))
    serializers.load_npz(path, restored)
    assert restored.best == pytest.approx(0.123) and restored.count == 7


class _StopTrainer:
    def __init__(self):
        self.updater = _Updater()
        self.updater.iteration = 0
        self.observation = {}


def test_early_stopping_watches_the_chosen_loss():
    # training loss falls every epoch, validation loss rises from epoch 2: only the validation
    # rule stops: best at epoch 1, then 2 epochs without improvement (patience 2): epoch 3
    stopped = {}
    for on in ('training', 'validation'):
        stop = extensions.make_early_stopping(on, patience=2, max_epochs=10)
        trainer = _StopTrainer()
        for epoch in range(1, 11):
            for i in range(3):
                trainer.updater.iteration += 1
                trainer.updater.is_new_epoch = i == 2
                trainer.updater.epoch = epoch if i == 2 else epoch - 1
                trainer.updater.epoch_detail = epoch - 1 + (i + 1) / 3
                trainer.observation = {'main/loss': 1.0 / epoch - 0.01 * i}
                if i == 2:
                    trainer.observation['validation/main/loss'] = 0.5 + 0.1 * abs(epoch - 1)
                if stop(trainer):
                    break
            else:
                continue
            break
        stopped[on] = epoch
    assert stopped == {'training': 10, 'validation': 3}
    assert train_args.build_parser().parse_args(['--variant', 'S', '--out', 'x']).early_stop_on \
        == 'training'
