"""Command line of the detection benchmark (:mod:`Counting.bench.detection_timing`).

    python -m Counting.bench.detection [--archs convolutional convolutionallarge] [--groups 8]
        [--batches 2 4] [--out results/bench]
"""
import os
import sys

from Counting.bench.detection_timing import ARCHS, run
from Counting.detection.groups import DEFAULT_THRESHOLD
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.runfolder import atomic_write_text, check_out_arg
from lenses_common.seeding import add_seed_argument
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.bench.detection',
        description='Time the second-derivative detection loop (thesis 2.2.2) on one 1000x1000 '
                    'image: one step from scratch, the thesis loop, the loop keeping the '
                    'first-order graph, and K rows per backward pass.')
    parser.add_argument('--archs', nargs='+', choices=ARCHS, default=list(ARCHS),
                        help='counter architectures to time (default: both)')
    parser.add_argument('--groups', type=positive_int, default=16,
                        help='groups the loop looks for (default: %(default)s)')
    parser.add_argument('--batches', type=positive_int, nargs='*', default=[2, 4],
                        help='values of K (rows per backward pass) to time besides 1 '
                             '(default: 2 4)')
    parser.add_argument('--threshold', type=cli.finite_float(0), default=DEFAULT_THRESHOLD,
                        help='importance threshold of the loop (default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='folder to write bench_detection.md into (default: print only)')
    add_seed_argument(parser)
    add_device_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    device = device_from_args(args, parser)
    text = run(archs=args.archs, groups=args.groups, batches=tuple(args.batches),
               threshold=args.threshold, seed=args.seed, device=device)
    print(text)
    if args.out:
        atomic_write_text(os.path.join(args.out, 'bench_detection.md'), text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
