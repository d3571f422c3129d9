"""Checks of ``Counting.train`` that are its own: ``--force``, the settings a resumed run must
share (:data:`RESUME_KEYS`), and two argparse ``type`` functions for its rates.

The run folder's checks (``--out`` usable, an earlier run refused unless resumed or forced, the
resume identity check, the snapshot loaded without pickle) are the shared scaffold's,
:mod:`lenses_common.training`.
"""
import argparse
import math

from Counting import models

#: The settings a resumed run must share with the run that wrote the snapshot: the network, and
#: the options that decide its trajectory (``--epoch`` may grow, to train a run further).
RESUME_KEYS = models.NETWORK_KEYS + ('optimizer', 'lr', 'momentum', 'batchsize', 'seed', 'train',
                                     'n_train', 'renorm_threshold', 'renorm_decay')


def add_force_argument(parser):
    parser.add_argument('--force', action='store_true',
                        help='--out holds a run (model_final.npz or snapshots): move it aside to '
                             'OUT.old-N and start anew (nothing is deleted)')


def below_one(low):
    """An argparse ``type``: a finite number in ``[low, 1)`` (``--momentum``)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError('{!r} is not a number'.format(text)) from None
        if not (math.isfinite(value) and low <= value < 1):
            raise argparse.ArgumentTypeError('{} is not in [{:g}, 1)'.format(text, low))
        return value
    parse.__name__ = 'number'
    return parse


def at_least_zero(text):
    """An argparse ``type``: a number >= 0, infinity included (``--renorm-threshold``: an
    infinite threshold starts the schedule at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('{!r} is not a number'.format(text)) from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError('{} is not a number >= 0'.format(text))
    return value
