"""``make robustness``: the robustness table of the runs ``make friendly`` trained, plus S-PGDAT
and S-IBP.

``python -m Friendly.run_robustness --preset quick --seed 0 --out results`` expects the six
networks and the black-box source of ``python -m Friendly.run_all`` with the same preset and seed
in ``OUT/friendly/runs``; trains the reference defense ``S-PGDAT`` (S with Madry et al.'s PGD
adversarial training, ``Friendly.train --adversarial pgd``) into ``OUT/friendly/runs/S-PGDAT``
when it is not there yet (an interrupted run resumes), and the same for ``S-IBP`` (S with
interval-bound training, ``Friendly.train --adversarial ibp``, Friendly.certification.training)
into ``OUT/friendly/runs/S-IBP``; then runs ``Friendly.robustness`` with the
same preset and writes ``OUT/friendly/robustness.md``, ``.csv``, ``.json`` and ``eps_curve.png``.
After a sweep (``run_all --seeds``), ``--seed S`` reads and writes ``OUT/friendly/seed-<S>``.
"""
import os
import sys
import time

from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import models
from Friendly import robustness
from Friendly import run_all
from Friendly import train as train_module
from Friendly.mnist import add_mnist_argument
from lenses_common.device import add_device_argument, get_device, DeviceError
from lenses_common.runfolder import atomic_write_json
from lenses_common import cli

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
# were 0..1 (--input-scale 255), on the full training data but for smoke.
_IBP = {'batchsize': 100, 'optimizer': 'adam', 'lr': 0.001, 'input_scale': 255}
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
    if device:
        argv += ['--device', device]
    if mnist_dir:
        argv += ['--mnist-dir', mnist_dir]
    return argv


def train_defense(name, method, args, runs, timings):
    """Train the defense ``name`` (``Friendly.train --adversarial method``) unless it is done."""
    run_dir = os.path.join(runs, name)
    argv_train = pgdat_argv(args.preset, args.seed, run_dir, args.device, args.mnist_dir, method)
    wanted = train_module.settings_from_args(train_module.build_parser().parse_args(argv_train))
    state = run_all.run_state(run_dir, wanted)
    if state == 'done':
        print('== {}: final model with these settings exists, skipped'.format(name))
        return
    if state == 'other':
        print('== {}: {} holds another configuration; moved to {}'.format(
            name, run_dir, run_all.move_aside(run_dir)))
    if state == 'resume':
        argv_train.append('--resume')
    print('== {}: python -m Friendly.train {}'.format(name, ' '.join(argv_train)), flush=True)
    start = time.time()
    train_module.main(argv_train)
    timings['train_' + name] = time.time() - start


def build_parser():
    parser = cli.ArgumentParser(
        description='Robustness beyond the thesis for the networks of Friendly.run_all: trains '
                    'S-PGDAT (PGD adversarial training) if needed, then runs '
                    'Friendly.robustness.')
    parser.add_argument('--preset', choices=sorted(run_all.PRESETS), default='quick',
                        help='the preset Friendly.run_all trained with; also sets the attack '
                             'budgets (default: %(default)s)')
    parser.add_argument('--out', '-o', default='results',
                        help='output root of Friendly.run_all (default: %(default)s)')
    parser.add_argument('--networks', default=','.join(models.VARIANTS),
                        help='comma-separated networks (default: all six)')
    parser.add_argument('--no-pgdat', action='store_true',
                        help='leave out the adversarially trained S-PGDAT')
    parser.add_argument('--no-ibp', action='store_true',
                        help='leave out S-IBP, S trained with interval bounds '
                             '(Friendly.train --adversarial ibp)')
    parser.add_argument('--seed', type=int, default=0, help='seed of Friendly.run_all')
    add_device_argument(parser)
    add_mnist_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    networks = run_all.parse_networks(parser, args.networks)
    if args.device:
        try:
            get_device(args.device)
        except DeviceError as e:
            parser.error(str(e))
    root = os.path.join(args.out, 'friendly')
    sweep_root = os.path.join(root, 'seed-{}'.format(args.seed))
    if not os.path.isdir(os.path.join(root, 'runs')) and os.path.isdir(sweep_root):
        root = sweep_root   # seed S of a sweep (run_all --seeds): its runs and its tables
    runs = os.path.join(root, 'runs')
    for network in networks + [run_all.SOURCE]:
        seed = args.seed + run_all.SOURCE_SEED_OFFSET if network == run_all.SOURCE else args.seed
        run_dir = os.path.join(runs, network)
        argv_train = run_all.train_argv(network, run_all.train_options(args.preset, network),
                                        seed, run_dir, args.device, args.mnist_dir)
        wanted = train_module.settings_from_args(train_module.build_parser().parse_args(
            argv_train))
        if run_all.run_state(run_dir, wanted) != 'done':
            parser.exit(2, parser.prog +
                           ': error: {} holds no finished {} run of the {} preset (seed {}); run '
                           '`make friendly PRESET={}` (python -m Friendly.run_all --preset {}) '
                           'first\n'.format(run_dir, network, args.preset, seed, args.preset,
                                            args.preset))
    timings = {}
    defenses = [] if args.no_pgdat else [(PGDAT, 'pgd')]
    if not args.no_ibp:
        defenses.append((IBP, 'ibp'))
    for name, method in defenses:
        train_defense(name, method, args, runs, timings)
        networks.append(name)

    argv_eval = ['--out', root, '--source', os.path.join(runs, run_all.SOURCE),
                 '--preset', args.preset, '--seed', str(args.seed)]
    for network in networks:
        argv_eval += ['--run', os.path.join(runs, network)]
    if args.device:
        argv_eval += ['--device', args.device]
    if args.mnist_dir:
        argv_eval += ['--mnist-dir', args.mnist_dir]
    print('== python -m Friendly.robustness {}'.format(' '.join(argv_eval)), flush=True)
    start = time.time()
    report = robustness.main(argv_eval)
    timings['robustness'] = time.time() - start
    atomic_write_json(os.path.join(root, 'run_robustness.json'), {
        'preset': args.preset, 'seed': args.seed, 'pgdat_train': PGDAT_TRAIN[args.preset],
        'ibp_train': IBP_TRAIN[args.preset],
        'networks': networks, 'seconds_this_call': timings,
        'command': ['python -m Friendly.run_robustness'] + list(argv if argv is not None
                                                                else sys.argv[1:])})
    return report


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
