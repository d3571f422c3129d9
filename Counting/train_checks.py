"""Checks of ``Counting.train`` that keep a run folder honest (issue 9).

- rates and thresholds are finite and of the right sign;
- ``--out`` is a writable (or creatable) folder, checked before the dataset is read;
- a folder holding a finished or unfinished run is refused without ``--resume`` or ``--force``
  (``--force`` moves it aside to ``OUT.old-N``; nothing is deleted);
- ``--resume`` refuses a snapshot of another network or of other training options, and loads it
  through :mod:`lenses_common.safe_npz` (no pickle; names, shapes and dtypes checked first).
"""
import json
import math
import os

from Counting import models
from lenses_common import safe_npz
from lenses_common.runfolder import OutError, check_out_dir, guard_run_folder, load_json
from lenses_common.runfolder import out_error

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


def check_out(args, parser, resume):
    """``--out`` usable, and not holding a run unless resuming or forced; returns a note or
    None (the folder moved aside)."""
    try:
        check_out_dir(args.out)
        return guard_run_folder(args.out, finished=('model.npz',),
                                in_progress=('snapshot_iter_*',), resume=resume is not None,
                                force=getattr(args, 'force', False))
    except OutError as e:
        out_error(parser, e)


def _normal(settings):
    return json.loads(json.dumps({k: settings.get(k) for k in RESUME_KEYS}, sort_keys=True))


def check_resume_identity(resume, out, settings, parser):
    """Refuse ``--resume`` when the snapshot's run (or ``--out``'s) has other defining settings."""
    wanted = _normal(settings)
    folders = [os.path.dirname(os.path.abspath(resume)), os.path.abspath(out)]
    for folder in dict.fromkeys(folders):
        path = os.path.join(folder, 'settings.json')
        if not os.path.exists(path):
            continue
        try:
            previous = load_json(path)
        except ValueError as e:
            parser.error('--resume: {}'.format(e))
        if not isinstance(previous, dict):
            parser.error('--resume: {} is not a counting run'.format(path))
        previous = _normal(previous)
        diff = [k for k in RESUME_KEYS if previous.get(k) != wanted.get(k)]
        if diff:
            parser.error('--resume {}: {} describes another run ({} differ: {})'.format(
                resume, path, ', '.join(diff),
                ', '.join('{}={} there'.format(k, json.dumps(previous.get(k))) for k in diff)))


def load_snapshot(resume, trainer, model, image_size, parser):
    """Load the snapshot into ``trainer`` safely; a bad file is a one-line error (status 2)."""
    width, height = image_size
    models._initialize_lazy(model, (height, width))
    try:
        safe_npz.load_npz(resume, trainer, what='snapshot')
    except safe_npz.ModelFileError as e:
        parser.error('--resume: {}'.format(e))
