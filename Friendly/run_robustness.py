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
from Friendly import robustness_eval
from Friendly.pipeline import IBP, IBP_TRAIN, PGDAT, PGDAT_TRAIN, SOURCE, add_root_arguments
from Friendly.pipeline import SOURCE_SEED_OFFSET, friendly_root, parse_networks, run_state
from Friendly.pipeline import train_argv, train_defense, train_options, wanted_settings
from Friendly.pipeline import where_argv
from lenses_common.device import get_device, DeviceError
from lenses_common.runfolder import atomic_write_json
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        description='Robustness beyond the thesis for the networks of Friendly.run_all: trains '
                    'S-PGDAT (PGD adversarial training) if needed, then runs '
                    'Friendly.robustness.')
    add_root_arguments(parser, 'the preset Friendly.run_all trained with; also sets the attack '
                               'budgets')
    parser.add_argument('--networks', default=','.join(models.VARIANTS),
                        help='comma-separated networks (default: all six)')
    parser.add_argument('--no-pgdat', action='store_true',
                        help='leave out the adversarially trained S-PGDAT')
    parser.add_argument('--no-ibp', action='store_true',
                        help='leave out S-IBP, S trained with interval bounds '
                             '(Friendly.train --adversarial ibp)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    networks = parse_networks(parser, args.networks)
    if args.device:
        try:
            get_device(args.device)
        except DeviceError as e:
            parser.error(str(e))
    root = friendly_root(args.out, args.seed)
    runs = os.path.join(root, 'runs')
    for network in networks + [SOURCE]:
        seed = args.seed + SOURCE_SEED_OFFSET if network == SOURCE else args.seed
        run_dir = os.path.join(runs, network)
        argv_train = train_argv(network, train_options(args.preset, network),
                                        seed, run_dir, args.device, args.mnist_dir)
        if run_state(run_dir, wanted_settings(argv_train)) != 'done':
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

    argv_eval = ['--out', root, '--source', os.path.join(runs, SOURCE),
                 '--preset', args.preset, '--seed', str(args.seed)]
    for network in networks:
        argv_eval += ['--run', os.path.join(runs, network)]
    argv_eval += where_argv(args.device, args.mnist_dir)
    print('== python -m Friendly.robustness {}'.format(' '.join(argv_eval)), flush=True)
    start = time.time()
    report = robustness_eval.evaluate(argv_eval)
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
