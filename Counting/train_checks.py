"""Checks of ``Counting.train`` that are its own: finite rates of the right sign,
``--force``, and the settings a resumed run must share (:data:`RESUME_KEYS`).

The run folder's checks (``--out`` usable, an earlier run refused unless resumed or forced, the
resume identity check, the snapshot loaded without pickle) are the shared scaffold's,
:mod:`lenses_common.training`.
"""
import math

from Counting import models

#: The settings a resumed run must share with the run that wrote the snapshot: the network, and
#: the options that decide its trajectory (``--epoch`` may grow, to train a run further).
RESUME_KEYS = models.NETWORK_KEYS + ('optimizer', 'lr', 'momentum', 'batchsize', 'seed', 'train',
                                     'n_train', 'renorm_threshold', 'renorm_decay')


def add_force_argument(parser):
    parser.add_argument('--force', action='store_true',
                        help='--out holds a run (model.npz or snapshots): move it aside to '
                             'OUT.old-N and start anew (nothing is deleted)')


def check_numbers(args, parser):
    """Finite rates of the right sign; errors through ``parser.error``."""
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error('--lr must be a finite positive number, got {}'.format(args.lr))
    if not (math.isfinite(args.momentum) and 0 <= args.momentum < 1):
        parser.error('--momentum must be in [0, 1), got {}'.format(args.momentum))
    if not (math.isfinite(args.base) and args.base > 0):
        parser.error('--base must be a finite positive number, got {}'.format(args.base))
    if math.isnan(args.renorm_threshold) or args.renorm_threshold < 0:
        parser.error('--renorm-threshold must be >= 0, got {}'.format(args.renorm_threshold))
