"""The non-finite stop of a training run: :class:`NonFiniteCheck` stops it at the first NaN or
infinite loss, gradient or parameter (:class:`NonFiniteError`), which
:meth:`lenses_common.training.TrainingScaffold.run` turns into one line and exit status
``lenses_common.cli.EXIT_NONFINITE``.
"""
import math

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training


class NonFiniteError(RuntimeError):
    """A NaN or infinite loss, gradient or parameter during training."""


class NonFiniteCheck(training.Extension):
    """Stops training at the first iteration with a non-finite loss, gradient or parameter.

    Runs after every update and before every other extension (so the iteration's evaluation,
    snapshots and model files never see the bad values) and raises :class:`NonFiniteError` naming
    the epoch and iteration. The gradients are the ones of the update just made.
    """

    trigger = 1, 'iteration'
    priority = training.PRIORITY_WRITER + 1000

    def __init__(self, model, keys=('main/loss',)):
        self.model = model
        self.keys = tuple(keys)

    @staticmethod
    def _finite(array):
        xp = chainer.backend.get_array_module(array)
        # A sum is one cheap pass; only when it is not finite are the entries themselves checked
        # (a sum of finite float32 values can overflow).
        with numpy.errstate(over='ignore', invalid='ignore'):
            return bool(xp.isfinite(array.sum())) or bool(xp.isfinite(array).all())

    def problem(self, observation):
        """A description of the first non-finite value, or None."""
        for key in self.keys:
            value = observation.get(key)
            if value is not None:
                value = float(chainer.as_array(value))
                if not math.isfinite(value):
                    return 'non-finite {} ({})'.format(key, value)
        params = sorted(self.model.namedparams())
        for what in ('grad', 'array'):
            for name, param in params:
                array = getattr(param, what)
                if array is not None and not self._finite(array):
                    return 'non-finite {} of {}'.format(
                        'gradient' if what == 'grad' else 'parameter', name.lstrip('/'))
        return None

    def __call__(self, trainer):
        found = self.problem(trainer.observation)
        if found is not None:
            updater = trainer.updater
            epoch = updater.epoch if updater.is_new_epoch else updater.epoch + 1
            raise NonFiniteError('{} in epoch {}, iteration {}'.format(
                found, epoch, updater.iteration))
