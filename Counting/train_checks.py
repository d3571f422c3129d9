"""Checks of ``Counting.train`` that are its own: ``--force``, the settings a resumed run must
share (:data:`RESUME_KEYS`).

The run folder's checks (``--out`` usable, an earlier run refused unless resumed or forced, the
resume identity check, the snapshot loaded without pickle) are the shared scaffold's,
:mod:`lenses_common.training`.
"""
from Counting import models

#: The settings a resumed run must share with the run that wrote the snapshot: the network, and
#: the options that decide its trajectory (``--epoch`` may grow, to train a run further).
RESUME_KEYS = models.NETWORK_KEYS + ('optimizer', 'lr', 'momentum', 'batchsize', 'seed', 'train',
                                     'n_train', 'renorm_threshold', 'renorm_decay')


def add_force_argument(parser):
    parser.add_argument('--force', action='store_true',
                        help='--out holds a run (model_final.npz or snapshots): move it aside to '
                             'OUT.old-N and start anew (nothing is deleted)')
