"""Clean, FGSM white-box and FGSM black-box accuracy of trained networks (thesis Tables 3.2, 3.3).

``python -m Friendly.evaluate --run RUNS/S --run RUNS/RS ... --source RUNS/source --out OUT``

Every ``--run`` folder is one ``Friendly.train`` run (its ``settings.json`` names the network); the
``--source`` run is a standard (S) network trained with another seed that makes the black-box
examples. Batch Renormalization uses batch statistics in batches of 200 (the thesis; ``--bn-eval
running`` for the learned running averages). Writes ``table.md``, ``table.csv``, ``results.json``
and ``accuracy_bars.png`` into ``--out``.
"""
import sys
import time

import numpy

from Friendly import attacks
from Friendly import models
from Friendly.evaluate_report import accuracy_pct, format_tables, write_outputs
from Friendly.evaluation import PGD_BLACKBOX, black_box_set, evaluate_set
from Friendly.mnist import add_mnist_argument, test_arrays
from Friendly.runs import add_run_arguments, load_networks, ordered
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.progress import add_progress_argument
from lenses_common import lock
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        description='Evaluate Friendly networks: clean, white-box and black-box FGSM accuracy '
                    '(thesis Tables 3.2 and 3.3).')
    add_run_arguments(parser, 'run folder of the standard (S) network, trained with another '
                              'seed, that makes the black-box examples (omit to skip black-box)',
                      required=True)
    parser.add_argument('--out', '-o', required=True, help='folder for table.md/.csv, the plot')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget in pixel units 0..255 (default: %(default)s, 0.3 '
                             'of 255)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at test: batch statistics (the thesis) or the '
                             'learned running averages (default: %(default)s)')
    parser.add_argument('--batchsize', '-b', type=cli.positive_int, default=200,
                        help='test batch size; with batch statistics it is part of the protocol '
                             '(default: %(default)s, the thesis)')
    parser.add_argument('--test-subset', type=cli.positive_int, default=None,
                        help='evaluate on only the first N test images (default: all 10,000)')
    parser.add_argument('--pgd', action='store_true',
                        help='also run PGD (white-box and, with --source, black-box)')
    parser.add_argument('--pgd-steps', type=cli.positive_int, default=100,
                        help='PGD steps (default: 100)')
    parser.add_argument('--pgd-restarts', type=cli.positive_int, default=5,
                        help='PGD random restarts, worst case kept per image (default: 5)')
    parser.add_argument('--pgd-step-size', type=cli.finite_float(0, low_open=True), default=None,
                        help='PGD step in pixel units, positive (default: Madry et al.\'s '
                             '2.5 eps / steps, rounded to the nearest whole pixel unit with '
                             'halves to even, at least 1; 2 for eps 77 and 100 steps, 38 for '
                             '5 steps)')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    add_progress_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    lock.claim_arg(parser, args.out)  # checked, created and locked before any work
    device = device_from_args(args, parser)
    seed_everything(args.seed)

    networks, source, source_settings = load_networks(parser, args.run, args.source,
                                                      args.model, device)
    source_note = ''
    if source is not None:
        source_note = 'Black-box examples come from a separate S network (seed {}).'.format(
            source_settings['seed'])

    x_all, t_all = test_arrays(parser, args.mnist_dir, args.test_subset)
    n = len(x_all)

    pgd_options = None
    if args.pgd:
        pgd_options = {'steps': args.pgd_steps, 'restarts': args.pgd_restarts,
                       'step_size': (args.pgd_step_size if args.pgd_step_size is not None
                                     else attacks.pgd_step_size(eps, args.pgd_steps)),
                       'rng': numpy.random.RandomState(args.seed)}
    timings = {}
    black = pgd_black = None
    wanted = ['fgsm']
    if source is not None:
        start = time.time()
        black = black_box_set(source, x_all, t_all, eps, args.batchsize, device,
                              progress=args.progress)
        wanted.append('blackbox')
        if pgd_options is not None:
            pgd_black = black_box_set(source, x_all, t_all, eps, args.batchsize, device, 'pgd',
                                      pgd_options, progress=args.progress)
        timings['source'] = time.time() - start
    if pgd_options is not None:
        wanted += ['pgd'] + ([PGD_BLACKBOX] if pgd_black is not None else [])

    results = {}
    for name in ordered(networks):
        model, settings, run_dir = networks[name]
        start = time.time()
        got = evaluate_set(model, None, x_all, t_all, eps, args.batchsize, args.bn_eval, device,
                           wanted, black, pgd_black=pgd_black, pgd_options=pgd_options,
                           progress=args.progress, desc='{} clean/white/black'.format(name))
        timings[name] = time.time() - start
        results[name] = accuracy_pct(got)
        print('{}: '.format(name) + ', '.join('{} {:.2f}%'.format(k, v)
                                             for k, v in results[name].items()))

    record = {
        'eps': eps, 'test_images': n, 'bn_eval': args.bn_eval,
        'batchsize': args.batchsize, 'model': args.model,
        'runs': {name: networks[name][2] for name in networks}, 'source': args.source,
        'pgd': None if pgd_options is None else {k: v for k, v in pgd_options.items()
                                                  if k != 'rng'},
        'seconds': timings, 'command': [sys.argv[0]] + list(argv if argv is not None
                                                            else sys.argv[1:])}
    text = format_tables(results, eps, n, args.bn_eval, source_note)
    write_outputs(args.out, results, record, text)
    print(text)
    return results


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
