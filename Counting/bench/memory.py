"""Command line of the memory benchmark (:mod:`Counting.bench.memory_cases`); with ``--child``
it runs one case, in the fresh process :func:`Counting.bench.memory_cases.measure_child`
starts.

    python -m Counting.bench.memory [--sizes 40 160]
"""
import argparse
import sys

from Counting.bench.memory_cases import SIZES, memory_section, run_child


def build_parser():
    p = argparse.ArgumentParser(
        prog='python -m Counting.bench.memory',
        description='Peak training memory, dataset in memory vs streamed, for two dataset sizes.')
    p.add_argument('--child', nargs='?', const=None, default=argparse.SUPPRESS,
                   choices=('model', 'memory', 'stream'), help=argparse.SUPPRESS)
    p.add_argument('--data', default=None, help=argparse.SUPPRESS)
    p.add_argument('--sizes', type=int, nargs='+', default=list(SIZES),
                   help='dataset sizes (default: %(default)s)')
    p.add_argument('--arch', default='convolutionallarge', help='network (default: %(default)s)')
    p.add_argument('--batchsize', type=int, default=4, help='(default: %(default)s)')
    p.add_argument('--iterations', type=int, default=2, help='(default: %(default)s)')
    p.add_argument('--workers', type=int, default=2, help='(default: %(default)s)')
    p.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if hasattr(args, 'child'):
        run_child(args.child, args.data, args.arch, args.batchsize, args.iterations,
                  args.workers, args.seed)
        return 0
    print(memory_section(args.sizes, args.arch, args.batchsize, args.iterations, args.workers,
                         args.seed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
