"""Friendly's benchmarks (``make bench``): ``python -m Friendly.bench --out results/bench``.

Writes ``OUT/friendly.md`` (and prints it): the sections of :mod:`Friendly.bench.layers` and
:mod:`Friendly.bench.pairs`, then :func:`Friendly.bench.networks.run`.
"""
import os

from Friendly.bench import layers, networks, pairs
from lenses_common import cli
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.runfolder import atomic_write_text, check_out_arg


def build_parser():
    parser = cli.ArgumentParser(
        description='Benchmark the Friendly layers, training iterations and FGSM evaluation.')
    parser.add_argument('--out', '-o', default=os.path.join('results', 'bench'),
                        help='folder for friendly.md (default: %(default)s)')
    parser.add_argument('--repeats', type=cli.positive_int, default=20,
                        help='timed training iterations per variant (default: %(default)s)')
    parser.add_argument('--pd-repeats', type=cli.positive_int, default=5,
                        help='timed training iterations for PD (default: %(default)s)')
    parser.add_argument('--fgsm-images', type=cli.positive_int, default=2000,
                        help='images in the timed FGSM evaluation (default: %(default)s)')
    parser.add_argument('--pd-fgsm-images', type=cli.positive_int, default=400,
                        help='images in the timed FGSM evaluation of PD (default: %(default)s)')
    parser.add_argument('--skip-layers', action='store_true',
                        help='leave out the Friendly.bench.layers section')
    parser.add_argument('--skip-pairs', action='store_true',
                        help='leave out the Friendly.bench.pairs section (one PD iteration, full '
                             'against pair form)')
    add_device_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    device = device_from_args(args, parser)
    sections = ['# Friendly benchmarks', '']
    if not args.skip_layers:
        sections.append(layers.run())
    if not args.skip_pairs:
        sections.append(pairs.run()[0])
    sections.append(networks.run(device, args.repeats, args.pd_repeats, args.fgsm_images,
                                 args.pd_fgsm_images))
    text = '\n'.join(sections)
    path = os.path.join(args.out, 'friendly.md')
    atomic_write_text(path, text)
    print(text)
    print('wrote {}'.format(path))
    return text


if __name__ == '__main__':
    main()
