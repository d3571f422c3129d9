"""Friendly's own Trainer extensions and triggers (thesis 3.3.1), used by :mod:`Friendly.train`.

- :class:`RenormSchedule`: the Batch Renormalization rmax/dmax schedule;
- :class:`ResumableEarlyStopping` / :func:`make_early_stopping`: early stopping on the epoch's mean
  training loss (the author's code) or the validation loss, its state kept in snapshots;
- :class:`BatchModeEvaluator`: validation with Batch Renormalization treated as the final
  evaluation treats it.
"""
from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training
from chainer.training import extensions
from chainer.training import triggers

from Friendly import models

RENORM_STEPS = (1.1, 10.0, 100.0, 1000.0)
RENORM_RULES = ('last-batch', 'epoch-mean')
EARLY_STOP_KEYS = {'training': 'main/loss', 'validation': 'validation/main/loss'}


class RenormSchedule(training.Extension):
    """The renorm schedule (thesis 3.3.1) as a Trainer extension (its state is saved in snapshots).

    rmax and dmax start at 1 and 0. At the end of the first epoch whose training loss (``key``) is
    under ``threshold`` both become 1.1; every ``step_epochs`` epochs after that they step to 10,
    100 and 1000. ``rule='last-batch'`` (the author's code) compares the loss of the epoch's last
    minibatch, ``rule='epoch-mean'`` the mean over the epoch. Each stage's start is printed.
    """

    trigger = 1, 'iteration'
    priority = training.PRIORITY_READER

    def __init__(self, links, threshold=0.01, key='main/loss', step_epochs=20,
                 steps=RENORM_STEPS, rule='last-batch'):
        if rule not in RENORM_RULES:
            raise ValueError('rule must be one of {}, got {!r}'.format(RENORM_RULES, rule))
        self.links = list(links)
        self.threshold = float(threshold)
        self.rule = rule
        self.key = key
        self.step_epochs = int(step_epochs)
        self.steps = tuple(steps)
        self.start_epoch = -1      # the epoch at whose end the threshold was first crossed
        self.loss_sum = 0.0
        self.loss_count = 0

    def current(self, epoch):
        """(rmax, dmax) for the number of completed ``epoch``s."""
        if self.start_epoch < 0:
            return 1.0, 0.0
        stage = min(len(self.steps) - 1, (epoch - self.start_epoch) // self.step_epochs)
        return self.steps[stage], self.steps[stage]

    def apply(self, epoch):
        rmax, dmax = self.current(epoch)
        for link in self.links:
            link.rmax, link.dmax = rmax, dmax
        return rmax, dmax

    def initialize(self, trainer):
        self.apply(trainer.updater.epoch)

    def __call__(self, trainer):
        value = trainer.observation.get(self.key)
        if value is not None:
            value = float(chainer.as_array(value))
            if self.rule == 'epoch-mean':
                self.loss_sum += value
                self.loss_count += 1
            else:
                self.loss_sum, self.loss_count = value, 1
        updater = trainer.updater
        if not updater.is_new_epoch:
            return
        checked = self.loss_sum / self.loss_count if self.loss_count else None
        if self.start_epoch < 0 and checked is not None and checked < self.threshold:
            self.start_epoch = updater.epoch
            print('renorm schedule: the {} training loss of epoch {} is {:.6g} < {:g}'.format(
                self.rule, updater.epoch, checked, self.threshold))
        self.loss_sum, self.loss_count = 0.0, 0
        before = (self.links[0].rmax, self.links[0].dmax) if self.links else None
        rmax, dmax = self.apply(updater.epoch)
        if self.links and (rmax, dmax) != before:
            print('renorm schedule: rmax = {:g}, dmax = {:g} from epoch {}'.format(
                rmax, dmax, updater.epoch + 1))
        chainer.reporter.report({'rmax': rmax, 'dmax': dmax})

    def serialize(self, serializer):
        self.start_epoch = int(serializer('start_epoch', self.start_epoch))
        self.loss_sum = float(serializer('loss_sum', self.loss_sum))
        self.loss_count = int(serializer('loss_count', self.loss_count))


class ResumableEarlyStopping(triggers.EarlyStoppingTrigger):
    """Chainer's EarlyStoppingTrigger with its best value and patience counter in snapshots."""

    def serialize(self, serializer):
        self.best = float(serializer('best', self.best))
        self.count = int(serializer('count', self.count))
        self._interval_trigger.serialize(serializer['interval_trigger'])
        self._max_trigger.serialize(serializer['max_trigger'])
        self._summary.serialize(serializer['summary'])

    def __call__(self, trainer):
        if not trainer.observation:
            # Right after --resume the trainer has observed nothing yet, while the interval
            # trigger (saved just before the epoch's check) fires once: the epoch the snapshot
            # ends was not compared yet. Its mean is the log's last entry (the snapshot's summary
            # lacks the epoch's last iteration), so it is compared as an uninterrupted run does.
            if self._interval_trigger(trainer):
                current = self._logged(trainer)
                self._init_summary()
                if current is not None and self._epoch_ends(current):
                    return True
            return bool(self._max_trigger(trainer))
        # Chainer's trigger returns at the epoch ceiling before it compares that epoch, so the
        # last epoch's loss would never count in ``best`` (summary.json's best_monitored_loss);
        # here the epoch is compared first and the ceiling checked after.
        at_max = bool(self._max_trigger(trainer))
        observation = trainer.observation
        if self.monitor in observation:
            self._summary.add({self.monitor: observation[self.monitor]})
        if self._interval_trigger(trainer) and self.monitor in observation:
            current = self._summary.compute_mean()[self.monitor]
            self._init_summary()
            if self._epoch_ends(current):
                return True
        return at_max

    def _epoch_ends(self, current):
        """Compare the epoch's monitored loss ``current`` with the best so far (a better one
        resets the count of epochs without one); True when the patience has run out."""
        if self._compare(current, self.best):
            self.best, self.count = current, 0
        else:
            self.count += 1
        return bool(self._stop_condition())

    def _logged(self, trainer):
        """The monitored value of the epoch just ended, from the LogReport's last entry."""
        try:
            log = trainer.get_extension('LogReport').log
        except ValueError:
            return None
        if log and log[-1].get('epoch') == trainer.updater.epoch:
            value = log[-1].get(self.monitor)
            return None if value is None else float(value)
        return None

    def stopped_early(self, trainer):
        return self._stop_condition() and not self._max_trigger(trainer)


class BatchModeEvaluator(extensions.Evaluator):
    """Evaluator that treats Batch Renormalization as the final evaluation does (``bn_mode``)."""

    def __init__(self, iterator, target, bn_mode='batch', **kwargs):
        super(BatchModeEvaluator, self).__init__(iterator, target, **kwargs)
        self.bn_mode = bn_mode

    def evaluate(self):
        target = self.get_target('main')
        with models.evaluation_mode(target.predictor, self.bn_mode):
            return super(BatchModeEvaluator, self).evaluate()


def make_early_stopping(on, patience, max_epochs):
    """Early stopping on the epoch's mean training loss or the validation loss (``on``)."""
    return ResumableEarlyStopping(check_trigger=(1, 'epoch'), monitor=EARLY_STOP_KEYS[on],
                                  patience=patience, mode='min',
                                  max_trigger=(max_epochs, 'epoch'))
