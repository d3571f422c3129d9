"""One trained Friendly run: its folder's files, loading its network, naming its row.

A ``Friendly.train`` run folder holds ``settings.json`` (the network's settings),
``model_final.npz`` (``lenses_common.snapshots.FINAL_MODEL``, the model the thesis evaluates),
``model_best.npz`` (:data:`BEST_MODEL`) and ``snapshot_epoch_N`` files. :func:`load_run` is the
one loader of a run; :func:`load_networks` loads the ``--run`` and ``--source`` folders of an
evaluation command, :func:`network_name` names a run's row and :func:`ordered` puts rows in the
thesis's column order.
"""
import os

from Friendly import models
from lenses_common import cli, safe_npz
from lenses_common.runfolder import RunFolder, load_json
from lenses_common.snapshots import FINAL_MODEL

BEST_MODEL = 'model_best.npz'


#: Parameters a network built from a settings file may have (the thesis's PD network has 61.5 M):
#: an edited ``sizes`` is refused before it is built, not by a MemoryError during the build.
MAX_PARAMETERS = 10 ** 9


def check_sizes(settings, settings_path):
    """``ValueError`` (one line) when the ``sizes`` of ``settings`` are not positive integers, one
    per layer boundary, or would build a network above :data:`MAX_PARAMETERS` parameters."""
    sizes = settings['sizes']
    layers = models.VARIANT_SETTINGS[settings['variant']]['layers']
    if (not isinstance(sizes, (list, tuple)) or len(sizes) != len(layers) + 1
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                       for n in sizes)):
        raise ValueError('settings file {}: bad sizes {!r} (expected {} positive integers)'.format(
            settings_path, sizes, len(layers) + 1))
    count = sum(a * (a - 1) // 2 * b if kind == 'pairwise_difference' else a * b
                for kind, a, b in zip(layers, sizes[:-1], sizes[1:]))
    if count > MAX_PARAMETERS:
        raise ValueError('settings file {}: sizes {} make a network of {:,} parameters, above the '
                         'limit of {:,}'.format(settings_path, sizes, count, MAX_PARAMETERS))


def load_run(run_dir, which='final', device=None):
    """Build the network ``run_dir/settings.json`` describes and load its model file.

    ``which`` is 'final', 'best' or a path to an ``.npz``. Raises ``ValueError`` with a one-line
    message for a missing settings/model file or a model that does not fit the settings.
    Returns (predictor, settings).
    """
    settings_path = os.path.join(run_dir, RunFolder.SETTINGS)
    settings = load_json(settings_path)
    if (not isinstance(settings, dict) or settings.get('kind') != 'friendly-train'
            or 'variant' not in settings):
        raise ValueError('settings file {} was not written by Friendly.train'.format(
            settings_path))
    missing = [k for k in ('sizes', 'pd_chunk_size') if k not in settings]
    if missing:
        raise ValueError('settings file {} has no {} (written by an earlier version of '
                         'Friendly.train: train the network again)'.format(
                             settings_path, ' or '.join(missing)))
    try:
        models.check_variant(settings['variant'])
    except (models.VariantError, TypeError) as e:
        raise ValueError('settings file {}: {}'.format(settings_path, e)) from None
    if which in ('final', 'best'):
        path = os.path.join(run_dir, FINAL_MODEL if which == 'final' else BEST_MODEL)
    else:
        path = which
    if not os.path.isfile(path):
        raise ValueError('model file {} does not exist (train it with python -m Friendly.train '
                         '--out {})'.format(path, run_dir))
    check_sizes(settings, settings_path)
    try:
        predictor = models.FC100(settings['variant'], sizes=settings['sizes'],
                                 pd_chunk_size=settings['pd_chunk_size'],
                                 pd_form=settings.get('pd_form', 'full'))  # absent: full
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValueError('settings file {}: bad sizes, pd_chunk_size or pd_form ({})'.format(
            settings_path, e)) from None
    try:
        safe_npz.load_npz(path, predictor, what='model file', network='{} network of {}'.format(
            settings['variant'], settings_path))
    except safe_npz.ModelFileError as e:
        raise ValueError(str(e)) from None
    if device is not None:
        predictor.to_device(device)
    return predictor, settings


#: Row-name suffix of a network trained adversarially (``Friendly.train --adversarial``).
ADVERSARIAL_SUFFIX = {'pgd': '-PGDAT', 'ibp': '-IBP'}


def network_name(settings):
    """The row name: the variant, with ``-PGDAT`` (``-IBP``) for a PGD adversarially
    (interval-bound) trained one."""
    return settings['variant'] + ADVERSARIAL_SUFFIX.get(settings.get('adversarial'), '')


def add_run_arguments(parser, source_help, required=False):
    """``--run DIR`` (repeated, one per network), ``--source DIR`` (the black-box source,
    ``source_help``) and ``--model final|best`` of a command that evaluates runs; their values go
    to :func:`load_networks`."""
    parser.add_argument('--run', action='append', required=required, metavar='DIR',
                        help='a Friendly.train run folder (repeat for each network)')
    parser.add_argument('--source', metavar='DIR', help=source_help)
    parser.add_argument('--model', default='final', choices=('final', 'best'),
                        help='which model of each run: final (the thesis) or best validation '
                             '(default: %(default)s)')


def load_networks(parser, run_dirs, source_dir, which, device):
    """Load the ``--run`` networks and the ``--source`` S network, or exit with one line.

    Returns ({name: (model, settings, run_dir)}, source model or None, source settings or None).
    The source must be a standard (S) network trained separately, with another seed than S.
    """
    networks = {}
    for run_dir in run_dirs:
        try:
            model, settings = load_run(run_dir, which, device)
        except ValueError as e:
            cli.fail(parser, '--run {}: {}'.format(run_dir, e))
        name = network_name(settings)
        if name in networks:
            cli.fail(parser, '--run {}: a second {} network (already from {})'.format(
                run_dir, name, networks[name][2]))
        networks[name] = (model, settings, run_dir)
    if not source_dir:
        return networks, None, None
    try:
        source, source_settings = load_run(source_dir, which, device)
    except ValueError as e:
        cli.fail(parser, '--source {}: {}'.format(source_dir, e))
    if network_name(source_settings) != 'S':
        cli.fail(parser, '--source {}: the black-box source must be a standard (S) network, '
                         'not {}'.format(source_dir, network_name(source_settings)))
    for name, (_, settings, run_dir) in networks.items():
        if os.path.abspath(run_dir) == os.path.abspath(source_dir) or (
                name == 'S' and settings['seed'] == source_settings['seed']):
            cli.fail(parser, '--source {}: must be trained separately with another seed than {} '
                             '(seed {})'.format(source_dir, run_dir, settings['seed']))
    return networks, source, source_settings


def ordered(names):
    """Variant names in the thesis's column order, unknown extras after."""
    order = {v: i for i, v in enumerate(models.VARIANTS)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))
