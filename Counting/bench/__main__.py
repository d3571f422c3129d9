"""``python -m Counting.bench --out results/bench`` (``make bench``): every Counting benchmark
section (:mod:`Counting.bench.report`) into ``<out>/counting.md``, written atomically and
printed."""
import os
import sys

from Counting.bench.report import counting_report
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.runfolder import atomic_write_text, check_out_arg
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli


def build_parser():
    p = cli.ArgumentParser(
        prog='python -m Counting.bench',
        description='Counting benchmarks: dataset generator, detection, training throughput, '
                    'training memory in memory vs streamed; '
                    'writes <out>/counting.md.')
    p.add_argument('--out', '-o', default=os.path.join('results', 'bench'),
                   help='folder for counting.md (default: %(default)s)')
    p.add_argument('--iterations', type=positive_int, default=3,
                   help='timed training iterations per network (default: %(default)s)')
    p.add_argument('--batchsize', '-b', type=positive_int, default=4,
                   help='training batch size (default: %(default)s)')
    p.add_argument('--image-size', type=positive_int, default=1000,
                   help='side of the square training images (default: %(default)s, the '
                        'thesis\'s)')
    p.add_argument('--skip', nargs='*', default=[],
                   choices=('generator', 'detection', 'training', 'memory'),
                   help='sections to leave out')
    p.add_argument('--memory-sizes', type=positive_int, nargs=2, default=[40, 160],
                   metavar='N', help='dataset sizes of the memory section (default: 40 160)')
    add_device_argument(p)
    add_seed_argument(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    if args.image_size < 835 and 'training' not in args.skip:
        parser.error('--image-size {}: the convolutionallarge network needs at least 835 '
                     'pixels'.format(args.image_size))
    device = device_from_args(args, parser)
    seed_everything(args.seed)
    text = counting_report(device, image_size=args.image_size, batchsize=args.batchsize,
                           iterations=args.iterations, skip=args.skip,
                           memory_sizes=args.memory_sizes, seed=args.seed)
    path = os.path.join(args.out, 'counting.md')
    atomic_write_text(path, text)
    print(text)
    print('wrote {}'.format(path), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
