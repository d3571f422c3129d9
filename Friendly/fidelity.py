"""FGSM in float32 and with float64 gradients on trained runs, beside the thesis's figures.

``python -m Friendly.fidelity --runs ROOT [ROOT ...] --thesis thesis_tables.json --out OUT``

Every ``ROOT`` is an output root of ``python -m Friendly.run_all`` (``--preset thesis`` unless
``--preset`` says otherwise): its runs are in ``ROOT/friendly/runs/<network>`` (``--seed S``) or
``ROOT/friendly/seed-<S>/runs/<network>`` (``--seeds``), the black-box source in
``.../runs/source``.
For every finished network and seed it computes, on the test images, with the thesis's protocol
(final model, batches of 200, Batch Renormalization with batch statistics, eps 77):

* ``clean``; ``fgsm``: the thesis's white-box FGSM (float32, as :mod:`Friendly.evaluate`);
  ``fgsm_float64``: the same with the gradient of the network's float64 copy;
* ``blackbox``: FGSM examples of the source (float32, as :mod:`Friendly.evaluate`);
  ``blackbox_float64``: the source's gradient taken in float64; the float32 victim judges both;
* the share of images whose input gradient is exactly zero (so FGSM leaves them unchanged), for
  the network and for the source, in float32 and in float64.

Beside each figure of the thesis (Table 3.2) it says whether that figure lies inside the interval
between our float32 and float64 results, widened by :data:`WIDEN` point on either side. Writes
``fidelity.md``, ``fidelity.csv`` and ``fidelity.json`` into ``--out``; ``--readme FILE`` also
puts the table between the ``<!-- fidelity-table:begin -->`` and ``<!-- fidelity-table:end -->``
lines of FILE. Only FGSM: a few minutes on a CPU for five networks.
"""
import os
import sys

from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import attacks
from Friendly import models
from Friendly.fidelity_eval import BATCHSIZE, BN_MODE, MARKER, WIDEN, add_thesis, discover
from Friendly.fidelity_eval import evaluate_folder, format_block, format_csv
from Friendly.mnist import add_mnist_argument, test_arrays
from Friendly.pipeline import PRESETS, parse_networks
from Friendly.runs import ordered
from Friendly.thesis_figures import check_readme, thesis_arg, write_readme
from lenses_common import cli
from lenses_common import provenance
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.progress import add_progress_argument
from lenses_common import lock
from lenses_common.runfolder import atomic_write_json, atomic_write_text, check_out_arg


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Friendly.fidelity',
        description='FGSM white-box and black-box accuracy with float32 and float64 gradients on '
                    'the runs of Friendly.run_all, beside the thesis\'s figures, with the share '
                    'of images whose gradient is exactly zero.')
    parser.add_argument('--runs', nargs='+', required=True, metavar='ROOT',
                        help='output roots of python -m Friendly.run_all (ROOT/friendly/runs/'
                             '<network> or ROOT/friendly/seed-<S>/runs/<network>)')
    parser.add_argument('--thesis', required=True, metavar='JSON',
                        help='the thesis figures: {"networks": {NAME: {"whitebox_fgsm", '
                             '"blackbox_fgsm", ...}}}')
    parser.add_argument('--out', '-o', required=True,
                        help='folder for fidelity.md, fidelity.csv and fidelity.json')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='thesis',
                        help='the preset the runs were trained with (default: %(default)s)')
    parser.add_argument('--networks', default=','.join(models.VARIANTS),
                        help='comma-separated networks (default: all six; those without a '
                             'finished run are listed as skipped)')
    parser.add_argument('--test-subset', type=cli.positive_int, default=None,
                        help='only the first N test images (default: all 10,000, the thesis)')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget in pixel units 0..255 (default: %(default)s, the '
                             'thesis)')
    parser.add_argument('--readme', metavar='FILE',
                        help='also put the table between the <!-- fidelity-table:begin --> and '
                             '<!-- fidelity-table:end --> lines of FILE (default: no such file)')
    add_device_argument(parser)
    add_mnist_argument(parser)
    add_progress_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    check_out_arg(parser, args.out)
    networks = parse_networks(parser, args.networks)
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    if args.readme:
        check_readme(parser, args.readme, MARKER)
    thesis, source_line = thesis_arg(parser, args.thesis)
    try:
        found, skipped = discover(args.runs, args.preset, networks)
    except ValueError as e:
        parser.error('--runs: {}'.format(e))
    for line in skipped:
        print('skipped: ' + line, flush=True)
    if not found:
        parser.exit(2, '{}: error: --runs: no finished run of the {} preset in {}\n'.format(
            parser.prog, args.preset, ', '.join(args.runs)))
    device = device_from_args(args, parser)
    x, t = test_arrays(parser, args.mnist_dir, args.test_subset)
    lock.claim_arg(parser, args.out)  # created and locked before the evaluation

    rec = provenance.record('python -m Friendly.fidelity', argv, device)
    rows, seconds = [], {}
    for runs, seed, chosen, source_dir in sorted(found, key=lambda f: f[1]):
        try:
            got, took = evaluate_folder(seed, chosen, source_dir, x, t, eps, device,
                                        args.progress)
        except ValueError as e:    # a model file that does not load: one line
            parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
        for network in ordered(got):
            row = add_thesis(got[network], thesis)
            row['device'] = str(device)
            rows.append(row)
            print('{} seed {}: white-box {:.2f} / {:.2f}, black-box {:.2f} / {:.2f} (float32 / '
                  'float64)'.format(network, seed, row['fgsm'], row['fgsm_float64'],
                                    row['blackbox'], row['blackbox_float64']), flush=True)
        seconds.update({'seed {} {}'.format(seed, k): v for k, v in took.items()})
    order = {n: i for i, n in enumerate(ordered({r['network'] for r in rows}))}
    rows.sort(key=lambda r: (order[r['network']], r['seed']))

    block = format_block(rows, rec, source_line, eps)
    os.makedirs(args.out, exist_ok=True)
    title = '# Friendly: FGSM in float32 and with float64 gradients, beside the thesis\n\n'
    text = title + block
    if skipped:
        text += '\nNot included:\n\n' + ''.join('- {}\n'.format(s) for s in skipped)
    atomic_write_text(os.path.join(args.out, 'fidelity.md'), text)
    atomic_write_text(os.path.join(args.out, 'fidelity.csv'), format_csv(rows))
    atomic_write_json(os.path.join(args.out, 'fidelity.json'), {
        'rows': rows, 'eps': eps, 'batchsize': BATCHSIZE, 'bn_eval': BN_MODE, 'model': 'final',
        'preset': args.preset, 'widen_points': WIDEN, 'skipped': skipped, 'seconds': seconds,
        'thesis': args.thesis, 'provenance': rec})
    if args.readme:
        write_readme(parser, args.readme, MARKER, block)
    print(text)
    return rows


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
