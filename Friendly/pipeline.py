"""The chapter-3 pipeline of ``make friendly``, ``make robustness`` and ``make certify``: which
networks it trains with which options, where their runs live, whether a run is done.

:data:`PRESETS` are ``Friendly.run_all``'s per-network training options, :func:`train_argv` a
network's ``Friendly.train`` command line, :func:`run_state` what a run folder holds compared with
it (:func:`same_settings`, the one comparison of run settings); :data:`PGDAT_TRAIN` and
:data:`IBP_TRAIN` the options of the defenses S-PGDAT and S-IBP, which :func:`train_defense` trains
in this process (:func:`Friendly.trainer.train`).
"""
import os
import time

from Friendly import models
from Friendly import trainer
from Friendly.mnist import add_mnist_argument
from Friendly.train_args import build_parser, settings_from_args
from lenses_common import sweep
from lenses_common.device import add_device_argument
from lenses_common.runfolder import move_aside
from lenses_common.snapshots import FINAL_MODEL, SNAPSHOT_PREFIX

SOURCE = 'source'   # run folder name of the separately trained black-box S network
SOURCE_SEED_OFFSET = 1000

# Per-network training options ('*' for every network unless overridden) and evaluation options.
PRESETS = {
    'thesis': {
        # PD in the pair form: the same network and trajectory as the full form under momentum
        # SGD (tests/friendly_tests/test_pairwise_pairs.py), half the weights, ~0.4x the time.
        'train': {'*': {}, 'GMRES': {'stabilize': True}, 'PD': {'pd_form': 'pairs'}},
        'evaluate': {},
    },
    'quick': {
        'train': {
            '*': {'epoch': 10},
            'A': {'epoch': 6},
            'GMR': {'epoch': 6},
            'GMRES': {'epoch': 6},
            'PD': {'epoch': 2, 'train_subset': 8000, 'val_subset': 1000},
        },
        'evaluate': {},
    },
    'smoke': {
        'train': {
            '*': {'epoch': 2, 'train_subset': 1000, 'val_subset': 400, 'snapshot_interval': 1},
            'PD': {'epoch': 1, 'train_subset': 60, 'val_subset': 200},
        },
        'evaluate': {'test_subset': 400},
    },
}

NETWORKS = models.VARIANTS + (SOURCE,)
# Rough relative training times (thesis preset, CPU); only the order the trainings start in.
TRAIN_COST = {'PD': 100.0, 'GMRES': 3.0, 'A': 2.0, 'GMR': 2.0, 'RS': 1.5, 'S': 1.0, SOURCE: 1.0}
# PD at thesis scale on the CPU in the pair form: ~0.10 s of CPU an iteration with one BLAS thread
# (python -m Friendly.bench.pairs), 2,790 iterations an epoch, at most 100 epochs.
PD_CPU_SECONDS_PER_ITERATION = 0.10
PD_CPU_HOURS = PD_CPU_SECONDS_PER_ITERATION * 2790 * 100 / 3600
# Settings that do not make another network (where it ran, what it ran on).
NOT_COMPARED = ('device', 'mnist_dir', 'environment')


def parse_networks(parser, text):
    """The comma-separated ``--networks`` list, each a known variant, or exit with one line."""
    networks = [n.strip() for n in text.split(',') if n.strip()]
    for n in networks:
        try:
            models.check_variant(n)
        except models.VariantError as e:
            parser.error('--networks: {}'.format(e))
    if not networks:
        parser.error('--networks {!r} names no network (give some of {})'.format(
            text, ','.join(models.VARIANTS)))
    return networks


def train_options(preset, network):
    return sweep.preset_options(PRESETS[preset]['train'], network,
                                'S' if network == SOURCE else None)


def train_argv(network, options, seed, run_dir, device, mnist_dir):
    variant = 'S' if network == SOURCE else network
    argv = ['--variant', variant, '--seed', str(seed), '--out', run_dir, '--no-progress']
    return argv + sweep.options_argv(options) + where_argv(device, mnist_dir)


def where_argv(device, mnist_dir):
    """``--device`` and ``--mnist-dir`` for a command line run from a pipeline (none when not
    given: the command's own defaults)."""
    return (['--device', device] if device else []) + (
        ['--mnist-dir', mnist_dir] if mnist_dir else [])


def add_root_arguments(parser, preset_help):
    """``--preset``, ``--out``, ``--seed``, ``--device`` and ``--mnist-dir`` of a command that
    reads the runs of ``Friendly.run_all`` (:func:`friendly_root`)."""
    parser.add_argument('--preset', choices=sorted(PRESETS), default='quick',
                        help=preset_help + ' (default: %(default)s)')
    parser.add_argument('--out', '-o', default='results',
                        help='output root of Friendly.run_all (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of Friendly.run_all')
    add_device_argument(parser)
    add_mnist_argument(parser)


def same_settings(previous, wanted):
    """True when the settings ``previous`` (a run's ``settings.json``) and ``wanted`` make the
    same network: equal but for :data:`NOT_COMPARED` (the one comparison of run settings)."""
    return ({k: v for k, v in previous.items() if k not in NOT_COMPARED} ==
            {k: v for k, v in wanted.items() if k not in NOT_COMPARED})


def run_state(run_dir, wanted):
    """'done', 'resume', 'fresh' or 'other' (the folder holds another configuration)."""
    return sweep.run_state(run_dir, wanted, same_settings, FINAL_MODEL,
                           SNAPSHOT_PREFIX['epoch'] + '*')


def wanted_settings(argv):
    """The ``settings.json`` a ``Friendly.train`` command line ``argv`` writes."""
    return settings_from_args(build_parser().parse_args(argv))


def friendly_root(out, seed):
    """``OUT/friendly``, or ``OUT/friendly/seed-<seed>`` when the runs are those of a sweep
    (``Friendly.run_all --seeds``): the folder holding ``runs`` and the tables."""
    root = os.path.join(out, 'friendly')
    sweep_root = os.path.join(root, 'seed-{}'.format(seed))
    if not os.path.isdir(os.path.join(root, 'runs')) and os.path.isdir(sweep_root):
        return sweep_root
    return root


PGDAT = 'S-PGDAT'
# Training options of S-PGDAT per preset (40 PGD steps per update make an epoch ~40 times S's).
PGDAT_TRAIN = {
    'thesis': {},
    'quick': {'epoch': 1},
    'smoke': {'epoch': 1, 'train_subset': 1000, 'val_subset': 400},
}


IBP = 'S-IBP'
# Training options of S-IBP (interval-bound training, Friendly.certification.training) per preset:
# Adam (step 0.001) on batches of 100, the first layer initialised and stepped as if the pixels
# were 0..1 (--input-scale 255), the clean loss weighted 0.8 at the end of the ramp (--ibp-kappa;
# with 0.5, Gowal et al.'s value, clean accuracy stays under 94% on this architecture), on the
# full training data but for smoke.
_IBP = {'batchsize': 100, 'optimizer': 'adam', 'lr': 0.001, 'input_scale': 255, 'ibp_kappa': 0.8}
IBP_TRAIN = {
    'thesis': dict(_IBP, epoch=20),
    'quick': dict(_IBP, epoch=12),
    'smoke': dict(_IBP, epoch=1, train_subset=1000, val_subset=400, ibp_warmup=0.2,
                  ibp_ramp=0.5),
}


def pgdat_argv(preset, seed, run_dir, device, mnist_dir, method='pgd'):
    """The ``Friendly.train`` command line of S-PGDAT (``method='pgd'``) or S-IBP ('ibp')."""
    argv = ['--variant', 'S', '--adversarial', method, '--seed', str(seed), '--out', run_dir,
            '--no-progress']
    table = PGDAT_TRAIN if method == 'pgd' else IBP_TRAIN
    for key, value in sorted(table[preset].items()):
        argv += ['--' + key.replace('_', '-'), str(value)]
    return argv + where_argv(device, mnist_dir)


def train_defense(name, method, args, runs, timings):
    """Train the defense ``name`` (``Friendly.train --adversarial method``) unless it is done."""
    run_dir = os.path.join(runs, name)
    argv_train = pgdat_argv(args.preset, args.seed, run_dir, args.device, args.mnist_dir, method)
    state = run_state(run_dir, wanted_settings(argv_train))
    if state == 'done':
        print('== {}: final model with these settings exists, skipped'.format(name))
        return
    if state == 'other':
        print('== {}: {} holds another configuration; moved to {}'.format(
            name, run_dir, move_aside(run_dir)))
    if state == 'resume':
        argv_train.append('--resume')
    print('== {}: python -m Friendly.train {}'.format(name, ' '.join(argv_train)), flush=True)
    start = time.time()
    trainer.train(argv_train)
    timings['train_' + name] = time.time() - start
