"""``make certify``: certified robustness of the runs of ``make friendly`` and ``make robustness``.

``python -m Friendly.run_certify --preset quick --seed 0 --out results`` expects the six networks
and the black-box source of ``Friendly.run_all`` and the defenses S-PGDAT and S-IBP of
``Friendly.run_robustness`` (same preset and seed) in ``OUT/friendly/runs``, and runs
``Friendly.certify`` on all of them with the same preset, writing ``OUT/friendly/certify.md``,
``.csv``, ``.json`` and ``bracket.png``. After a sweep, ``--seed S`` reads and writes
``OUT/friendly/seed-<S>``.
"""
import os
import sys

from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import certify_eval
from Friendly import models
from Friendly.pipeline import IBP, PGDAT, SOURCE, add_root_arguments, friendly_root, where_argv
from lenses_common.snapshots import FINAL_MODEL
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        description='Certified robustness (Friendly.certify) of the networks of Friendly.run_all '
                    'and the defenses of Friendly.run_robustness.')
    add_root_arguments(parser, 'the preset the networks were trained with; also sets the images '
                               'certified and the bracket\'s attack budgets')
    parser.add_argument('--no-defenses', action='store_true',
                        help='certify only the six networks (not S-PGDAT and S-IBP)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    root = friendly_root(args.out, args.seed)
    runs = os.path.join(root, 'runs')
    names = list(models.VARIANTS) + [SOURCE]
    if not args.no_defenses:
        names += [PGDAT, IBP]
    for name in names:
        run_dir = os.path.join(runs, name)
        if not os.path.isfile(os.path.join(run_dir, FINAL_MODEL)):
            make = 'robustness' if name in (PGDAT, IBP) else \
                'friendly'
            parser.exit(2, parser.prog + ': error: {} holds no finished {} network; run '
                           '`make {} PRESET={}` first\n'.format(run_dir, name, make, args.preset))
    argv_cert = ['--out', root, '--preset', args.preset, '--seed', str(args.seed),
                 '--source', os.path.join(runs, SOURCE), '--no-progress']
    for name in names:
        if name != SOURCE:
            argv_cert += ['--run', os.path.join(runs, name)]
    argv_cert += where_argv(args.device, args.mnist_dir)
    print('== python -m Friendly.certify {}'.format(' '.join(argv_cert)), flush=True)
    return certify_eval.evaluate(argv_cert)


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
